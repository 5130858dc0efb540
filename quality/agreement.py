"""Agreement statistics over a counts table (DESIGN §6). Plain numpy, no Django:
``quality.services`` turns labels into tables and calls these.

A *counts table* has one row per item (a comparison, a rated response) and one
column per category (a choice, a level); cell (i, k) is how many raters put item i
in category k. Every statistic here reads that table, so memory grows with the
items, never with items × raters.

Where the figures come from:

* Krippendorff's α: the ``krippendorff`` package (``value_counts=``).
* Cohen's κ with quadratic weights, per annotator pair: ``sklearn.metrics``.
* Fleiss' κ and Gwet's AC1/AC2 are computed here, in the form that allows a
  different number of raters per item (Gwet, *Handbook of Inter-Rater
  Reliability*, 4th ed., ch. 2 and 4). The reference libraries cannot take such
  data as it is: ``statsmodels``' ``fleiss_kappa`` asserts the same number of
  raters on every item (summarize batch13 has 2 to 10), and ``irrCAC`` 0.4 pins
  scipy 1.12 and counts a missing rating as a category under pandas 3. On data
  they do accept (every item rated by the same raters) both formulas reduce to
  theirs; ``tests/quality`` checks them against ``statsmodels`` and ``irrCAC``.

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


def pairable(counts: np.ndarray) -> np.ndarray:
    """The rows of items that at least two raters answered."""
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2:
        counts = counts.reshape(0, 0)
    return counts[counts.sum(axis=1) >= 2]


def symmetric(counts: np.ndarray, flip: Sequence[int]) -> np.ndarray:
    """The table stacked on itself with columns permuted by ``flip`` (A ↔ B, or a
    signed strength s ↔ −s): each pairwise item counted in both namings."""
    counts = np.asarray(counts, dtype=float)
    return np.vstack([counts, counts[:, list(flip)]])


def raw_agreement(counts: np.ndarray) -> tuple[float | None, int]:
    """The share of rater pairs on an item that gave the same answer, over every
    pair of every item; and the number of such pairs."""
    c = pairable(counts)
    m = c.sum(axis=1)
    pairs = float((m * (m - 1)).sum())
    if pairs == 0:
        return None, 0
    return float((c * (c - 1)).sum() / pairs), int(pairs // 2)


def krippendorff_alpha(counts: np.ndarray, level: str, domain: Sequence[float] | None = None) -> float | None:
    """Krippendorff's α from the ``krippendorff`` package; None when it is undefined
    (no item with two ratings, or every rating the same value)."""
    import krippendorff

    c = pairable(counts)
    if len(c) == 0 or np.count_nonzero(c.sum(axis=0)) < 2:
        return None
    kwargs = {"value_domain": list(domain)} if domain is not None else {}
    value = krippendorff.alpha(value_counts=c, level_of_measurement=level, **kwargs)
    return None if not np.isfinite(value) else float(value)


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Fleiss' κ for any number of raters per item: p_a is the mean over items of
    Σ_k n_ik (n_ik − 1) / (n_i (n_i − 1)); p_e = Σ_k p_k², with p_k the share of
    all ratings in category k (Fleiss 1971; equals statsmodels' when every n_i is
    the same)."""
    c = pairable(counts)
    if len(c) == 0:
        return None
    m = c.sum(axis=1)
    pa = float(((c * (c - 1)).sum(axis=1) / (m * (m - 1))).mean())
    p = c.sum(axis=0) / c.sum()
    pe = float((p * p).sum())
    return None if pe >= 1 else (pa - pe) / (1 - pe)


def quadratic_weights(domain: Sequence[float]) -> np.ndarray:
    """w_kl = 1 − (x_k − x_l)² / (max − min)²: full credit on the diagonal, none at
    opposite ends of the scale."""
    x = np.asarray(domain, dtype=float)
    span = float(x.max() - x.min()) if len(x) > 1 else 1.0
    return 1.0 - ((x[:, None] - x[None, :]) / (span or 1.0)) ** 2


def gwet_ac(counts: np.ndarray, weights: np.ndarray | None = None) -> float | None:
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
    # q counts the categories the raters used, as irrCAC does: a scale's level
    # nobody chose (both-bad in an imported file that had no such answer) would
    # otherwise lower the chance agreement p_e for every project alike.
    used = counts.sum(axis=0) > 0
    w = np.eye(counts.shape[1]) if weights is None else np.asarray(weights, dtype=float)
    counts, w = counts[:, used], w[np.ix_(used, used)]
    q = counts.shape[1]
    if q < 2:
        return None
    rated = counts[counts.sum(axis=1) >= 1]
    c = pairable(counts)
    if len(c) == 0:
        return None
    m = c.sum(axis=1)
    weighted = c @ w.T
    pa = float(((c * (weighted - 1)).sum(axis=1) / (m * (m - 1))).mean())
    pi = (rated / rated.sum(axis=1, keepdims=True)).mean(axis=0)
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
