"""Anthropic HH-RLHF (``--format hh-rlhf``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from .base import ImportRejected, LabelRecord, Record, ResponseRecord, _req, _text, conversation_id, iter_json_lines, text_id

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
