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

Generic flat schema (``--format csv``: UTF-8 with a header row, ``.csv.gz`` too;
``--format parquet``: the same column names). One row per pairwise label or per
response; rows with the same ``prompt_id`` make one prompt (they must agree on its
conversation; the first row's metadata is kept), rows with the same response id
under one prompt one response. Empty cells (or nulls) are absent; unknown columns
are rejected, so a misspelt column never goes unnoticed::

    prompt_id            optional; default: hash of the conversation
    prompt               the user's text, or
    conversation         JSON list of {"role", "content"} turns (Parquet: also a list of structs)
    prompt_metadata      optional JSON object
    response_a           required: a response text
    response_a_id        optional; default: hash of the text
    response_a_source    optional model or policy name
    response_b, response_b_id, response_b_source
                         the second response of a pair row; empty on a response row
    annotator            who gave the label or the scores (stored as ext.<annotator>)
    choice               pair rows: A | B | tie | both_bad, relative to (a, b)
    strength             pair rows: 0..3 (magnitude; the sign comes from choice)
    criteria             pair rows: JSON {"key": "A|B|tie|na"}
    scores               response rows: JSON {"criterion_key": number | true/false | "text" | null}
                         → a rating of response a (null = N/A)
    rationale            optional, with a label or scores
    time_on_task_ms      optional, with a label or scores

A pair row with neither annotator nor choice imports the two responses only. CSV
errors name the physical line where the row starts (a quoted field may span lines)
and the column; Parquet errors name the 1-based row and the column.

The other formats (``hh-rlhf``, ``summarize``, ``pandalm``, ``oasst``,
``finegrained``, ``helpsteer2``, ``ultrafeedback``) follow their public releases;
each parser's docstring says how the file maps onto prompts, responses and labels.
Pairwise labels become judgments, ``ratings`` ratings of one response (scores,
rationale, spans as character offsets into its text) and ``rankings`` ordered groups
of responses (ties share a group; responses left out are unranked).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from rubrics.schema import KEY_PATTERN

ROLES = ("system", "user", "assistant")
CHOICES = ("A", "B", "tie", "both_bad")
CRITERION_CHOICES = ("A", "B", "tie", "na")
MAX_TEXT = 1_000_000
MAX_ID = 255


class ImportRejected(Exception):
    """The file is rejected as a whole; nothing was written."""

    def __init__(self, message: str, *, line: int | None = None, field: str = "", unit: str = "line"):
        self.message = message
        self.line = line  # for Parquet, the 1-based row number (unit "row")
        self.field = field
        self.unit = unit
        where = []
        if line is not None:
            where.append(f"{unit} {line}")
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
class RatingRecord:
    response: str  # a response external id of the same record
    annotator: str
    scores: dict[str, Any]  # {criterion_key: value, or None for N/A}
    rationale: str = ""
    spans: list[dict[str, Any]] = field(default_factory=list)  # {start, end, type, …}: offsets into that response's text
    metadata: dict[str, Any] = field(default_factory=dict)
    time_on_task_ms: int | None = None


@dataclass
class RankingRecord:
    annotator: str
    groups: list[list[str]]  # response external ids, best group first; ties share a group
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Record:
    line: int
    prompt_id: str
    conversation: list[dict[str, str]]
    prompt_metadata: dict[str, Any]
    responses: list[ResponseRecord]
    labels: list[LabelRecord] = field(default_factory=list)
    ratings: list[RatingRecord] = field(default_factory=list)
    rankings: list[RankingRecord] = field(default_factory=list)
    unit: str = "line"  # what ``line`` counts: file lines, or Parquet rows


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


def _iter_all_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) for every physical line, decoding UTF-8 strictly."""
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
                yield number, text.removeprefix("\ufeff") if number == 1 else text
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise ImportRejected(f"cannot read the file: {exc}") from None


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) for non-blank lines, decoding UTF-8 strictly."""
    seen_any = False
    for number, text in _iter_all_lines(path):
        if text.strip():
            seen_any = True
            yield number, text
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
            labels.append(_generic_label(lab, line, f"labels[{i}].", responses))
        yield Record(line, prompt_id, conversation, _dict(obj, "metadata", line), responses, labels)


