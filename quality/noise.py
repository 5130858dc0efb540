"""Which labels the reward-model ensemble doubts (Secrets of RLHF part II). Plain
numpy, no Django: the audit service and ``benchmarks/noise_audit.py`` share it.

For a labelled pair the ensemble's members give d_m = r_m(chosen) − r_m(rejected);
μ and σ are their mean and standard deviation. The ensemble *contradicts* the
label when μ < 0, and is *sure* of it when |μ| is large against σ, so a label's
evidence of being flipped is z = −μ / σ: large when every member prefers the
rejected response. A pair on which the members agree that the two responses are
about equal (|μ| and σ both small) is *ambiguous*: a label either way says little.
"""

from __future__ import annotations

import numpy as np

FLIP_Z = 1.0  # a label is "likely flipped" when μ is below −1 σ
AMBIGUOUS_SHARE = 0.25  # |μ| and σ both under this share of their medians over the project
EPS = 1e-6


def label_margin(mu_ab: float, choice: str) -> float | None:
    """μ for the label's chosen side, from μ of r(A) − r(B): A keeps it, B negates
    it; a tie or both-bad has no chosen side (None)."""
    if choice == "A":
        return mu_ab
    if choice == "B":
        return -mu_ab
    return None


def flip_evidence(mu_label: np.ndarray | float, sigma: np.ndarray | float) -> np.ndarray | float:
    """z = −μ / σ: how many ensemble spreads the members sit against the label."""
    return -np.asarray(mu_label, dtype=float) / np.maximum(np.asarray(sigma, dtype=float), EPS)


def scales(mu_ab: np.ndarray, sigma: np.ndarray) -> tuple[float, float]:
    """The project's typical |μ| and σ (medians), against which "small" is read."""
    mu_ab, sigma = np.asarray(mu_ab, dtype=float), np.asarray(sigma, dtype=float)
    if mu_ab.size == 0:
        return 0.0, 0.0
    return float(np.median(np.abs(mu_ab))), float(np.median(sigma))


def is_ambiguous(mu_ab: float, sigma: float, typical_mu: float, typical_sigma: float) -> bool:
    return abs(mu_ab) < AMBIGUOUS_SHARE * typical_mu and sigma < typical_sigma


def precision_recall_at_k(evidence: np.ndarray, flipped: np.ndarray, k: int) -> tuple[float, float]:
    """Of the k labels with the most evidence, the share truly flipped (precision)
    and the share of all flipped labels among them (recall)."""
    evidence, flipped = np.asarray(evidence, dtype=float), np.asarray(flipped, dtype=bool)
    top = np.argsort(-evidence, kind="stable")[:k]
    hits = int(flipped[top].sum())
    return hits / max(k, 1), hits / max(int(flipped.sum()), 1)


def histogram(values: np.ndarray, bins: int = 30) -> dict:
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return {"edges": [], "counts": []}
    counts, edges = np.histogram(values, bins=bins)
    return {"edges": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts]}
