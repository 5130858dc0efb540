"""Held-out evaluation: pure functions over arrays.

Convention: ``diff`` is r(A) − r(B) for each pair, where A is the preferred
response (``chosen_text``) unless the pair is a tie. A difference of exactly 0
counts as half right (the model could not decide). Functions return ``nan`` when
nothing qualifies (no non-tie pairs, no group of 4), never raise on empty input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import spearmanr


def _correct(diff: np.ndarray) -> np.ndarray:
    return np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))


def pairwise_accuracy(diff: Sequence[float], tie: Sequence[bool] | None = None) -> float:
    """Share of non-tie pairs where the preferred response scores higher."""
    d = np.asarray(diff, dtype=float)
    keep = ~np.asarray(tie, dtype=bool) if tie is not None else np.ones(len(d), dtype=bool)
    return float(_correct(d[keep]).mean()) if keep.any() else float("nan")


def accuracy_by_strength(
    diff: Sequence[float], strength: Sequence[int | None], tie: Sequence[bool] | None = None
) -> dict[str, float]:
    """Pairwise accuracy per strength value ("1", "2", "3", or "unknown"), ties excluded."""
    d = np.asarray(diff, dtype=float)
    ties = np.asarray(tie, dtype=bool) if tie is not None else np.zeros(len(d), dtype=bool)
    labels = np.array(["unknown" if s is None else str(s) for s in strength])
    return {
        label: pairwise_accuracy(d[labels == label], ties[labels == label])
        for label in sorted(set(labels[~ties].tolist()))
    }


def best_of_n_accuracy(groups: Sequence[tuple[Sequence[float], int]], min_size: int = 4) -> float:
    """Share of groups (predicted scores, index of the known best response) with at
    least ``min_size`` responses where the top-scored response is the best one
    (random = 1/n; 25% for groups of 4). A tie at the top counts as not found."""
    hits = []
    for scores, best in groups:
        s = np.asarray(scores, dtype=float)
        if len(s) < min_size:
            continue
        top = np.flatnonzero(s == s.max())
        hits.append(float(len(top) == 1 and top[0] == best))
    return float(np.mean(hits)) if hits else float("nan")


def known_best_groups(
    prompt_ids: Sequence[object],
    a_ids: Sequence[object],
    b_ids: Sequence[object],
    r_a: Sequence[float],
    r_b: Sequence[float],
    tie: Sequence[bool] | None = None,
) -> list[tuple[list[float], int]]:
    """Groups for :func:`best_of_n_accuracy` from preferred-first pairs: per prompt,
    the responses (by id) with their scores, and the index of the known best one —
    the response preferred over every other response of the prompt in a direct
    comparison. Prompts without such a response (incomplete or cyclic comparisons,
    or a tie with the best) are left out."""
    ties = np.asarray(tie, dtype=bool) if tie is not None else np.zeros(len(a_ids), dtype=bool)
    scores: dict[object, dict[object, float]] = {}
    beaten: dict[object, dict[object, set[object]]] = {}
    for pid, a, b, sa, sb, t in zip(prompt_ids, a_ids, b_ids, r_a, r_b, ties, strict=True):
        scores.setdefault(pid, {}).update({a: float(sa), b: float(sb)})
        wins = beaten.setdefault(pid, {})
        wins.setdefault(a, set())
        wins.setdefault(b, set())
        if not t:
            wins[a].add(b)
    groups = []
    for pid, by_id in scores.items():
        ids = list(by_id)
        best = [i for i, r in enumerate(ids) if beaten[pid][r] >= set(ids) - {r}]
        if len(best) == 1:
            groups.append(([by_id[r] for r in ids], best[0]))
    return groups


def per_criterion_accuracy(
    choices: Sequence[Mapping[str, str]], diffs: Mapping[str, Sequence[float]]
) -> dict[str, float]:
    """Accuracy per criterion against the pairs' per-criterion choices.

    ``choices[i][k]`` is A, B, tie or na for pair i; ``diffs[k][i]`` is the model's
    r_k(A) − r_k(B) (a per-criterion head, or the overall reward for every k). Only
    A/B choices count.
    """
    out: dict[str, float] = {}
    for key in sorted({k for c in choices for k in c}):
        if key not in diffs:
            continue
        d = np.asarray(diffs[key], dtype=float)
        signed = [(d[i] if c[key] == "A" else -d[i]) for i, c in enumerate(choices) if c.get(key) in ("A", "B")]
        if signed:
            out[key] = float(_correct(np.asarray(signed)).mean())
    return out


def expected_calibration_error(prob: Sequence[float], outcome: Sequence[float], n_bins: int = 10) -> float:
    """ECE = Σ_b (n_b / N) · |mean outcome_b − mean prob_b| over equal-width bins of
    predicted P(A≻B) on [0, 1] (the last bin includes 1)."""
    p = np.asarray(prob, dtype=float)
    y = np.asarray(outcome, dtype=float)
    if len(p) == 0:
        return float("nan")
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            ece += sel.mean() * abs(y[sel].mean() - p[sel].mean())
    return float(ece)


def pair_calibration_inputs(diff: Sequence[float], tie: Sequence[bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(P, outcome) for ECE from preferred-first differences, in both orders:
    (σ(Δ), 1) and (1 − σ(Δ), 0) per non-tie pair. Without the mirrored half every
    outcome would be 1 and ECE would only measure under-confidence."""
    d = np.asarray(diff, dtype=float)
    if tie is not None:
        d = d[~np.asarray(tie, dtype=bool)]
    p = 1.0 / (1.0 + np.exp(-d))
    return np.concatenate([p, 1.0 - p]), np.concatenate([np.ones(len(d)), np.zeros(len(d))])