def _generic_label(lab: Any, line: int, where: str, responses: list[ResponseRecord]) -> LabelRecord:
    if not isinstance(lab, dict):
        raise ImportRejected("expected an object", line=line, field=where.rstrip("."))
    ids = [r.external_id for r in responses]

    def ref(key: str) -> str:
        value = lab.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value < len(responses):
                raise ImportRejected(f"response index {value} is out of range", line=line, field=f"{where}{key}")
            return ids[value]
        if isinstance(value, str) and value in ids:
            return value
        raise ImportRejected("must be a response index or id from this line", line=line, field=f"{where}{key}")

    a, b = ref("a"), ref("b")
    if a == b:
        raise ImportRejected("a label compares two different responses", line=line, field=f"{where}b")
    annotator = _ident(lab.get("annotator"), line, f"{where}annotator")
    choice = lab.get("choice")
    if choice not in CHOICES:
        raise ImportRejected(f"must be one of {', '.join(CHOICES)}", line=line, field=f"{where}choice")
    strength = lab.get("strength")
    if strength is not None:
        if isinstance(strength, bool) or not isinstance(strength, int) or not 0 <= abs(strength) <= 3:
            raise ImportRejected("must be an integer magnitude 0..3", line=line, field=f"{where}strength")
        strength = abs(strength)
        if (choice == "tie") != (strength == 0) or choice == "both_bad":
            raise ImportRejected("0 goes with a tie, 1..3 with A or B, none with both_bad", line=line, field=f"{where}strength")
    criteria = lab.get("criteria") or {}
    if not isinstance(criteria, dict) or any(v not in CRITERION_CHOICES for v in criteria.values()):
        raise ImportRejected(f"values must be one of {', '.join(CRITERION_CHOICES)}", line=line, field=f"{where}criteria")
    rationale = lab.get("rationale") or ""
    if not isinstance(rationale, str):
        raise ImportRejected("expected a string", line=line, field=f"{where}rationale")
    tot = lab.get("time_on_task_ms")
    if tot is not None and (isinstance(tot, bool) or not isinstance(tot, int) or tot < 0):
        raise ImportRejected("expected a non-negative integer", line=line, field=f"{where}time_on_task_ms")
    return LabelRecord(
        a, b, f"ext.{annotator}", choice, strength, dict(criteria), rationale, tot, _dict(lab, "metadata", line, where)
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


# --- Open-Assistant trees ----------------------------------------------------------

_OASST_ROLES = {"prompter": "user", "assistant": "assistant"}
_OASST_META = ("lang", "review_count", "review_result", "synthetic", "model_name", "emojis", "labels", "created_date", "user_id")
OASST_ANNOTATOR = "oasst.aggregated"


def parse_oasst(path: Path) -> Iterator[Record]:
    """Open-Assistant message trees, one tree per line (``message_tree_id``, ``prompt``).

    Each prompter message whose assistant replies carry ranks becomes one prompt: the
    conversation is the path from the root to it (prompt id: its message id), its
    assistant replies are the responses (message ids kept) and their ranks one
    ranking by ``oasst.aggregated`` (rank 0 first; equal ranks share a group; a reply
    whose rank is null stays a response, unranked). Deleted messages and their
    subtrees are left out. Ranks among prompter replies order follow-up questions,
    not responses, and are not imported.
    """
    for line, obj in iter_json_lines(path):
        tree_id = _ident(_req(obj, "message_tree_id", line, str), line, "message_tree_id")
        root = _req(obj, "prompt", line, dict)
        if root.get("deleted") is True:
            continue
        tree_meta = {"source": "oasst", "message_tree_id": tree_id, "tree_state": obj.get("tree_state")}
        yield from _oasst_walk(root, "prompt", [], [], tree_meta, line)


def _oasst_walk(
    message: dict[str, Any], where: str, turns: list[dict[str, str]], ids: list[str], tree_meta: dict[str, Any], line: int
) -> Iterator[Record]:
    role = _OASST_ROLES.get(message.get("role"))
    if role is None:
        raise ImportRejected(f"must be one of {', '.join(_OASST_ROLES)}", line=line, field=f"{where}.role")
    message_id = _ident(message.get("message_id"), line, f"{where}.message_id")
    turns = [*turns, {"role": role, "content": _text(message.get("text"), line, f"{where}.text")}]
    ids = [*ids, message_id]
    replies = message.get("replies") or []
    if not isinstance(replies, list) or not all(isinstance(r, dict) for r in replies):
        raise ImportRejected("expected a list of messages", line=line, field=f"{where}.replies")
    for i, reply in enumerate(replies):
        rank = reply.get("rank")
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 0):
            raise ImportRejected("must be a non-negative integer or null", line=line, field=f"{where}.replies[{i}].rank")
    if role == "user":
        record = _oasst_group(message, where, turns, ids, tree_meta, line)
        if record is not None:
            yield record
    for i, reply in enumerate(replies):
        if reply.get("deleted") is not True:
            yield from _oasst_walk(reply, f"{where}.replies[{i}]", turns, ids, tree_meta, line)


