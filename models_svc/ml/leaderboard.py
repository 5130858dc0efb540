"""Arena-style ranking of response sources (the models that wrote the responses):
a Bradley-Terry fit over pairwise labels, with bootstrap confidence intervals.

P(i beats j) = σ(β_i − β_j). β is fitted by Newton steps on the ℓ2-regularised
log-likelihood (the small ridge keeps a source that never lost finite); a tie
counts as half a win for each side. Scores are reported on the Elo-like scale
400·β/ln 10 + 1000, as Chatbot Arena does. Intervals are percentiles of the same
fit on battles resampled with replacement. Pure numpy; no Django.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

SCALE = 400 / math.log(10)


@dataclass(frozen=True)
class Row:
    source: str
    score: float
    low: float
    high: float
    battles: int


def fit(winners: np.ndarray, losers: np.ndarray, weights: np.ndarray, n: int, ridge: float = 1e-2,
        iterations: int = 50) -> np.ndarray:
    """β (mean zero) maximising Σ w log σ(β_w − β_l) − ridge/2 ‖β‖²."""
    beta = np.zeros(n)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(beta[winners] - beta[losers])))
        g = np.full(n, 0.0)
        np.add.at(g, winners, weights * (1 - p))
        np.add.at(g, losers, -weights * (1 - p))
        g -= ridge * beta
        h = np.zeros((n, n))
        c = weights * p * (1 - p)
        np.add.at(h, (winners, winners), c)
        np.add.at(h, (losers, losers), c)
        np.add.at(h, (winners, losers), -c)
        np.add.at(h, (losers, winners), -c)
        h += ridge * np.eye(n)
        step = np.linalg.solve(h, g)
        beta += step
        if np.abs(step).max() < 1e-9:
            break
    return beta - beta.mean()


def _battles(pairs: Sequence[tuple[str, str, str]], index: dict[str, int]):
    """(source_a, source_b, outcome A|B|tie) → winners, losers, weights; a tie is two
    half-weight battles, one each way."""
    w, l, wt = [], [], []
    for a, b, outcome in pairs:
        ia, ib = index[a], index[b]
        if outcome == "A":
            w.append(ia), l.append(ib), wt.append(1.0)
        elif outcome == "B":
            w.append(ib), l.append(ia), wt.append(1.0)
        else:
            w.extend((ia, ib)), l.extend((ib, ia)), wt.extend((0.5, 0.5))
    return np.array(w, dtype=int), np.array(l, dtype=int), np.array(wt)


def leaderboard(pairs: Sequence[tuple[str, str, str]], *, rounds: int = 200, seed: int = 0,
                level: float = 0.95) -> list[Row]:
    """Sources ranked best first with a ``level`` bootstrap interval each.
    ``pairs``: (source of response A, source of response B, "A"|"B"|"tie")."""
    pairs = [p for p in pairs if p[0] != p[1] and p[2] in ("A", "B", "tie")]
    sources = sorted({s for a, b, _ in pairs for s in (a, b)})
    if len(sources) < 2:
        return []
    index = {s: i for i, s in enumerate(sources)}
    w, l, wt = _battles(pairs, index)
    point = fit(w, l, wt, len(sources))
    rng = np.random.default_rng(seed)
    boot = np.empty((rounds, len(sources)))
    for r in range(rounds):
        pick = rng.integers(len(pairs), size=len(pairs))
        bw, bl, bwt = _battles([pairs[i] for i in pick], index)
        boot[r] = fit(bw, bl, bwt, len(sources))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail], axis=0)
    counts = {s: 0 for s in sources}
    for a, b, _ in pairs:
        counts[a] += 1
        counts[b] += 1
    rows = [Row(s, 1000 + SCALE * point[i], 1000 + SCALE * low[i], 1000 + SCALE * high[i], counts[s])
            for i, s in enumerate(sources)]
    return sorted(rows, key=lambda r: -r.score)


def most_informative_pair(rows: Sequence[Row]) -> tuple[str, str] | None:
    """The two sources adjacent in the ranking whose intervals overlap the most:
    a label between them shrinks the uncertainty that matters for the order."""
    best, pair = -math.inf, None
    for x, y in zip(rows, rows[1:]):
        overlap = min(x.high, y.high) - max(x.low, y.low)
        if overlap > best:
            best, pair = overlap, (x.source, y.source)
    return pair