def length_correlation(rewards: Sequence[float], lengths: Sequence[int]) -> float:
    """Spearman ρ between reward and response length (characters); a length-biased
    model has ρ well above 0."""
    r = np.asarray(rewards, dtype=float)
    n = np.asarray(lengths, dtype=float)
    if len(r) < 2 or np.all(r == r[0]) or np.all(n == n[0]):
        return float("nan")
    return float(spearmanr(r, n).statistic)


def agreement(diff_new: Sequence[float], diff_previous: Sequence[float]) -> float:
    """Share of pairs where two models' differences r(A) − r(B) have the same sign
    (0 is its own sign) — how much a candidate changes the ranking of the active model."""
    a = np.sign(np.asarray(diff_new, dtype=float))
    b = np.sign(np.asarray(diff_previous, dtype=float))
    return float((a == b).mean()) if len(a) else float("nan")


def paired_accuracy_gain(
    diff_new: Sequence[float],
    diff_old: Sequence[float],
    tie: Sequence[bool],
    groups: Sequence[object],
    *,
    rounds: int = 2000,
    seed: int = 0,
) -> dict[str, float | int]:
    """Held-out accuracy gain of a new model over an old one on the same pairs, with a
    95 % percentile interval from a paired bootstrap that resamples whole groups
    (prompts: a prompt's pairs share its text, so they are not independent). Each
    round draws as many groups as there are, with replacement, and recomputes
    both accuracies on the drawn pairs. ``low``/``high`` are nan when no non-tie
    pair exists."""
    keep = ~np.asarray(tie, dtype=bool)
    new = _correct(np.asarray(diff_new, dtype=float)[keep])
    old = _correct(np.asarray(diff_old, dtype=float)[keep])
    g = np.asarray([str(x) for x in groups], dtype=object)[keep]
    out: dict[str, float | int] = {"pairs": int(keep.sum()), "prompts": len(set(g.tolist()))}
    if not len(new):
        return {**out, "gain": float("nan"), "low": float("nan"), "high": float("nan")}
    _, index = np.unique(g.astype(str), return_inverse=True)
    n_groups = int(index.max()) + 1
    gain_sum = np.bincount(index, weights=new - old, minlength=n_groups)
    count = np.bincount(index, minlength=n_groups).astype(float)
    draws = np.random.default_rng(seed).integers(0, n_groups, size=(rounds, n_groups))
    # Each drawn group contributes its pairs' summed gain and its pair count.
    weights = np.stack([np.bincount(row, minlength=n_groups) for row in draws])
    gains = (weights @ gain_sum) / (weights @ count)
    low, high = np.percentile(gains, [2.5, 97.5])
    return {**out, "gain": float((new - old).mean()), "low": float(low), "high": float(high)}