def _oasst_group(
    message: dict[str, Any], where: str, turns: list[dict[str, str]], ids: list[str], tree_meta: dict[str, Any], line: int
) -> Record | None:
    """The ranked assistant replies of one prompter message, or None when it has none."""
    answers = [(i, r) for i, r in enumerate(message["replies"] or []) if r.get("role") == "assistant"]
    ranked = [(i, r) for i, r in answers if r.get("rank") is not None]
    if not ranked:
        return None
    # Deleted siblings still count here: their ranks were given next to the others'.
    if len(ranked) < 2:
        raise ImportRejected(
            "only one reply is ranked: a rank orders a reply among its ranked siblings, which are missing",
            line=line, field=f"{where}.replies[{ranked[0][0]}].rank",
        )
    values = sorted({r["rank"] for _, r in ranked})
    if values != list(range(len(values))):
        gap = next(v for v in range(len(values)) if v not in values)
        raise ImportRejected(
            f"ranks {', '.join(map(str, values))} skip {gap}: a ranked sibling is missing", line=line, field=f"{where}.replies"
        )
    responses = []
    for i, reply in answers:
        if reply.get("deleted") is True:
            continue
        rw = f"{where}.replies[{i}]"
        text = _text(reply.get("text"), line, f"{rw}.text")
        source = reply.get("model_name") or ("synthetic" if reply.get("synthetic") else "human")
        meta = {"rank": reply.get("rank"), **{k: reply[k] for k in _OASST_META if k in reply}}
        responses.append(ResponseRecord(_ident(reply.get("message_id"), line, f"{rw}.message_id"), text, str(source)[:200], meta))
    if len({r.external_id for r in responses}) != len(responses):
        raise ImportRejected("two replies share a message_id", line=line, field=f"{where}.replies")
    by_rank: dict[int, list[str]] = {}
    for resp in responses:
        if resp.metadata["rank"] is not None:
            by_rank.setdefault(resp.metadata["rank"], []).append(resp.external_id)
    if sum(map(len, by_rank.values())) < 2:
        return None  # deletions left nothing to order
    meta = {**tree_meta, "message_ids": ids, **{k: message[k] for k in _OASST_META if k in message}}
    ranking = RankingRecord(OASST_ANNOTATOR, [by_rank[v] for v in sorted(by_rank)])
    return Record(line, ids[-1], turns, meta, responses, rankings=[ranking])


# --- Fine-Grained RLHF ---------------------------------------------------------------

# The six pairwise preferences come in this order; 1 = the first of the pair is
# preferred, 2 = the second, 0 = no preference (the dataset's README).
_FG_PAIRS = ((1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4))
_FG_CHOICE = {0: "tie", 1: "A", 2: "B"}
# Error types become span type keys in the rubric's key format.
FINEGRAINED_ERROR_TYPES = {
    "Irrelevant": "irrelevant",
    "Wrong-Grounding": "wrong_grounding",
    "Unverifiable": "unverifiable",
    "Redundant": "redundant",
    "Incoherent": "incoherent",
}
FINEGRAINED_ANNOTATOR = "finegrained-rlhf.anonymous"


