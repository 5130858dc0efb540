"""openbmb/UltraFeedback (``--format ultrafeedback``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from .base import (
    ImportRejected, RatingRecord, Record, ResponseRecord, _ident, _req, _text, conversation_id, iter_json_lines, text_id,
)

ULTRAFEEDBACK_ASPECTS = ("instruction_following", "honesty", "truthfulness", "helpfulness")
ULTRAFEEDBACK_ANNOTATOR = "ultrafeedback.gpt-4"  # UltraFeedback's ratings were written by GPT-4


def parse_ultrafeedback(path: Path) -> Iterator[Record]:
    """UltraFeedback rows (JSON Lines, optionally gzipped), as in openbmb/UltraFeedback:
    ``instruction``, ``source``, ``completions`` of ``{model, response, annotations,
    critique, overall_score, fine-grained_score, …}``. Each completion is a response
    (source: its model) with one rating by ``ultrafeedback.gpt-4``: the four aspects'
    ``Rating`` "1".."5" as scores, "N/A" as None; each aspect's other fields
    (``Rationale``, ``Rationale For Rating``, ``Type``) and the scores are kept in the
    rating's metadata, the critique as its rationale. An aspect may be an object or,
    as in the GitHub release, a one-element list of it.
    """
    for line, obj in iter_json_lines(path):
        instruction = _text(_req(obj, "instruction", line, str), line, "instruction")
        conversation = [{"role": "user", "content": instruction}]
        completions = _req(obj, "completions", line, list)
        if not completions:
            raise ImportRejected("needs at least one completion", line=line, field="completions")
        responses: list[ResponseRecord] = []
        ratings = []
        for i, comp in enumerate(completions):
            where = f"completions[{i}]"
            if not isinstance(comp, dict):
                raise ImportRejected("expected an object", line=line, field=where)
            model = _ident(comp.get("model"), line, f"{where}.model")
            text = _text(_req(comp, "response", line, str, prefix=f"{where}."), line, f"{where}.response", allow_empty=True)
            response = ResponseRecord(text_id(model, text), text, model[:200], {
                k: comp[k] for k in ("principle", "custom_system_prompt") if comp.get(k) is not None
            })
            if any(r.external_id == response.external_id for r in responses):
                raise ImportRejected("another completion has the same model and response", line=line, field=where)
            responses.append(response)
            annotations = _req(comp, "annotations", line, dict, prefix=f"{where}.")
            stray = sorted(set(annotations) - set(ULTRAFEEDBACK_ASPECTS))
            if stray:
                raise ImportRejected(
                    f"unknown aspect; expected {', '.join(ULTRAFEEDBACK_ASPECTS)}",
                    line=line, field=f"{where}.annotations.{stray[0]}",
                )
            scores: dict[str, int | None] = {}
            notes = {}
            for aspect in ULTRAFEEDBACK_ASPECTS:
                if aspect not in annotations:
                    continue
                aw = f"{where}.annotations.{aspect}"
                ann = annotations[aspect]
                if isinstance(ann, list) and len(ann) == 1:
                    ann = ann[0]
                if not isinstance(ann, dict):
                    raise ImportRejected("expected an object with Rating and Rationale", line=line, field=aw)
                scores[aspect] = _ultrafeedback_rating(ann.get("Rating"), line, f"{aw}.Rating")
                notes[aspect] = {k: v for k, v in ann.items() if k != "Rating"}
            critique = comp.get("critique") or ""
            if not isinstance(critique, str):
                raise ImportRejected("expected a string", line=line, field=f"{where}.critique")
            scored = {k: comp[k] for k in ("overall_score", "fine-grained_score") if comp.get(k) is not None}
            meta = {"annotations": notes, **scored}
            ratings.append(RatingRecord(response.external_id, ULTRAFEEDBACK_ANNOTATOR, scores, critique, metadata=meta))
        # UltraFeedback's own "source" names the data set the instruction came from.
        extra = {"subset": obj.get("source"), **{k: obj.get(k) for k in ("models", "correct_answers", "incorrect_answers")}}
        meta = {"source": "ultrafeedback", **{k: v for k, v in extra.items() if v is not None}}
        yield Record(line, conversation_id(conversation), conversation, meta, responses, ratings=ratings)


def _ultrafeedback_rating(value: Any, line: int, name: str) -> int | None:
    if value == "N/A":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise ImportRejected(f'must be "1".."5" or "N/A", got {value!r}', line=line, field=name)
    return value
