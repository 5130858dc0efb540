"""Open-Assistant message trees (``--format oasst``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from .base import ImportRejected, RankingRecord, Record, ResponseRecord, _ident, _req, _text, iter_json_lines

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
