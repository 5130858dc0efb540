"""OpenAI's summarize-from-feedback comparisons (``--format summarize``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from .base import ImportRejected, LabelRecord, Record, ResponseRecord, _ident, _req, _text, iter_json_records, text_id


def _summarize_prompt(info: dict[str, Any], line: int) -> tuple[str, list[dict[str, str]], dict[str, Any]]:
    pid = _ident(info.get("id"), line, "info.id")
    if "post" in info and info["post"] is not None:
        post = _text(info["post"], line, "info.post")
        subreddit = info.get("subreddit") or ""
        title = info.get("title") or ""
        content = f"SUBREDDIT: r/{subreddit}\nTITLE: {title}\nPOST: {post}\nTL;DR:"
        meta = {"subreddit": subreddit, "title": title}
    elif "article" in info and info["article"] is not None:
        article = _text(info["article"], line, "info.article")
        title = info.get("title") or ""
        content = f"TITLE: {title}\nARTICLE: {article}\nTL;DR:"
        meta = {"site": info.get("site") or "", "title": title}
    else:
        raise ImportRejected("missing required field (a post or an article)", line=line, field="info.post")
    return pid, [{"role": "user", "content": content}], meta


# summarize-from-feedback's confidence runs 1..9: 1-4 favour summary 0 (1 most
# sure), 6-9 summary 1 (9 most sure). Strength keeps the direction in ``choice`` and
# maps the distance from 5 onto 1..3; the original stays in metadata.confidence.
_CONFIDENCE_STRENGTH = {1: 3, 2: 3, 3: 2, 4: 1, 6: 1, 7: 2, 8: 3, 9: 3}


def parse_summarize(path: Path) -> Iterator[Record]:
    for line, obj in iter_json_records(path):
        info = _req(obj, "info", line, dict)
        pid, conversation, pmeta = _summarize_prompt(info, line)
        summaries = _req(obj, "summaries", line, list)
        if len(summaries) != 2:
            raise ImportRejected(f"expected 2 summaries, got {len(summaries)}", line=line, field="summaries")
        responses = []
        notes = []
        for i, s in enumerate(summaries):
            if not isinstance(s, dict):
                raise ImportRejected("expected an object", line=line, field=f"summaries[{i}]")
            text = _text(s.get("text"), line, f"summaries[{i}].text", allow_empty=True)
            policy = s.get("policy") or ""
            responses.append(ResponseRecord(text_id(text), text, str(policy)[:200], {"policy": policy}))
            notes.append(s.get("note"))
        if responses[0].text == responses[1].text:
            raise ImportRejected("the two summaries are identical", line=line, field="summaries")
        choice = obj.get("choice")
        if choice not in (0, 1) or isinstance(choice, bool):
            raise ImportRejected("must be 0 or 1", line=line, field="choice")
        worker = _ident(obj.get("worker"), line, "worker")
        extra = obj.get("extra") or {}
        if not isinstance(extra, dict):
            raise ImportRejected("expected an object", line=line, field="extra")
        confidence = extra.get("confidence")
        strength = None
        if confidence is not None:
            if confidence not in _CONFIDENCE_STRENGTH or isinstance(confidence, bool):
                raise ImportRejected("must be an integer 1..9 other than 5", line=line, field="extra.confidence")
            if (confidence < 5) != (choice == 0):
                raise ImportRejected(
                    f"confidence {confidence} points at the other summary than choice {choice}",
                    line=line,
                    field="extra.confidence",
                )
            strength = _CONFIDENCE_STRENGTH[confidence]
        meta = {
            "confidence": confidence,
            "notes": notes,
            "split": obj.get("split"),
            "batch": obj.get("batch"),
        }
        label = LabelRecord(
            responses[0].external_id,
            responses[1].external_id,
            f"summarize.{worker}",
            "A" if choice == 0 else "B",
            strength,
            metadata={k: v for k, v in meta.items() if v is not None},
        )
        pmeta = {"source": "summarize-from-feedback", **pmeta}
        yield Record(line, f"summarize-{pid}", conversation, pmeta, responses, [label])
