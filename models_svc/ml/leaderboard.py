"""Arena-style ranking of response sources (the models that wrote the responses):
a Bradley-Terry fit over pairwise labels, with bootstrap confidence intervals.

P(i beats j) = σ(β_i − β_j). β is fitted by Newton steps on the ℓ2-regularised
log-likelihood (the small ridge keeps a source that never lost finite); a tie
counts as half a win for each side. Scores are reported on the Elo-like scale
400·β/ln 10 + 1000, as Chatbot Arena does. Intervals are percentiles of the same
fit on a cluster bootstrap: the labels of one comparison are correlated (several
annotators judge the same pair), and so are the comparisons of one prompt (they
share its responses), so whole clusters are resampled with replacement, never single
labels; resampling labels makes the intervals too narrow (by about √m for m labels
per comparison). Pure numpy; no Django.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np

SCALE = 400 / math.log(10)

# (source of response A, source of response B, "A"|"B"|"tie"[, cluster id]). Labels
# with the same cluster id are resampled together (source_battles passes the prompt);
# a pair without one, or with None, is a cluster of its own.
Pair = tuple[str, str, str] | tuple[str, str, str, Hashable | None]


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


def _battles(pairs: Sequence[Pair], index: dict[str, int]):
    """Pairs → winners, losers, weights and the pair each battle comes from; a tie is
    two half-weight battles, one each way."""
    w, l, wt, origin = [], [], [], []
    for k, (a, b, outcome, *_) in enumerate(pairs):
        ia, ib = index[a], index[b]
        if outcome == "A":
            w.append(ia), l.append(ib), wt.append(1.0), origin.append(k)
        elif outcome == "B":
            w.append(ib), l.append(ia), wt.append(1.0), origin.append(k)
        else:
            w.extend((ia, ib)), l.extend((ib, ia)), wt.extend((0.5, 0.5)), origin.extend((k, k))
    return np.array(w, dtype=int), np.array(l, dtype=int), np.array(wt), np.array(origin, dtype=int)


_OWN = object()  # marks a pair that is a cluster of its own


def _clusters(pairs: Sequence[Pair]) -> np.ndarray:
    """Each pair's cluster as 0..k−1, in order of first appearance."""
    ids: dict = {}
    out = np.empty(len(pairs), dtype=int)
    for k, p in enumerate(pairs):
        key = p[3] if len(p) > 3 and p[3] is not None else (_OWN, k)
        out[k] = ids.setdefault(key, len(ids))
    return out


def _fit_grouped(key: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """``fit`` on battles summed per (winner, loser): the likelihood depends on the
    battles only through these sums, so the fit is the same and its cost no longer
    grows with the number of labels."""
    total = np.bincount(key, weights=weights, minlength=n * n)
    nz = np.flatnonzero(total)
    return fit(nz // n, nz % n, total[nz], n)


def leaderboard(pairs: Sequence[Pair], *, rounds: int = 200, seed: int = 0, level: float = 0.95) -> list[Row]:
    """Sources ranked best first with a ``level`` bootstrap interval each.
    ``pairs``: (source of response A, source of response B, "A"|"B"|"tie"[, cluster]);
    the bootstrap draws clusters (e.g. prompts) with replacement and keeps each drawn
    cluster's labels together. Without cluster ids every label is its own cluster,
    which understates the uncertainty when labels share a comparison or a prompt."""
    pairs = [p for p in pairs if p[0] != p[1] and p[2] in ("A", "B", "tie")]
    sources = sorted({s for p in pairs for s in p[:2]})
    if len(sources) < 2:
        return []
    n = len(sources)
    index = {s: i for i, s in enumerate(sources)}
    w, l, wt, origin = _battles(pairs, index)
    key = w * n + l
    point = _fit_grouped(key, wt, n)
    clusters = _clusters(pairs)
    k = int(clusters.max()) + 1
    cluster_of_battle = clusters[origin]
    rng = np.random.default_rng(seed)
    boot = np.empty((rounds, n))
    for r in range(rounds):
        times_drawn = np.bincount(rng.integers(k, size=k), minlength=k)
        boot[r] = _fit_grouped(key, wt * times_drawn[cluster_of_battle], n)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail], axis=0)
    counts = {s: 0 for s in sources}
    for a, b, *_ in pairs:
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


def _normal_tail(z: np.ndarray) -> np.ndarray:
    """P(N(0,1) > z), without scipy (the web process imports this module)."""
    return 0.5 * np.vectorize(math.erfc)(np.asarray(z, dtype=float) / math.sqrt(2))


def count_vote(wins: np.ndarray, ia: int, ib: int, outcome: str) -> None:
    """Add one battle of sources ``ia`` and ``ib`` to the win matrix ``plan_votes``
    reads (``wins[i, j]``: i's wins over j); a tie is half a win to each."""
    if outcome == "A":
        wins[ia, ib] += 1
    elif outcome == "B":
        wins[ib, ia] += 1
    else:
        wins[ia, ib] += 0.5
        wins[ib, ia] += 0.5


def pair_information(beta: np.ndarray) -> np.ndarray:
    """p(1−p) for every two sources: the Fisher information one battle between i and j
    carries about β_i − β_j."""
    prob = 1.0 / (1.0 + np.exp(-(beta[:, None] - beta[None, :])))
    return prob * (1 - prob)


