"""Aggregation across annotators: the answer a label gives for an export, the
answer Dawid-Skene infers per comparison, and the agreement statistics streamed as
comparisons pass."""

from __future__ import annotations

import warnings
from array import array
from typing import Any

from .context import CHUNK, Context

CHOICES = ("A", "B", "tie", "both_bad")
_SWAP = {"A": "B", "B": "A"}


class Agreement:
    """Raw pairwise agreement and Krippendorff's α (nominal) over A / B / tie /
    both_bad, accumulated as comparisons stream past, in constant memory.

    ``krippendorff.alpha(value_counts=…)`` builds an (items × V × V) array, about
    200 MB at 500k comparisons. Its coincidence matrix is a sum over comparisons,
    so we add each comparison's share as it passes (Krippendorff 2011):
    o_ck += n_c (n_k − [c = k]) / (m − 1) for a comparison with m ≥ 2 labels, n_c
    of them c; then α = 1 − (n − 1) Σ_{c≠k} o_ck / Σ_{c≠k} n_c n_k with
    n_c = Σ_k o_ck and n = Σ_c n_c. tests/annotate/exports/test_exports.py checks the result
    against ``krippendorff.alpha``.

    A pairwise answer means the same whichever response the data calls A, so α
    counts every comparison in both namings (A and B swapped): otherwise a file that
    lists the winner first makes "A" common and α small. The quality app's
    agreement counts the same way, and gives the same α (tests/quality).
    """

    def __init__(self) -> None:
        self.items = 0
        self.agreeing_pairs = 0  # Σ n_c (n_c − 1): ordered annotator pairs with the same answer
        self.pairs = 0  # Σ m (m − 1)
        self.o = [[0.0] * len(CHOICES) for _ in CHOICES]

    def add(self, votes: dict[str, int]) -> None:
        m = sum(votes.values())
        if m < 2:
            return
        self.items += 1
        self.pairs += m * (m - 1)
        self.agreeing_pairs += sum(n * (n - 1) for n in votes.values())
        for naming in (votes, {_SWAP.get(c, c): n for c, n in votes.items()}):
            counts = [(i, naming[c]) for i, c in enumerate(CHOICES) if c in naming]
            for i, ni in counts:
                for k, nk in counts:
                    self.o[i][k] += ni * (nk - (i == k)) / (m - 1)

    def summary(self) -> dict[str, Any]:
        if not self.items:
            return {"items": 0, "raw": None, "alpha": None}
        n_c = [sum(row) for row in self.o]
        n = sum(n_c)
        disagree = sum(self.o[c][k] for c in range(len(CHOICES)) for k in range(len(CHOICES)) if c != k)
        expected = sum(n_c[c] * n_c[k] for c in range(len(CHOICES)) for k in range(len(CHOICES)) if c != k)
        # α is undefined when every label is the same answer (no expected disagreement).
        alpha = None if expected == 0 else 1 - (n - 1) * disagree / expected
        return {"items": self.items, "raw": round(self.agreeing_pairs / self.pairs, 4),
                "alpha": None if alpha is None else round(alpha, 4)}


def answer_of(ctx: Context, row) -> str | None:
    """The answer a label gives for this export: the overall choice, or the criterion's."""
    if ctx.spec.criterion is None:
        return row.choice
    value = (row.criteria or {}).get(ctx.spec.criterion)
    return value if value in CHOICES else None


def dawid_skene(ctx: Context) -> dict[int, str]:
    """Comparison id → the answer Dawid-Skene infers (crowd-kit), fitted on every label.

    The answer may be one that no label of the comparison gave (a lone annotator whose
    estimated confusion says they usually pick the other side): callers must not assume
    it is among the comparison's votes."""
    import numpy as np
    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    field_name = "criteria" if ctx.spec.criterion else "choice"
    qs = ctx.judgments().order_by("comparison_id", "annotator_id").values_list(
        "comparison_id", "annotator_id", field_name, named=True
    )
    tasks, workers, labels = array("q"), array("q"), array("b")
    code = {c: i for i, c in enumerate(CHOICES)}
    for chunk in ctx.chunks(qs.iterator(chunk_size=CHUNK)):
        for row in chunk:
            vote = answer_of(ctx, row)
            if vote is not None:
                tasks.append(row.comparison_id)
                workers.append(row.annotator_id)
                labels.append(code[vote])
    if not tasks:
        return {}
    data = pd.DataFrame({"task": np.frombuffer(tasks, dtype=np.int64), "worker": np.frombuffer(workers, dtype=np.int64),
                         "label": np.frombuffer(labels, dtype=np.int8)})
    with warnings.catch_warnings():
        # crowd-kit 1.4 calls pandas APIs that pandas 3.1 deprecates (inplace=, copy=): noise, not our bug.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        result = DawidSkene(n_iter=100).fit_predict(data)
    return {int(task): CHOICES[int(label)] for task, label in result.items()}
