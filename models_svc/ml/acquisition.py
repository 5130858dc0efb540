"""Which comparisons to label next (DESIGN §5): pure functions over ensemble outputs.

Inputs are numpy arrays; nothing here touches Django or torch, so the simulation
harness (benchmarks/active_learning.py) and the rescoring task share one code path.

For a candidate pair with ensemble reward differences d_m = r_m(a) − r_m(b),
m = 1..M, and p_m = σ(d_m), p̄ = mean_m p_m:

* ``uncertainty``: u = p̄(1 − p̄)  (``entropy``: H(p̄), the same ordering)
* ``bald``: H(p̄) − mean_m H(p_m) — disagreement between members; zero when they
  agree, however unsure each is (aleatoric noise is not worth a label)
* ``variance``: Var_m d_m
* ``random``: a uniform draw
* ``balpm`` (BAL-PM, Melo et al. 2024): ``bald`` plus β × the candidate's term in
  a k-nearest-neighbour entropy estimate of the labelled prompts' features
  (:class:`PromptEntropy`), updated after every pick of a batch — so labels spread
  over prompt space instead of piling onto a few prompts. It needs each pair's
  prompt features, so it is not a ``score``: see :func:`balpm_batch`.

with H(p) = −p log p − (1 − p) log(1 − p). A batch is then picked greedily, with an
optional diversity penalty (pairs close in embedding space to ones already chosen
lose score), a per-prompt cap, per-prompt successive elimination, and
ε-exploration; each pick carries the probability with which it was chosen, so a
later estimate can re-weight by 1/π.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

STRATEGIES = ("random", "uncertainty", "entropy", "bald", "variance")
EPS = 1e-12
# BAL-PM's defaults, from the authors' released scripts (luckeciano/BAL-PM,
# run_active_learning_adapters*.sh: state_ent_beta 1e-2, state_ent_k 13, features
# z-scored, entropy not normalised). Not tuned on this project's data.
BALPM_BETA = 0.01
BALPM_NEIGHBOURS = 13
_EULER_GAMMA = 0.5772156649015329


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def binary_entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def _members(diffs: np.ndarray) -> np.ndarray:
    d = np.asarray(diffs, dtype=np.float64)
    return d[None, :] if d.ndim == 1 else d  # (M, N)


def mean_probability(diffs: np.ndarray) -> np.ndarray:
    return sigmoid(_members(diffs)).mean(axis=0)


def score(strategy: str, diffs: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Acquisition score per pair (higher = more worth a label). ``diffs`` is (M, N)."""
    d = _members(diffs)
    if strategy == "random":
        return (rng or np.random.default_rng()).random(d.shape[1])
    p = sigmoid(d)
    p_bar = p.mean(axis=0)
    if strategy == "uncertainty":
        return p_bar * (1 - p_bar)
    if strategy == "entropy":
        return binary_entropy(p_bar)
    if strategy == "bald":
        return np.maximum(binary_entropy(p_bar) - binary_entropy(p).mean(axis=0), 0.0)
    if strategy == "variance":
        return d.var(axis=0)
    raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")


def resolved_prompts(
    p_bar: np.ndarray, labels: np.ndarray, prompt_ids: Sequence, *, delta: float = 0.3, min_labels: int = 2
) -> set:
    """Per-prompt successive elimination: a prompt is resolved when every one of its
    pairs has at least ``min_labels`` labels and a confident model, |p̄ − ½| > δ.
    Its pairs are then not worth more labels."""
    confident = (np.abs(np.asarray(p_bar) - 0.5) > delta) & (np.asarray(labels) >= min_labels)
    unresolved = {pid for pid, ok in zip(prompt_ids, confident) if not ok}
    return set(prompt_ids) - unresolved


@dataclass(frozen=True)
class Pick:
    index: int
    probability: float  # with which this pair was the one chosen at its step
    explored: bool