def parse_finegrained(path: Path) -> Iterator[Record]:
    """Fine-Grained RLHF QA feedback (a JSON array or JSON Lines).

    The prompt is the question followed by its grounding passages (annotators judged
    the answers against them; the raw passages and the gold answer are also kept in
    the prompt's metadata). ``prediction 1..4`` are responses ``prediction-1..4``;
    the six ``preference`` values are six judgments (0 kept as a tie). The error
    spans on prediction 1 become one rating of it with no scores: its spans keep the
    file's character offsets, with the type as a key (``Wrong-Grounding`` →
    ``wrong_grounding``) and any explanation; missing information and the corrected
    prediction go into that rating's metadata. The one annotator per item is
    unnamed: ``finegrained-rlhf.anonymous``.
    """
    for line, obj in iter_json_records(path):
        question = _text(_req(obj, "question", line, str), line, "question")
        passages = _req(obj, "passages", line, list)
        blocks = [question]
        for i, passage in enumerate(passages):
            if not isinstance(passage, list) or not passage or not all(isinstance(x, str) for x in passage):
                raise ImportRejected("expected a list of strings: title, then sentences", line=line, field=f"passages[{i}]")
            blocks.append(f"Passage {i + 1}: {passage[0]}\n" + " ".join(passage[1:]))
        conversation = [{"role": "user", "content": _text("\n\n".join(blocks), line, "passages")}]
        responses = [
            ResponseRecord(
                f"prediction-{i}", _text(_req(obj, f"prediction {i}", line, str), line, f"prediction {i}"), "", {"prediction": i}
            )
            for i in range(1, 5)
        ]
        preference = _req(obj, "preference", line, list)
        if len(preference) != len(_FG_PAIRS):
            raise ImportRejected(f"expected {len(_FG_PAIRS)} values, got {len(preference)}", line=line, field="preference")
        labels = []
        for k, ((x, y), value) in enumerate(zip(_FG_PAIRS, preference)):
            if value not in _FG_CHOICE or isinstance(value, bool):
                raise ImportRejected("must be 0 (no preference), 1 or 2", line=line, field=f"preference[{k}]")
            choice = _FG_CHOICE[value]
            labels.append(
                LabelRecord(f"prediction-{x}", f"prediction-{y}", FINEGRAINED_ANNOTATOR, choice, 0 if choice == "tie" else None)
            )
        feedback = _req(obj, "feedback", line, dict)
        rating = _finegrained_rating(feedback, responses[0].text, line)
        meta = {"source": "finegrained-rlhf", "question": question, "gold": obj.get("gold"), "passages": passages}
        yield Record(line, conversation_id(conversation), conversation, meta, responses, labels, [rating])


def _finegrained_rating(feedback: dict[str, Any], text: str, line: int) -> RatingRecord:
    errors = feedback.get("errors") or []
    if not isinstance(errors, list):
        raise ImportRejected("expected a list", line=line, field="feedback.errors")
    spans = []
    for k, error in enumerate(errors):
        where = f"feedback.errors[{k}]"
        if not isinstance(error, dict):
            raise ImportRejected("expected an object", line=line, field=where)
        kind = error.get("error type")
        if kind not in FINEGRAINED_ERROR_TYPES:
            raise ImportRejected(f"must be one of {', '.join(FINEGRAINED_ERROR_TYPES)}", line=line, field=f"{where}.error type")
        start, end = error.get("start"), error.get("end")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)) or not 0 <= start < end <= len(text):
            raise ImportRejected(
                f"start and end must satisfy 0 ≤ start < end ≤ {len(text)} (the length of prediction 1)",
                line=line, field=f"{where}.end",
            )
        span = {"start": start, "end": end, "type": FINEGRAINED_ERROR_TYPES[kind]}
        if error.get("explanation"):
            span["explanation"] = error["explanation"]
        spans.append(span)
    missing = feedback.get("missing-info") or []
    if not isinstance(missing, list):
        raise ImportRejected("expected a list", line=line, field="feedback.missing-info")
    corrected = feedback.get("corrected-prediction")
    if corrected is not None and not isinstance(corrected, str):
        raise ImportRejected("expected a string", line=line, field="feedback.corrected-prediction")
    meta = {"missing_info": missing, "corrected_prediction": corrected}
    return RatingRecord("prediction-1", FINEGRAINED_ANNOTATOR, {}, spans=spans, metadata=meta)


