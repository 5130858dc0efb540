"""Agreement statistics over a counts table (DESIGN §6). Plain numpy, no Django:
``quality.services`` turns labels into tables and calls these.

A *counts table* has one row per item (a comparison, a rated response) and one
column per category (a choice, a level); cell (i, k) is how many raters put item i
in category k. Every statistic here reads that table, so memory grows with the
items, never with items × raters.

Where the figures come from:

* Krippendorff's α: the ``krippendorff`` package's coincidence-matrix formulas,
  summed here over the table's distinct rows (the package itself takes no row
  weights, and its N × V × V temporaries took 1.8 GB at a million labels);
  ``tests/quality`` checks it against ``krippendorff.alpha`` on full tables.
* Cohen's κ with quadratic weights, per annotator pair: ``sklearn.metrics``.
* Fleiss' κ and Gwet's AC1/AC2 are computed here, in the form that allows a
  different number of raters per item (Gwet, *Handbook of Inter-Rater
  Reliability*, 4th ed., ch. 2 and 4). The reference libraries cannot take such
  data as it is: ``statsmodels``' ``fleiss_kappa`` asserts the same number of
  raters on every item (summarize batch13 has 2 to 10), and ``irrCAC`` 0.4 pins
  scipy 1.12 and counts a missing rating as a category under pandas 3. On data
  they do accept (every item rated by the same raters) both formulas reduce to
  theirs; ``tests/quality`` checks them against ``statsmodels`` and ``irrCAC``.

Every statistic also takes ``freq``: how many items have each row. A table of a
million items has only a few distinct rows (two raters, four answers), so callers
pass ``compress``'s distinct rows and their counts, and the work and memory no
longer grow with the items.

A pairwise label means the same whichever response the data calls A, so a
pairwise table is made *symmetric* before any chance-corrected statistic: each
item is counted once as stored and once with A and B swapped (``symmetric``).
Raw agreement is unchanged by this; α, κ and AC1 then no longer depend on the
naming (summarize batch13's α moved between 0.28 and 0.38 with it before).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np


@dataclass(frozen=True)
class Figure:
    """One statistic with what stands behind it."""

    value: float | None
    n_items: int  # items with at least two ratings (the ones that carry agreement)
    n_raters: int

    def as_dict(self) -> dict:
        return {"value": None if self.value is None else round(float(self.value), 4),
                "n_items": self.n_items, "n_raters": self.n_raters}


def _table(counts, freq=None) -> tuple[np.ndarray, np.ndarray]:
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2:
        counts = counts.reshape(0, 0)
    return counts, (np.ones(len(counts)) if freq is None else np.asarray(freq, dtype=float))


def _pairable(counts, freq=None) -> tuple[np.ndarray, np.ndarray]:
    counts, freq = _table(counts, freq)
    keep = counts.sum(axis=1) >= 2
    return counts[keep], freq[keep]


def pairable(counts: np.ndarray) -> np.ndarray:
    """The rows of items that at least two raters answered."""
    return _pairable(counts)[0]


def n_pairable(counts: np.ndarray, freq: np.ndarray | None = None) -> int:
    """How many items at least two raters answered."""
    return int(round(_pairable(counts, freq)[1].sum()))


def compress(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a counts table and how many items have each (``freq``)."""
    counts, _ = _table(counts)
    if not len(counts):
        return counts, np.zeros(0)
    rows, freq = np.unique(counts, axis=0, return_counts=True)
    return rows, freq.astype(float)


def symmetric(counts: np.ndarray, flip: Sequence[int]) -> np.ndarray:
    """The table stacked on itself with columns permuted by ``flip`` (A ↔ B, or a
    signed strength s ↔ −s): each pairwise item counted in both namings (stack
    ``freq`` on itself alike)."""
    counts = np.asarray(counts, dtype=float)
    return np.vstack([counts, counts[:, list(flip)]])