def select_batch(
    scores: np.ndarray,
    k: int,
    *,
    prompt_ids: Sequence | None = None,
    embeddings: np.ndarray | None = None,
    diversity: float = 0.0,
    per_prompt_cap: int | None = None,
    epsilon: float = 0.0,
    exclude: Sequence[int] | np.ndarray = (),
    rng: np.random.Generator | None = None,
    entropy: PromptEntropy | None = None,
    beta: float = 0.0,
) -> list[Pick]:
    """Greedy batch of ``k`` pair indices.

    At each step, with probability ε a uniform draw among the eligible pairs, else
    the best adjusted score. Adjusted score = score − diversity · max cosine
    similarity to the pairs already chosen (embeddings: one vector per pair, e.g.
    the difference of the two responses' embeddings). ``per_prompt_cap`` bounds how
    many pairs of one prompt a batch may hold. With ``entropy`` (BAL-PM), β × each
    pair's prompt-entropy term is added, and every pick updates the terms. Pairs
    with exactly the best score
    (duplicate pairs, saturated probabilities) are told apart by ``rng`` when one is
    given (seeded: reproducible, and not biased toward the pool's first rows), else
    the first one wins."""
    tie_break = rng
    rng = rng or np.random.default_rng()
    s = np.asarray(scores, dtype=np.float64).copy()
    n = len(s)
    eligible = np.ones(n, dtype=bool)
    eligible[np.asarray(exclude, dtype=int)] = False
    unit = None
    if embeddings is not None and diversity > 0:
        e = np.asarray(embeddings, dtype=np.float64)
        unit = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), EPS)
        closest = np.full(n, -np.inf)
    per_prompt: dict = {}
    members: dict = {}
    if prompt_ids is not None and per_prompt_cap is not None:
        for i, pid in enumerate(prompt_ids):
            members.setdefault(pid, []).append(i)
    picks: list[Pick] = []
    while len(picks) < k and eligible.any():
        candidates = np.flatnonzero(eligible)
        adjusted = s[candidates] if unit is None or not picks else s[candidates] - diversity * np.maximum(closest[candidates], 0)
        if entropy is not None:
            adjusted = adjusted + beta * entropy.terms[candidates]
        tied = np.flatnonzero(adjusted == adjusted.max())
        best = candidates[tied[0] if len(tied) == 1 or tie_break is None else tie_break.choice(tied)]
        explore = epsilon > 0 and rng.random() < epsilon
        choice = candidates[rng.integers(len(candidates))] if explore else best
        uniform = epsilon / len(candidates)
        probability = uniform + (1 - epsilon) * (choice == best)
        picks.append(Pick(int(choice), float(probability), bool(explore)))
        eligible[choice] = False
        if prompt_ids is not None and per_prompt_cap is not None:
            pid = prompt_ids[choice]
            per_prompt[pid] = per_prompt.get(pid, 0) + 1
            if per_prompt[pid] >= per_prompt_cap:
                eligible[members[pid]] = False
        if unit is not None:
            closest = np.maximum(closest, unit @ unit[choice])
        if entropy is not None:
            entropy.add(int(choice))
    return picks


def _digamma_of_integers(n: np.ndarray) -> np.ndarray:
    """ψ(n) for integers n ≥ 1: −γ + H_(n−1) (harmonic number)."""
    n = np.asarray(n, dtype=np.int64)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, max(int(n.max(initial=1)), 1)))])
    return harmonic[n - 1] - _EULER_GAMMA