# --- HelpSteer2 ----------------------------------------------------------------------

HELPSTEER2_ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
# Multi-turn HelpSteer2 prompts hold the earlier turns inline, each later turn
# opened by this marker; the first turn is the user's and has none.
_HELPSTEER2_TURN = re.compile(r"\n?<extra_id_1>(User|Assistant)\n")


def parse_helpsteer2(path: Path) -> Iterator[Record]:
    """HelpSteer2 rows (JSON Lines, optionally gzipped): ``prompt``, ``response`` and
    the five attributes as integers 0..4. Rows with the same prompt share it; each
    row is one response with one rating by ``helpsteer2.<annotator>`` (the row's
    ``annotator`` field if it has one, else ``helpsteer2.aggregated``: the released
    scores combine several annotators)."""
    for line, obj in iter_json_lines(path):
        prompt = _text(_req(obj, "prompt", line, str), line, "prompt")
        parts = _HELPSTEER2_TURN.split(prompt)
        turns = [{"role": "user", "content": parts[0]}]
        turns += [{"role": role.lower(), "content": content} for role, content in zip(parts[1::2], parts[2::2])]
        conversation = _conversation(turns, line, "prompt")
        text = _text(_req(obj, "response", line, str), line, "response")
        scores = {}
        for key in HELPSTEER2_ATTRIBUTES:
            value = _req(obj, key, line, int)
            if not 0 <= value <= 4:
                raise ImportRejected(f"must be an integer 0..4, got {value}", line=line, field=key)
            scores[key] = value
        annotator = _ident(obj["annotator"], line, "annotator") if obj.get("annotator") is not None else "aggregated"
        response = ResponseRecord(text_id(text), text)
        rating = RatingRecord(response.external_id, f"helpsteer2.{annotator}", scores)
        meta = {"source": "helpsteer2", **({"multi_turn": True} if len(conversation) > 1 else {})}
        yield Record(line, conversation_id(conversation), conversation, meta, [response], ratings=[rating])


# --- UltraFeedback -------------------------------------------------------------------

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


# --- generic CSV and Parquet ---------------------------------------------------------

FLAT_COLUMNS = (
    "prompt_id", "prompt", "conversation", "prompt_metadata",
    "response_a_id", "response_a", "response_a_source", "response_b_id", "response_b", "response_b_source",
    "annotator", "choice", "strength", "criteria", "scores", "rationale", "time_on_task_ms",
)
_LABEL_COLUMNS = ("choice", "strength", "criteria")
_ANSWER_COLUMNS = ("annotator", "rationale", "time_on_task_ms")  # with a label or with scores
PARQUET_BATCH_ROWS = 1000


def _flat_header(names: list[str], line: int | None) -> None:
    unknown = [n for n in names if n not in FLAT_COLUMNS]
    if unknown:
        raise ImportRejected(f"unknown column; the columns are {', '.join(FLAT_COLUMNS)}", line=line, field=unknown[0])
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ImportRejected("the column appears twice", line=line, field=twice[0])
    if "response_a" not in names:
        raise ImportRejected("missing required column", line=line, field="response_a")
    if "prompt" not in names and "conversation" not in names:
        raise ImportRejected("missing required column (give 'prompt' or 'conversation')", line=line, field="prompt")


def _json_cell(value: Any, line: int, name: str) -> Any:
    """A JSON text (CSV, or a Parquet string column) or the value a Parquet column already holds."""
    if not isinstance(value, str):
        # A Parquet map column arrives as a list of (key, value) pairs.
        if isinstance(value, list) and value and all(isinstance(p, tuple) and len(p) == 2 for p in value):
            return dict(value)
        return value
    if value == "{}":
        return {}  # what an export writes for empty metadata on every row: skip the decoder
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ImportRejected(f"not valid JSON ({exc.msg} at column {exc.colno})", line=line, field=name) from None