def raw_agreement(counts: np.ndarray, freq: np.ndarray | None = None) -> tuple[float | None, int]:
    """The share of rater pairs on an item that gave the same answer, over every
    pair of every item; and the number of such pairs."""
    c, f = _pairable(counts, freq)
    m = c.sum(axis=1)
    pairs = float((f * m * (m - 1)).sum())
    if pairs == 0:
        return None, 0
    return float((f * (c * (c - 1)).sum(axis=1)).sum() / pairs), int(pairs // 2)


def _distances(domain: np.ndarray, level: str, n_v: np.ndarray) -> np.ndarray:
    """The ``krippendorff`` package's distance of each pair of values."""
    if level == "nominal":
        return (domain[:, None] != domain[None, :]).astype(float)
    if level == "interval":
        return (domain[:, None] - domain[None, :]).astype(float) ** 2
    if level == "ordinal":  # (the values from i to j, less half of the two ends)²
        cum = np.concatenate([[0.0], np.cumsum(n_v)])
        i = np.arange(len(domain))
        lo, hi = np.minimum(i[:, None], i[None, :]), np.maximum(i[:, None], i[None, :])
        return (cum[hi + 1] - cum[lo] - (n_v[lo] + n_v[hi]) / 2) ** 2
    raise ValueError(f"unknown level of measurement {level!r}")


def krippendorff_alpha(counts: np.ndarray, level: str, domain: Sequence[float] | None = None,
                       freq: np.ndarray | None = None) -> float | None:
    """Krippendorff's α (``krippendorff.alpha(value_counts=…)``'s formulas, with
    ``freq``); None when it is undefined (no item with two ratings, or every rating
    the same value). α = 1 − Σ o·d / Σ e·d, with o the coincidence matrix
    Σ_items (n nᵀ − diag n) / (m − 1) and e its expectation by chance."""
    c, f = _pairable(counts, freq)
    if len(c) == 0 or np.count_nonzero(c.sum(axis=0)) < 2:
        return None
    values = np.arange(c.shape[1]) if domain is None else np.asarray(domain)
    if len(values) != c.shape[1]:
        raise ValueError("the value domain should have one value per column of the counts table")
    share = f / (c.sum(axis=1) - 1)
    o = np.einsum("u,uk,ul->kl", share, c, c) - np.diag(share @ c)
    n_v = o.sum(axis=0)
    e = (np.outer(n_v, n_v) - np.diag(n_v)) / (n_v.sum() - 1)
    d = _distances(values, level, n_v)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 1 - (o * d).sum() / (e * d).sum()
    return None if not np.isfinite(value) else float(value)


def fleiss_kappa(counts: np.ndarray, freq: np.ndarray | None = None) -> float | None:
    """Fleiss' κ for any number of raters per item: p_a is the mean over items of
    Σ_k n_ik (n_ik − 1) / (n_i (n_i − 1)); p_e = Σ_k p_k², with p_k the share of
    all ratings in category k (Fleiss 1971; equals statsmodels' when every n_i is
    the same)."""
    c, f = _pairable(counts, freq)
    if len(c) == 0:
        return None
    m = c.sum(axis=1)
    pa = float((f * (c * (c - 1)).sum(axis=1) / (m * (m - 1))).sum() / f.sum())
    totals = f @ c
    p = totals / totals.sum()
    pe = float((p * p).sum())
    return None if pe >= 1 else (pa - pe) / (1 - pe)


def quadratic_weights(domain: Sequence[float]) -> np.ndarray:
    """w_kl = 1 − (x_k − x_l)² / (max − min)²: full credit on the diagonal, none at
    opposite ends of the scale."""
    x = np.asarray(domain, dtype=float)
    span = float(x.max() - x.min()) if len(x) > 1 else 1.0
    return 1.0 - ((x[:, None] - x[None, :]) / (span or 1.0)) ** 2


def gwet_ac(counts: np.ndarray, weights: np.ndarray | None = None, freq: np.ndarray | None = None) -> float | None:
    """Gwet's AC1 (``weights`` None: identity) or AC2 (weighted), with a varying
    number of raters per item (Gwet 2014, eq. 4.11–4.13):

    p_a = mean over items with n_i ≥ 2 of Σ_k n_ik (n*_ik − 1) / (n_i (n_i − 1)),
    with n*_ik = Σ_l w_kl n_il; π_k = mean over items with n_i ≥ 1 of n_ik / n_i;
    p_e = T_w / (q (q − 1)) Σ_k π_k (1 − π_k), T_w = Σ_kl w_kl; AC = (p_a − p_e) / (1 − p_e);
    q is the number of categories used. None when fewer than two were.
    """
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2:
        return None
    counts, freq = _table(counts, freq)
    # q counts the categories the raters used, as irrCAC does: a scale's level
    # nobody chose (both-bad in an imported file that had no such answer) would
    # otherwise lower the chance agreement p_e for every project alike.
    used = counts.sum(axis=0) > 0
    w = np.eye(counts.shape[1]) if weights is None else np.asarray(weights, dtype=float)
    counts, w = counts[:, used], w[np.ix_(used, used)]
    q = counts.shape[1]
    if q < 2:
        return None
    answered = counts.sum(axis=1) >= 1
    rated, rated_freq = counts[answered], freq[answered]
    c, f = _pairable(counts, freq)
    if len(c) == 0:
        return None
    m = c.sum(axis=1)
    weighted = c @ w.T
    pa = float((f * (c * (weighted - 1)).sum(axis=1) / (m * (m - 1))).sum() / f.sum())
    pi = (rated_freq @ (rated / rated.sum(axis=1, keepdims=True))) / rated_freq.sum()
    pe = float(w.sum() / (q * (q - 1)) * (pi * (1 - pi)).sum())
    return None if pe >= 1 else (pa - pe) / (1 - pe)


@dataclass(frozen=True)
class PairKappa:
    rater_a: object
    rater_b: object
    n_items: int
    kappa: float | None


def pairwise_cohen_kappa(by_rater: dict[object, dict[object, float]], domain: Sequence[float],
                         *, min_items: int = 2) -> list[PairKappa]:
    """Quadratic-weighted Cohen's κ for every pair of raters that share at least
    ``min_items`` items (sklearn's ``cohen_kappa_score``); κ is None where both
    gave one constant answer (no variance to agree on)."""
    from sklearn.metrics import cohen_kappa_score

    raters = sorted(by_rater, key=str)
    labels = list(domain)
    out = []
    for i, a in enumerate(raters):
        for b in raters[i + 1:]:
            shared = sorted(set(by_rater[a]) & set(by_rater[b]), key=str)
            if len(shared) < min_items:
                continue
            ya = [by_rater[a][k] for k in shared]
            yb = [by_rater[b][k] for k in shared]
            if len(set(ya) | set(yb)) < 2:
                kappa = None
            else:
                value = cohen_kappa_score(ya, yb, labels=labels, weights="quadratic")
                kappa = float(value) if np.isfinite(value) else None
            out.append(PairKappa(a, b, len(shared), kappa))
    return out


def counts_from_items(items: Iterable[Sequence[object]], categories: Sequence[object]) -> np.ndarray:
    """A counts table from each item's list of answers (answers outside
    ``categories`` are left out)."""
    index = {c: i for i, c in enumerate(categories)}
    rows = []
    for answers in items:
        row = [0] * len(categories)
        for a in answers:
            if a in index:
                row[index[a]] += 1
        rows.append(row)
    return np.asarray(rows, dtype=float).reshape(len(rows), len(categories))
