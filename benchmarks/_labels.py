"""Real labels for the benchmarks, read through the product's own importers.

A file is parsed with ``dataio.imports.parsers.PARSERS[format]`` (``hh`` is accepted
for ``hh-rlhf``), exactly as an import would read it. Pairwise judgments come from
each record's labels and from its rankings (every response of a better group
beats every response of a worse one; responses sharing a group tie). Repeated
judgments of one pair are merged into one label by strict majority (PandaLM: 3
annotators per row; summarize: the same pair judged by several workers); no
strict majority is a tie. Shared by ``active_learning.py`` and ``rm_accuracy.py``.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dataio.imports.parsers import PARSERS as IMPORT_PARSERS
from dataio.imports.parsers.base import LabelRecord, Record
from models_svc.ml.data import PairExample

ALIASES = {"hh": "hh-rlhf"}
PARSERS: dict[str, Callable[[Path], Iterable[Record]]] = {
    **IMPORT_PARSERS,
    **{alias: IMPORT_PARSERS[name] for alias, name in ALIASES.items()},
}


@dataclass(frozen=True)
class LabelledPair:
    """One comparison with its merged label, in a label-independent orientation.

    ``label`` is +1 when ``text_a`` won, −1 when ``text_b`` won, 0 for a tie; a and b
    are ordered by the importer's response ids, never by the outcome, so the
    orientation of a pool pair tells the learner nothing. ``strength`` is the
    rounded median strength (0..3) of the winning side's votes when they gave one."""

    prompt_id: str
    conversation: list[dict[str, str]]
    text_a: str
    text_b: str
    label: int
    votes: int
    strength: int | None = None


def judgments(rec: Record) -> Iterator[LabelRecord]:
    """The record's pairwise labels, then its rankings as pairwise labels."""
    yield from rec.labels
    for ranking in rec.rankings:
        for i, group in enumerate(ranking.groups):
            for j, a in enumerate(group):
                for b in group[j + 1 :]:
                    yield LabelRecord(a, b, ranking.annotator, "tie")
                for worse in ranking.groups[i + 1 :]:
                    for b in worse:
                        yield LabelRecord(a, b, ranking.annotator, "A")


def merge_labels(records: Iterable[Record]) -> list[LabelledPair]:
    """One pair per (prompt, the two response ids), labelled by strict majority of its
    judgments (winner, other, tie); no strict majority is a tie. The importer's
    response ids decide identity: summarize ids are text hashes, so repeated
    judgments of a pair by several workers merge; PandaLM ids are per row, so each
    row stays its own comparison (as an import keeps it) with its 3 annotators."""
    votes: dict[tuple[str, str, str], Counter] = {}
    strengths: dict[tuple[str, str, str], dict[str, list[int]]] = {}
    info: dict[tuple[str, str, str], tuple[list[dict[str, str]], str, str]] = {}
    for rec in records:
        texts = {r.external_id: r.text for r in rec.responses}
        for lab in judgments(rec):
            a, b = sorted((lab.a, lab.b))
            key = (rec.prompt_id, a, b)
            info.setdefault(key, (rec.conversation, texts[a], texts[b]))
            winner = {"A": lab.a, "B": lab.b}.get(lab.choice, "tie")  # both_bad counts as no preference
            votes.setdefault(key, Counter())[winner] += 1
            if lab.strength is not None:
                strengths.setdefault(key, {}).setdefault(winner, []).append(lab.strength)
    pairs = []
    for key, count in votes.items():
        ranked = count.most_common()
        top, n_top = ranked[0]
        runner_up = ranked[1][1] if len(ranked) > 1 else 0
        label = 0 if n_top == runner_up or top == "tie" else (1 if top == key[1] else -1)
        known = strengths.get(key, {}).get(top, []) if label else []
        strength = round(statistics.median(known)) if known else None
        conversation, text_a, text_b = info[key]
        pairs.append(LabelledPair(key[0], conversation, text_a, text_b, label, sum(count.values()), strength))
    return pairs


def to_pair_example(pair: LabelledPair) -> PairExample:
    """The trainer's form: the winner as ``chosen_text``; a tie keeps (a, b) with ``tie``."""
    chosen, rejected = (pair.text_b, pair.text_a) if pair.label < 0 else (pair.text_a, pair.text_b)
    strength = None if pair.label == 0 or pair.strength is None else min(max(pair.strength, 0), 3)
    return PairExample(pair.prompt_id, pair.conversation, chosen, rejected, tie=pair.label == 0, strength=strength)


def load_pairs(fmt: str, path: Path) -> list[LabelledPair]:
    """Every merged pairwise label of a file (see the module docstring)."""
    if fmt not in PARSERS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(sorted(PARSERS))}")
    return merge_labels(PARSERS[fmt](path))