def _json_object(value: Any, line: int, name: str) -> dict[str, Any]:
    obj = _json_cell(value, line, name)
    if not isinstance(obj, dict):
        raise ImportRejected(f"expected a JSON object, got {type(obj).__name__}", line=line, field=name)
    return obj


_INT_TEXT = re.compile(r"\s*-?\d+\s*")


def _int_cell(value: Any, line: int, name: str) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)  # pandas stores an integer column with gaps as floats
    if isinstance(value, str) and (value.isascii() and value.isdigit() or _INT_TEXT.fullmatch(value)):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ImportRejected(f"expected an integer, got {value!r}", line=line, field=name)
    return value


def _flat_response(row: dict[str, Any], side: str, line: int) -> ResponseRecord:
    text = _text(row[f"response_{side}"], line, f"response_{side}")
    rid = row.get(f"response_{side}_id")
    source = row.get(f"response_{side}_source") or ""
    if not isinstance(source, str):
        raise ImportRejected("expected a string", line=line, field=f"response_{side}_source")
    rid = _ident(rid, line, f"response_{side}_id") if rid is not None else text_id(text)
    return ResponseRecord(rid, text, source[:200])


class _CellCache:
    """Parsed JSON cells of a flat file, by their text. Rows of one prompt repeat its
    conversation, and labels repeat a few criteria objects: parsing and checking each
    distinct text once is a third of the parse time of a large export. Only values
    that parsed and passed their checks are kept, so a bad cell still fails on its
    own row; the cache is emptied when it grows (a file of all-distinct cells)."""

    LIMIT = 4096

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], Any] = {}

    def get(self, name: str, text: Any, parse: Callable[[], Any]) -> Any:
        if not isinstance(text, str):
            return parse()  # a Parquet list or struct: not hashable, and already parsed
        key = (name, text)
        found = self.values.get(key)
        if found is None:
            found = parse()
            if len(self.values) >= self.LIMIT:
                self.values.clear()
            self.values[key] = found
        return found


def _flat_record(raw: dict[str, Any], line: int, cache: _CellCache | None = None) -> Record:
    """One CSV or Parquet row: a pair (with an optional label) or a response (with optional scores)."""
    cache = cache or _CellCache()
    row = {k: v for k, v in raw.items() if v is not None and v != ""}  # empty cells are absent
    if "conversation" in row:
        # Shared between the records of one prompt: nothing downstream mutates it.
        conversation = cache.get(
            "conversation", row["conversation"],
            lambda: _conversation(_json_cell(row["conversation"], line, "conversation"), line, "conversation"),
        )
    elif "prompt" in row:
        conversation = [{"role": "user", "content": _text(row["prompt"], line, "prompt")}]
    else:
        raise ImportRejected("empty: give 'prompt' or 'conversation'", line=line, field="prompt")
    prompt_id = _ident(row["prompt_id"], line, "prompt_id") if "prompt_id" in row else conversation_id(conversation)
    prompt_meta = _json_object(row["prompt_metadata"], line, "prompt_metadata") if "prompt_metadata" in row else {}
    if "response_a" not in row:
        raise ImportRejected("missing required value", line=line, field="response_a")
    responses = [_flat_response(row, "a", line)]
    rationale = row.get("rationale") or ""
    tot = _int_cell(row["time_on_task_ms"], line, "time_on_task_ms") if "time_on_task_ms" in row else None
    labels, ratings = [], []
    if "response_b" in row:
        responses.append(_flat_response(row, "b", line))
        if responses[0].external_id == responses[1].external_id:
            raise ImportRejected(
                "response_a and response_b have the same id (or text, when no id is given)", line=line, field="response_b"
            )
        if "scores" in row:
            raise ImportRejected("scores rate one response: leave response_b empty on a rating row", line=line, field="scores")
        if any(name in row for name in (*_ANSWER_COLUMNS, *_LABEL_COLUMNS)):
            lab = {
                "a": responses[0].external_id, "b": responses[1].external_id,
                "annotator": row.get("annotator"), "choice": row.get("choice"),
                "strength": _int_cell(row["strength"], line, "strength") if "strength" in row else None,
                # Cached: _generic_label copies it.
                "criteria": cache.get("criteria", row["criteria"], lambda: _json_object(row["criteria"], line, "criteria"))
                if "criteria" in row else {},
                "rationale": rationale, "time_on_task_ms": tot,
            }
            labels.append(_generic_label(lab, line, "", responses))
    else:
        for name in ("response_b_id", "response_b_source", *_LABEL_COLUMNS):
            if name in row:
                raise ImportRejected("set on a row without response_b (a label compares two responses)", line=line, field=name)
        if any(name in row for name in (*_ANSWER_COLUMNS, "scores")):
            annotator = _ident(row.get("annotator"), line, "annotator")
            if "scores" not in row:
                raise ImportRejected("missing: a rating row needs scores", line=line, field="scores")
            scores = _json_object(row["scores"], line, "scores")
            for key, value in scores.items():
                if not re.fullmatch(KEY_PATTERN, key):
                    raise ImportRejected(
                        f"criterion key {key!r} must be lower-case letters, digits and _", line=line, field="scores"
                    )
                if value is not None and not isinstance(value, (int, float, str)):
                    raise ImportRejected(
                        f"the score for {key!r} must be a number, true/false, text or null", line=line, field="scores"
                    )
            if tot is not None and tot < 0:
                raise ImportRejected("expected a non-negative integer", line=line, field="time_on_task_ms")
            if not isinstance(rationale, str):
                raise ImportRejected("expected a string", line=line, field="rationale")
            ratings.append(RatingRecord(responses[0].external_id, f"ext.{annotator}", scores, rationale, time_on_task_ms=tot))
    return Record(line, prompt_id, conversation, prompt_meta, responses, labels, ratings)


