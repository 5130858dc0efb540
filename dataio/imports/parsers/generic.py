"""The generic JSONL schema (``--format jsonl``), one object per line::

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

from pathlib import Path
from typing import Any, Iterator

from .base import (
    CHOICES, CRITERION_CHOICES, ImportRejected, LabelRecord, Record, ResponseRecord, _conversation, _dict, _ident, _req,
    _text, conversation_id, iter_json_lines, text_id,
)


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
            # absent or null is empty; any other non-string (0, [], false) is an error, not empty
            source = "" if item.get("source") is None else item["source"]
            if not isinstance(source, str):
                raise ImportRejected("expected a string", line=line, field=f"{where}.source")
            responses.append(ResponseRecord(rid, text, source[:200], _dict(item, "metadata", line, f"{where}.")))
        ids = [r.external_id for r in responses]
        if len(set(ids)) != len(ids):
            raise ImportRejected("response ids (or texts, when no id is given) must be unique", line=line, field="responses")
        labels = []
        raw_labels = [] if obj.get("labels") is None else obj["labels"]
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
    criteria = {} if lab.get("criteria") is None else lab["criteria"]
    if not isinstance(criteria, dict) or any(v not in CRITERION_CHOICES for v in criteria.values()):
        raise ImportRejected(f"values must be one of {', '.join(CRITERION_CHOICES)}", line=line, field=f"{where}criteria")
    rationale = "" if lab.get("rationale") is None else lab["rationale"]
    if not isinstance(rationale, str):
        raise ImportRejected("expected a string", line=line, field=f"{where}rationale")
    tot = lab.get("time_on_task_ms")
    if tot is not None and (isinstance(tot, bool) or not isinstance(tot, int) or tot < 0):
        raise ImportRejected("expected a non-negative integer", line=line, field=f"{where}time_on_task_ms")
    return LabelRecord(
        a, b, f"ext.{annotator}", choice, strength, dict(criteria), rationale, tot, _dict(lab, "metadata", line, where)
    )
