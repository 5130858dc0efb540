"""Aggregation across annotators: the answer a label gives for an export and the
answer Dawid-Skene infers per comparison. Agreement is the quality app's
(``quality.services.judgments_agreement``): the dataset card states its figures."""

from __future__ import annotations

import warnings
from array import array

from .context import CHUNK, Context

CHOICES = ("A", "B", "tie", "both_bad")


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
