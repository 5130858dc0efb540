"""Parsers for import formats: bytes in, normalised records out, no database.

Every parser yields ``Record`` objects and raises ``ImportRejected`` naming the line
(1-based; for a JSON-array file, the line where the bad element starts) and the
field. The service in ``annotate.services`` validates everything before writing
anything, so a bad record anywhere rejects the whole file.

Generic JSONL schema (``--format jsonl``), one object per line::

    {"id": "p-001",                                  # optional; default: hash of the conversation
     "prompt": "text"  |  "conversation": [{"role": "user|assistant|system", "content": "…"}, …],
     "metadata": {…},                                # optional
     "responses": ["text", …]  |  [{"id": "a", "text": "…", "source": "model", "metadata": {…}}, …],
     "labels": [                                     # optional pairwise labels
        {"annotator": "alice", "a": 0, "b": 1,       # response indexes (or ids) in this line
         "choice": "A|B|tie|both_bad",               # relative to a and b
         "strength": 2,                              # optional, 0..3 (magnitude; sign comes from choice)
         "criteria": {"key": "A|B|tie|na"},          # optional
         "rationale": "…", "time_on_task_ms": 1234, "metadata": {…}}]}
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

ROLES = ("system", "user", "assistant")
CHOICES = ("A", "B", "tie", "both_bad")
CRITERION_CHOICES = ("A", "B", "tie", "na")
MAX_TEXT = 1_000_000
MAX_ID = 255


class ImportRejected(Exception):
    """The file is rejected as a whole; nothing was written."""

    def __init__(self, message: str, *, line: int | None = None, field: str = ""):
        self.message = message
        self.line = line
        self.field = field
        where = []
        if line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


@dataclass
class ResponseRecord:
    external_id: str
    text: str
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class LabelRecord:
    a: str  # response external ids, in the order the file gave them
    b: str
    annotator: str
    choice: str  # relative to (a, b)
    strength: int | None = None  # magnitude 0..3, or None when unknown
    criteria: dict[str, str] = field(default_factory=dict)
    rationale: str = ""
    time_on_task_ms: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Record:
    line: int
    prompt_id: str
    conversation: list[dict[str, str]]
    prompt_metadata: dict[str, Any]
    responses: list[ResponseRecord]
    labels: list[LabelRecord] = field(default_factory=list)


def text_id(*parts: str) -> str:
    digest = hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:20]


def conversation_id(conversation: list[dict[str, str]]) -> str:
    return text_id(json.dumps(conversation, ensure_ascii=False, sort_keys=True))


# --- reading -------------------------------------------------------------------


def _open_bytes(path: Path) -> io.BufferedIOBase:
    raw = open(path, "rb")
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw  # type: ignore[return-value]


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) for non-blank lines, decoding UTF-8 strictly."""
    seen_any = False
    with _open_bytes(path) as fh:
        try:
            for number, raw in enumerate(fh, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ImportRejected(
                        f"invalid UTF-8 (byte {exc.start + 1} of the line); save the file as UTF-8",
                        line=number,
                    ) from None
                if number == 1:
                    text = text.removeprefix("\ufeff")
                if text.strip():
                    seen_any = True
                    yield number, text
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise ImportRejected(f"cannot read the file: {exc}") from None
    if not seen_any:
        raise ImportRejected("the file is empty: no records found")


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, text in iter_lines(path):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ImportRejected(f"not valid JSON ({exc.msg} at column {exc.colno})", line=number) from None
        if not isinstance(obj, dict):
            raise ImportRejected(f"expected a JSON object, got {type(obj).__name__}", line=number)
        yield number, obj


def iter_json_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """A JSON array of objects, or JSON Lines: whichever the file holds."""
    lines = list(iter_lines(path))  # decodes and checks UTF-8 with line numbers
    first = lines[0][1].lstrip()
    if not first.startswith("["):
        for number, text in lines:
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ImportRejected(f"not valid JSON ({exc.msg} at column {exc.colno})", line=number) from None
            if not isinstance(obj, dict):
                raise ImportRejected(f"expected a JSON object, got {type(obj).__name__}", line=number)
            yield number, obj
        return
    # Rebuild the whole text (blank lines included, so offsets map to real line numbers).
    with _open_bytes(path) as fh:
        text = fh.read().decode("utf-8").removeprefix("\ufeff")
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_of(offset: int) -> int:
        lo, hi = 0, len(line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1

    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    ws = re.compile(r"\s*")
    expecting_value = True
    while True:
        pos = ws.match(text, pos).end()
        if pos >= len(text):
            raise ImportRejected("the JSON array is not closed (missing ']')", line=line_of(len(text) - 1))
        if text[pos] == "]":
            return
        if not expecting_value:
            if text[pos] != ",":
                raise ImportRejected("expected ',' or ']' between array elements", line=line_of(pos))
            pos = ws.match(text, pos + 1).end()
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ImportRejected(f"not valid JSON ({exc.msg})", line=exc.lineno) from None
        if not isinstance(obj, dict):
            raise ImportRejected(f"expected a JSON object, got {type(obj).__name__}", line=line_of(pos))
        yield line_of(pos), obj
        pos = end
        expecting_value = False


# --- field helpers -------------------------------------------------------------


def _req(obj: dict[str, Any], key: str, line: int, kind: type | tuple[type, ...], *, prefix: str = "") -> Any:
    name = f"{prefix}{key}"
    if key not in obj or obj[key] is None:
        raise ImportRejected("missing required field", line=line, field=name)
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ImportRejected(f"expected {expected}, got {type(value).__name__}", line=line, field=name)
    return value


def _text(value: Any, line: int, name: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ImportRejected(f"expected a string, got {type(value).__name__}", line=line, field=name)
    if not allow_empty and not value.strip():
        raise ImportRejected("must not be empty", line=line, field=name)
    if len(value) > MAX_TEXT:
        raise ImportRejected(f"longer than {MAX_TEXT} characters", line=line, field=name)
    if "\x00" in value:
        raise ImportRejected("contains a NUL character", line=line, field=name)
    return value


def _ident(value: Any, line: int, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ImportRejected(f"expected a string or integer id, got {type(value).__name__}", line=line, field=name)
    value = str(value).strip()
    if not value or len(value) > MAX_ID:
        raise ImportRejected(f"ids must be 1..{MAX_ID} characters", line=line, field=name)
    return value


def _dict(obj: dict[str, Any], key: str, line: int, prefix: str = "") -> dict[str, Any]:
    value = obj.get(key) or {}
    if not isinstance(value, dict):
        raise ImportRejected(f"expected an object, got {type(value).__name__}", line=line, field=f"{prefix}{key}")
    return value


def _conversation(value: Any, line: int, name: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise ImportRejected("expected a non-empty list of {role, content} turns", line=line, field=name)
    turns = []
    for i, turn in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(turn, dict):
            raise ImportRejected("expected an object with role and content", line=line, field=where)
        role = turn.get("role")
        if role not in ROLES:
            raise ImportRejected(f"role must be one of {', '.join(ROLES)}", line=line, field=f"{where}.role")
        turns.append({"role": role, "content": _text(turn.get("content"), line, f"{where}.content")})
    if turns[-1]["role"] == "assistant":
        raise ImportRejected("the conversation must end with a user (or system) turn", line=line, field=name)
    return turns


# --- formats -------------------------------------------------------------------


def parse_jsonl(path: Path) -> Iterator[Record]:
    for line, obj in iter_json_lines(path):
        if "conversation" in obj:
            conversation = _conversation(obj["conversation"], line, "conversation")
        elif "prompt" in obj:
            conversation = [{"role": "user", "content": _text(obj["prompt"], line, "prompt")}]
        else:
            raise ImportRejected("missing required field (give 'prompt' or 'conversation')", line=line, field="prompt")
        prompt_id = _ident(obj["id"], line, "id") if obj.get("id") is not None else conversation_id(conversation)
        raw_responses = _req(obj, "responses", line, list)
        if not raw_responses:
            raise ImportRejected("needs at least one response", line=line, field="responses")
        responses: list[ResponseRecord] = []
        for i, item in enumerate(raw_responses):
            where = f"responses[{i}]"
            if isinstance(item, str):
                text = _text(item, line, where)
                responses.append(ResponseRecord(text_id(text), text))
                continue
            if not isinstance(item, dict):
                raise ImportRejected("expected a string or an object with text", line=line, field=where)
            text = _text(item.get("text"), line, f"{where}.text")
            rid = _ident(item["id"], line, f"{where}.id") if item.get("id") is not None else text_id(text)
            source = item.get("source") or ""
            if not isinstance(source, str):
                raise ImportRejected("expected a string", line=line, field=f"{where}.source")
            responses.append(ResponseRecord(rid, text, source[:200], _dict(item, "metadata", line, f"{where}.")))
        ids = [r.external_id for r in responses]
        if len(set(ids)) != len(ids):
            raise ImportRejected("response ids (or texts, when no id is given) must be unique", line=line, field="responses")
        labels = []
        raw_labels = obj.get("labels") or []
        if not isinstance(raw_labels, list):
            raise ImportRejected("expected a list", line=line, field="labels")
        for i, lab in enumerate(raw_labels):
            labels.append(_generic_label(lab, line, f"labels[{i}]", responses))
        yield Record(line, prompt_id, conversation, _dict(obj, "metadata", line), responses, labels)


def _generic_label(lab: Any, line: int, where: str, responses: list[ResponseRecord]) -> LabelRecord:
    if not isinstance(lab, dict):
        raise ImportRejected("expected an object", line=line, field=where)
    ids = [r.external_id for r in responses]

    def ref(key: str) -> str:
        value = lab.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value < len(responses):
                raise ImportRejected(f"response index {value} is out of range", line=line, field=f"{where}.{key}")
            return ids[value]
        if isinstance(value, str) and value in ids:
            return value
        raise ImportRejected("must be a response index or id from this line", line=line, field=f"{where}.{key}")

    a, b = ref("a"), ref("b")
    if a == b:
        raise ImportRejected("a label compares two different responses", line=line, field=f"{where}.b")
    annotator = _ident(lab.get("annotator"), line, f"{where}.annotator")
    choice = lab.get("choice")
    if choice not in CHOICES:
        raise ImportRejected(f"must be one of {', '.join(CHOICES)}", line=line, field=f"{where}.choice")
    strength = lab.get("strength")
    if strength is not None:
        if isinstance(strength, bool) or not isinstance(strength, int) or not 0 <= abs(strength) <= 3:
            raise ImportRejected("must be an integer magnitude 0..3", line=line, field=f"{where}.strength")
        strength = abs(strength)
        if (choice == "tie") != (strength == 0) or choice == "both_bad":
            raise ImportRejected("0 goes with a tie, 1..3 with A or B, none with both_bad", line=line, field=f"{where}.strength")
    criteria = lab.get("criteria") or {}
    if not isinstance(criteria, dict) or any(v not in CRITERION_CHOICES for v in criteria.values()):
        raise ImportRejected(f"values must be one of {', '.join(CRITERION_CHOICES)}", line=line, field=f"{where}.criteria")
    rationale = lab.get("rationale") or ""
    if not isinstance(rationale, str):
        raise ImportRejected("expected a string", line=line, field=f"{where}.rationale")
    tot = lab.get("time_on_task_ms")
    if tot is not None and (isinstance(tot, bool) or not isinstance(tot, int) or tot < 0):
        raise ImportRejected("expected a non-negative integer", line=line, field=f"{where}.time_on_task_ms")
    return LabelRecord(
        a, b, f"ext.{annotator}", choice, strength, dict(criteria), rationale, tot, _dict(lab, "metadata", line, f"{where}.")
    )


_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def _hh_split(dialogue: str, line: int, name: str) -> list[tuple[str, str, int]]:
    """Split an HH dialogue into (speaker, text, start offset of the marker)."""
    matches = list(_HH_TURN.finditer(dialogue))
    if not matches or matches[0].start() != 0:
        raise ImportRejected("expected a dialogue starting with '\\n\\nHuman: '", line=line, field=name)
    turns = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(dialogue)
        turns.append((m.group(1), dialogue[m.end() : end], m.start()))
    return turns


def parse_hh(path: Path) -> Iterator[Record]:
    """Anthropic HH-RLHF: the shared turns become the prompt; what follows, the responses.

    Almost always the two dialogues differ only in the final assistant turn. In the
    few that differ earlier, each response is the rest of its dialogue from the
    first differing assistant turn on, kept verbatim (metadata ``hh_multi_turn``).
    """
    for line, obj in iter_json_lines(path):
        chosen = _text(_req(obj, "chosen", line, str), line, "chosen")
        rejected = _text(_req(obj, "rejected", line, str), line, "rejected")
        c_turns, r_turns = _hh_split(chosen, line, "chosen"), _hh_split(rejected, line, "rejected")
        shared = 0
        while shared < min(len(c_turns), len(r_turns)) - 1 and c_turns[shared][:2] == r_turns[shared][:2]:
            shared += 1
        # The prompt must end with a human turn: back off to the last one in the shared part.
        while shared > 0 and c_turns[shared - 1][0] != "Human":
            shared -= 1
        if shared == 0:
            raise ImportRejected("chosen and rejected share no opening human turn", line=line, field="chosen")
        conversation = [
            {"role": "user" if who == "Human" else "assistant", "content": text} for who, text, _ in c_turns[:shared]
        ]

        def rest(turns: list[tuple[str, str, int]], dialogue: str) -> tuple[str, bool]:
            tail = dialogue[turns[shared][2] :]
            return tail.removeprefix("\n\nAssistant: "), len(turns) - shared > 1

        chosen_text, c_multi = rest(c_turns, chosen)
        rejected_text, r_multi = rest(r_turns, rejected)
        if c_turns[shared][0] != "Assistant" or r_turns[shared][0] != "Assistant":
            raise ImportRejected("the responses must start with an assistant turn", line=line, field="chosen")
        if chosen_text == rejected_text:
            raise ImportRejected("chosen and rejected responses are identical", line=line, field="rejected")
        meta = {"hh_multi_turn": True} if (c_multi or r_multi) else {}
        responses = [
            ResponseRecord(text_id(chosen_text), chosen_text, "", dict(meta)),
            ResponseRecord(text_id(rejected_text), rejected_text, "", dict(meta)),
        ]
        label = LabelRecord(responses[0].external_id, responses[1].external_id, "hh-rlhf.anonymous", "A")
        yield Record(line, conversation_id(conversation), conversation, {"source": "hh-rlhf"}, responses, [label])


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


_PANDALM_CHOICE = {0: "tie", 1: "A", 2: "B"}


def parse_pandalm(path: Path) -> Iterator[Record]:
    """PandaLM's human test set: three annotators per pair (1, 2, or 0 = tie)."""
    for line, obj in iter_json_records(path):
        idx = _ident(_req(obj, "idx", line, (int, str)), line, "idx")
        instruction = _text(_req(obj, "instruction", line, str), line, "instruction", allow_empty=True)
        inp = _text(obj.get("input") or "", line, "input", allow_empty=True)
        content = "\n\n".join(part for part in (instruction, inp) if part.strip())
        if not content:
            raise ImportRejected("instruction and input are both empty", line=line, field="instruction")
        conversation = [{"role": "user", "content": content}]
        models = str(obj.get("cmp_key") or "").split("_", 1)
        models += [""] * (2 - len(models))
        # Two rows may hold the same texts from different model pairs; each row keeps
        # its own responses so every row stays its own comparison with its own labels.
        responses = []
        for i in (1, 2):
            key = f"response{i}"
            value, meta = obj.get(key), {}
            # A few rows store a bare JSON scalar (true) where the model answered "True".
            if isinstance(value, (bool, int, float)):
                value, meta = json.dumps(value).capitalize() if isinstance(value, bool) else str(value), {"coerced_from": type(value).__name__}
            responses.append(ResponseRecord(f"{idx}:{i}", _text(value, line, key, allow_empty=True), models[i - 1], meta))
        labels = []
        for k in (1, 2, 3):
            key = f"annotator{k}"
            value = obj.get(key)
            if value not in _PANDALM_CHOICE or isinstance(value, bool):
                raise ImportRejected("must be 0 (tie), 1 or 2", line=line, field=key)
            choice = _PANDALM_CHOICE[value]
            labels.append(
                LabelRecord(responses[0].external_id, responses[1].external_id, f"pandalm.{key}", choice, 0 if choice == "tie" else None)
            )
        meta = {"source": "pandalm", "motivation_app": obj.get("motivation_app"), "idx": idx}
        yield Record(line, conversation_id(conversation), conversation, meta, responses, labels)


PARSERS: dict[str, Callable[[Path], Iterator[Record]]] = {
    "jsonl": parse_jsonl,
    "hh-rlhf": parse_hh,
    "summarize": parse_summarize,
    "pandalm": parse_pandalm,
}