def information(beta: np.ndarray, battles: np.ndarray) -> np.ndarray:
    """Fisher information of β after ``battles[i, j]`` battles between i and j
    (symmetric; any non-negative reals, so a planned allocation works too): the
    graph Laplacian weighted by battles × p(1−p). Singular along the all-ones
    direction (scores are relative); callers add a ridge or take a pseudo-inverse."""
    h = -battles * pair_information(beta)
    np.fill_diagonal(h, 0.0)
    h[np.diag_indices(len(beta))] = -h.sum(axis=1)
    return h


def plan_votes(wins: np.ndarray, available: np.ndarray, k: int, *, objective: str = "rank",
               ridge: float = 1e-2, prior_tie: float = 0.5) -> list[tuple[int, int]]:
    """The next ``k`` source pairs to compare, chosen greedily to shrink the variance
    that matters (Chatbot Arena's variance-reduction sampling, as a batch).

    ``wins[i, j]``: weight of battles i won against j so far (a tie half each way);
    ``available[i, j]`` (i < j): how many open comparisons each pair still has.
    The Bradley-Terry fit gives β and the Fisher information H; one more vote
    between i and j adds p(1−p)(e_i − e_j)(e_i − e_j)ᵀ to H, so its effect on the
    covariance H⁻¹ is a rank-one update, no refit and no label needed. ``objective``:
    "rank" — the variance of the gaps between neighbours in the current ranking,
    each weighted by the chance that the two are in the wrong order (pairs already
    separated count for little); "width" — the summed variance of the centred
    scores (the intervals' widths). Within the batch H is updated after each pick,
    so the plan spreads over pairs as their variance falls.

    ``prior_tie``: a virtual tie of this weight between every two sources. Without it
    a pair one side always won has p(1−p) → 0, so its gap looks infinitely uncertain
    and the plan would keep asking for it; the bootstrap knows better, and so does
    half a tie (36–0 then reads as a gap of ~4 ± 1.4 natural units)."""
    n = wins.shape[0]
    wins = wins + prior_tie * (1 - np.eye(n))
    nz = np.flatnonzero(wins)
    beta = fit(nz // n, nz % n, wins.ravel()[nz], n, ridge=ridge) if len(nz) else np.zeros(n)
    c_pair = pair_information(beta)
    cov = np.linalg.inv(information(beta, wins + wins.T) + ridge * np.eye(n))
    if objective == "rank":
        order = np.argsort(-beta, kind="stable")
        contrasts = np.zeros((n - 1, n))
        contrasts[np.arange(n - 1), order[:-1]] = 1.0
        contrasts[np.arange(n - 1), order[1:]] = -1.0
        gaps = contrasts @ beta
        sd = np.sqrt(np.maximum(np.einsum("ki,ij,kj->k", contrasts, cov, contrasts), 1e-12))
        weights = _normal_tail(np.abs(gaps) / sd) + 1e-6  # P(wrong order), floored so ties still break
    elif objective == "width":
        contrasts = np.eye(n) - 1.0 / n
        weights = np.ones(n)
    else:
        raise ValueError(f"unknown objective {objective!r}; choose rank or width")
    left = np.triu(np.asarray(available, dtype=float), 1).copy()
    iu, ju = np.triu_indices(n, 1)
    u = np.zeros((len(iu), n))
    u[np.arange(len(iu)), iu] = 1.0
    u[np.arange(len(iu)), ju] = -1.0
    c = c_pair[iu, ju]
    plan = []
    for _ in range(k):
        open_ = left[iu, ju] > 0
        if not open_.any():
            break
        su = u @ cov  # (pairs, n): Σu for each candidate
        quad = np.einsum("pi,pi->p", su, u)
        proj = su @ contrasts.T  # (pairs, contrasts): vᵀΣu
        gain = c * (weights[None, :] * proj ** 2).sum(axis=1) / (1 + c * quad)
        gain[~open_] = -np.inf
        best = int(np.argmax(gain))
        plan.append((int(iu[best]), int(ju[best])))
        left[iu[best], ju[best]] -= 1
        cov = cov - c[best] * np.outer(su[best], su[best]) / (1 + c[best] * quad[best])
    return plan


TARGET_WIDTH = 50.0  # score points: a median 95 % interval of ±25, where neighbours 50 apart separate


@dataclass(frozen=True)
class Projection:
    votes: int  # labels the leaderboard is fitted on
    median_width: float
    target_width: float
    votes_needed: int  # in all, at the same mix of pairs
    more: int


def projected_votes(rows: Sequence[Row], votes: int, target_width: float = TARGET_WIDTH) -> Projection | None:
    """Votes needed for the median interval to shrink to ``target_width``: a width
    falls as 1/√votes, so n·(w/target)². An estimate for more votes of the same mix;
    None without a leaderboard."""
    if not rows or votes <= 0:
        return None
    width = float(np.median([r.high - r.low for r in rows]))
    needed = max(votes, math.ceil(votes * (width / target_width) ** 2))
    return Projection(votes, width, target_width, needed, needed - votes)