def parse_csv(path: Path) -> Iterator[Record]:
    """The flat schema as CSV (UTF-8, comma-separated, a header row; ``.csv.gz`` too).
    Lines are physical lines: a quoted field that spans lines counts them all."""
    # Long responses: the csv module's default field limit (128 KiB) is below MAX_TEXT.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_TEXT + 1))
    consumed = 0

    def physical_lines() -> Iterator[str]:
        nonlocal consumed
        for number, text in _iter_all_lines(path):
            consumed = number
            yield text

    reader = csv.reader(physical_lines(), strict=True)
    cache = _CellCache()
    header: list[str] | None = None
    seen_any = False
    while True:
        start = consumed + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ImportRejected(f"malformed CSV: {exc}", line=start) from None
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [name.strip() for name in row]
            _flat_header(header, start)
            continue
        if len(row) != len(header):
            raise ImportRejected(
                f"has {len(row)} fields, the header has {len(header)} (an unquoted comma or newline?)",
                line=start, field=header[len(row)] if len(row) < len(header) else "",
            )
        seen_any = True
        yield _flat_record(dict(zip(header, row)), start, cache)
    if not seen_any:
        raise ImportRejected("the file is empty: no records found" if header is None else "the file has a header but no rows")


def parse_parquet(path: Path) -> Iterator[Record]:
    """The flat schema as Parquet, read in record batches. Errors name the 1-based row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise ImportRejected(f"not a readable Parquet file: {exc}") from None
    _flat_header(parquet.schema_arrow.names, None)
    if parquet.metadata.num_rows == 0:
        raise ImportRejected("the file is empty: no records found")
    number = 0
    cache = _CellCache()
    batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise ImportRejected(f"cannot read the file after row {number}: {exc}") from None
        for row in batch.to_pylist():
            number += 1
            try:
                record = _flat_record(row, number, cache)
            except ImportRejected as exc:
                raise ImportRejected(exc.message, line=number, field=exc.field, unit="row") from None
            record.unit = "row"
            yield record


PARSERS: dict[str, Callable[[Path], Iterator[Record]]] = {
    "jsonl": parse_jsonl,
    "hh-rlhf": parse_hh,
    "summarize": parse_summarize,
    "pandalm": parse_pandalm,
    "oasst": parse_oasst,
    "finegrained": parse_finegrained,
    "helpsteer2": parse_helpsteer2,
    "ultrafeedback": parse_ultrafeedback,
    "csv": parse_csv,
    "parquet": parse_parquet,
}
