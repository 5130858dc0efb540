"""NVIDIA HelpSteer2 (``--format helpsteer2``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from .base import (
    ImportRejected, RatingRecord, Record, ResponseRecord, _conversation, _ident, _req, _text, conversation_id,
    iter_json_lines, text_id,
)

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
