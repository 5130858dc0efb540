"""PandaLM's human-annotated test set (``--format pandalm``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from .base import ImportRejected, LabelRecord, Record, ResponseRecord, _ident, _req, _text, conversation_id, iter_json_records

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