class PromptEntropy:
    """BAL-PM's task-agnostic term: how much a candidate's prompt would add to the
    entropy of the labelled prompts' distribution in feature space.

    In a Kozachenko-Leonenko / KSG estimate Ĥ = ψ(N) + log c_d + (1/N) Σ_i
    [d log ε_i − ψ(m_i)], a point's own term is d log ε_i − ψ(m_i). As in the
    authors' code: ε = 2ρ, with ρ the distance from the candidate's prompt to its
    k-th nearest other prompt among *all* prompts, labelled or not (the labelled
    set alone is too small to place k neighbours in hundreds of dimensions);
    m = n + 1, with n the labels already on prompts inside that ball (its own
    prompt's included); and d taken as 1 (their ``state_ent_d``). So the term is
    log(2ρ + 10⁻⁴) − ψ(n + 1). A prompt in a sparse
    region far from labelled ones scores high; a near duplicate of a labelled
    prompt, or another pair of one, scores low. ``add`` labels one more pair and
    updates every count, so a greedy batch spreads out. Radii stay fixed within a
    batch.

    ``points``: one feature row per distinct prompt, z-scored here per dimension
    (the authors z-score too); ``point_of``: each candidate pair's prompt row;
    ``counts``: labels already on each prompt. Everything is numpy and
    deterministic; a round costs O(P² d) for the radii and O(P d) per pick."""

    def __init__(self, points: np.ndarray, point_of: np.ndarray, counts: np.ndarray, k: int = BALPM_NEIGHBOURS,
                 chunk: int = 1024):
        x = np.asarray(points, dtype=np.float64)
        if x.ndim != 2 or not len(x):
            raise ValueError(f"prompt features must be a non-empty (prompts, dims) array, got shape {x.shape}")
        self.point_of = np.asarray(point_of, dtype=np.int64)
        self.counts = np.asarray(counts, dtype=np.int64).copy()
        if len(self.counts) != len(x) or (len(self.point_of) and not 0 <= self.point_of.min() <= self.point_of.max() < len(x)):
            raise ValueError("prompt entropy: counts must have one entry per prompt and point_of index into the prompts")
        self._x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-6)
        neighbours = min(k, len(x) - 1)
        self.radius = np.ones(len(x))  # a lone prompt: any radius, the term is the same for every candidate
        self.within = np.zeros(len(x), dtype=np.int64)
        labelled = np.flatnonzero(self.counts)
        for start in range(0, len(x), chunk):
            rows = slice(start, start + chunk)
            d = self._distances(self._x[rows], self._x)
            if neighbours > 0:
                d_others = d.copy()
                d_others[np.arange(d.shape[0]), np.arange(start, start + d.shape[0])] = np.inf
                self.radius[rows] = np.partition(d_others, neighbours - 1, axis=1)[:, neighbours - 1]
            inside = d[:, labelled] <= self._ball(self.radius[rows])[:, None]
            self.within[rows] = inside @ self.counts[labelled]
        self._point_terms = self._terms()

    @staticmethod
    def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        sq = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
        return np.sqrt(np.maximum(sq, 0.0))

    @staticmethod
    def _ball(radius: np.ndarray) -> np.ndarray:
        # A hair of tolerance: the k-th neighbour sits on the ball's edge, and its
        # distance is recomputed in another product when a pick updates the counts.
        return radius * (1 + 1e-9) + 1e-12

    def _terms(self) -> np.ndarray:
        return np.log(2.0 * self.radius + 1e-4) - _digamma_of_integers(self.within + 1)

    @property
    def terms(self) -> np.ndarray:
        """The term of each candidate pair (its prompt's), given the labels so far."""
        return self._point_terms[self.point_of]

    def add(self, candidate: int) -> None:
        """One more label on candidate pair ``candidate``'s prompt."""
        q = int(self.point_of[candidate])
        self.counts[q] += 1
        d = self._distances(self._x, self._x[q : q + 1])[:, 0]
        self.within += d <= self._ball(self.radius)
        self._point_terms = self._terms()


def balpm_batch(
    diffs: np.ndarray,
    k: int,
    entropy: PromptEntropy,
    *,
    beta: float = BALPM_BETA,
    prompt_ids: Sequence | None = None,
    per_prompt_cap: int | None = None,
    epsilon: float = 0.0,
    exclude: Sequence[int] | np.ndarray = (),
    rng: np.random.Generator | None = None,
) -> list[Pick]:
    """BAL-PM's greedy batch: BALD + β × prompt-entropy term, each pick updating
    the entropy terms (``entropy`` is changed in place)."""
    return select_batch(score("bald", diffs), k, prompt_ids=prompt_ids, per_prompt_cap=per_prompt_cap,
                        epsilon=epsilon, exclude=exclude, rng=rng, entropy=entropy, beta=beta)


def candidate_pairs(k: int, max_pairs: int, rng: np.random.Generator | None = None) -> list[tuple[int, int]]:
    """All K(K−1)/2 pairs of K responses, or a uniform sample of ``max_pairs`` of them
    when there are more (drawn without listing all of them for very large K)."""
    total = k * (k - 1) // 2
    if total <= max_pairs:
        return [(i, j) for i in range(k) for j in range(i + 1, k)]
    rng = rng or np.random.default_rng()
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < max_pairs:
        i, j = rng.choice(k, size=2, replace=False)
        chosen.add((int(min(i, j)), int(max(i, j))))
    return sorted(chosen)


def cold_start_scores(labels: np.ndarray, prompt_labels: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Coverage first, before any model exists: pairs with fewer labels first, then
    pairs of prompts with fewer labels, random among equals."""
    rng = rng or np.random.default_rng()
    labels = np.asarray(labels, dtype=np.float64)
    prompt_labels = np.asarray(prompt_labels, dtype=np.float64)
    return -labels * 1e6 - prompt_labels * 1e3 + rng.random(len(labels))


def to_priorities(scores: np.ndarray, scale: int = 1_000_000) -> np.ndarray:
    """Integer priorities for the queue's indexed ``ORDER BY priority DESC``: ranks
    scaled into [0, scale], so ties and the score's units do not matter."""
    s = np.asarray(scores, dtype=np.float64)
    if len(s) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(np.argsort(s, kind="stable"), kind="stable")
    return np.round(order / max(len(s) - 1, 1) * scale).astype(np.int64)
