"""Acquisition functions against hand-computed values (DESIGN §5)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models_svc.ml import acquisition as acq


def test_uncertainty_and_entropy_by_hand():
    # One member, d = 0 → p = 0.5: u = 0.25, H = ln 2; d = ln 3 → p = 0.75: u = 0.1875
    d = np.array([[0.0, math.log(3)]])
    assert acq.score("uncertainty", d) == pytest.approx([0.25, 0.1875])
    assert acq.score("entropy", d) == pytest.approx([math.log(2), -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))])


def test_bald_is_zero_when_members_agree_and_largest_when_they_disagree():
    agree_unsure = np.array([[0.0], [0.0], [0.0]])  # all say 50/50
    agree_sure = np.array([[5.0], [5.0], [5.0]])
    disagree = np.array([[20.0], [-20.0], [20.0], [-20.0]])  # p ≈ 1, 0, 1, 0 → p̄ = ½
    assert acq.score("bald", agree_unsure)[0] == pytest.approx(0.0, abs=1e-12)
    assert acq.score("bald", agree_sure)[0] == pytest.approx(0.0, abs=1e-12)
    assert acq.score("bald", disagree)[0] == pytest.approx(math.log(2), abs=1e-6)  # the maximum
    # mixed case by hand: p = σ(±ln 3) = 0.75, 0.25 → p̄ = ½, mean H = H(0.75)
    mixed = np.array([[math.log(3)], [-math.log(3)]])
    h75 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert acq.score("bald", mixed)[0] == pytest.approx(math.log(2) - h75)


def test_variance_of_differences():
    d = np.array([[1.0, 2.0], [3.0, 2.0]])
    assert acq.score("variance", d) == pytest.approx([1.0, 0.0])


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown strategy 'magic'"):
        acq.score("magic", np.zeros((1, 1)))


def test_successive_elimination_stops_a_resolved_prompt():
    p_bar = np.array([0.95, 0.05, 0.9, 0.55, 0.99])
    labels = np.array([3, 2, 1, 5, 4])
    prompts = ["p1", "p1", "p2", "p3", "p4"]
    resolved = acq.resolved_prompts(p_bar, labels, prompts, delta=0.3, min_labels=2)
    # p1: both pairs confident with ≥2 labels; p2 has too few labels; p3 is unsure.
    assert resolved == {"p1", "p4"}


def test_greedy_batch_in_score_order_with_probability_one():
    picks = acq.select_batch(np.array([0.1, 0.9, 0.5, 0.7]), 3)
    assert [p.index for p in picks] == [1, 3, 2] and all(p.probability == 1.0 for p in picks)


def test_diversity_never_exceeds_the_per_prompt_cap_and_spreads_out():
    rng = np.random.default_rng(0)
    scores = np.linspace(1.0, 0.5, 40)
    prompts = [f"p{i // 10}" for i in range(40)]  # 4 prompts × 10 pairs, best pairs all in p0
    emb = rng.normal(size=(40, 8))
    picks = acq.select_batch(scores, 12, prompt_ids=prompts, embeddings=emb, diversity=0.5, per_prompt_cap=3, rng=rng)
    counts = {}
    for p in picks:
        counts[prompts[p.index]] = counts.get(prompts[p.index], 0) + 1
    assert len(picks) == 12 and max(counts.values()) <= 3 and len(counts) == 4


def test_diversity_penalty_skips_a_near_duplicate():
    scores = np.array([1.0, 0.99, 0.8])
    emb = np.array([[1.0, 0.0], [1.0, 0.001], [0.0, 1.0]])  # pair 1 ≈ pair 0
    assert [p.index for p in acq.select_batch(scores, 2, embeddings=emb, diversity=0.5)] == [0, 2]
    assert [p.index for p in acq.select_batch(scores, 2, embeddings=emb, diversity=0.0)] == [0, 1]


def test_epsilon_exploration_draws_uniformly_at_the_configured_rate():
    rng = np.random.default_rng(12345)
    n, trials, eps = 10, 20000, 0.2
    scores = np.arange(n, dtype=float)  # pair 9 is always the greedy choice
    explored = 0
    hits = np.zeros(n)
    for _ in range(trials):
        (pick,) = acq.select_batch(scores, 1, epsilon=eps, rng=rng)
        explored += pick.explored
        hits[pick.index] += 1
        expected = eps / n + (1 - eps) * (pick.index == 9)
        assert pick.probability == pytest.approx(expected)
    # The exploration rate, and the distribution: P(9) = 1 − ε + ε/n, others ε/n each.
    assert abs(explored / trials - eps) < 4 * math.sqrt(eps * (1 - eps) / trials)
    others = hits[:9] / trials
    assert np.all(np.abs(others - eps / n) < 4 * math.sqrt((eps / n) * (1 - eps / n) / trials))
    # Chi-square of the non-greedy draws against uniform (8 dof; 99.9% quantile 26.1).
    expected = hits[:9].sum() / 9
    assert ((hits[:9] - expected) ** 2 / expected).sum() < 26.1


def test_candidate_pairs_all_or_sampled():
    assert acq.candidate_pairs(4, 45) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    sampled = acq.candidate_pairs(1000, 50, np.random.default_rng(1))
    assert len(sampled) == 50 == len(set(sampled)) and all(0 <= i < j < 1000 for i, j in sampled)


def test_cold_start_is_coverage_first_and_priorities_are_rank_scaled():
    s = acq.cold_start_scores(np.array([2, 0, 1, 0]), np.array([5, 9, 0, 1]), np.random.default_rng(0))
    assert list(np.argsort(-s)) == [3, 1, 2, 0]
    assert list(acq.to_priorities(np.array([0.3, 0.1, 0.9]), scale=100)) == [50, 0, 100]


def test_exact_ties_are_broken_by_the_seeded_generator():
    scores = np.zeros(50)  # every pair ties (say, saturated probabilities)
    first = [p.index for p in acq.select_batch(scores, 5, rng=np.random.default_rng(7))]
    again = [p.index for p in acq.select_batch(scores, 5, rng=np.random.default_rng(7))]
    other = [p.index for p in acq.select_batch(scores, 5, rng=np.random.default_rng(8))]
    assert first == again and first != other and first != [0, 1, 2, 3, 4]
    assert [p.index for p in acq.select_batch(scores, 3)] == [0, 1, 2]  # no generator: the first ones


# ----------------------------------------------------------------------------- BAL-PM


def _prompt_cloud(seed: int = 0, n: int = 40, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim))


def test_digamma_of_integers_by_hand():
    gamma = 0.5772156649015329
    assert acq._digamma_of_integers(np.array([1, 2, 4])) == pytest.approx([-gamma, 1 - gamma, 1 + 1 / 2 + 1 / 3 - gamma])


def test_entropy_term_prefers_a_far_prompt_over_a_near_duplicate_of_a_labelled_one():
    points = _prompt_cloud()
    points[1] = points[0] + 1e-3  # prompt 1 is a near duplicate of prompt 0 …
    points[2] = points[0] + 6.0  # … prompt 2 lies far from every other one
    counts = np.zeros(len(points), dtype=int)
    counts[0] = 1  # prompt 0 is labelled
    entropy = acq.PromptEntropy(points, np.arange(len(points)), counts, k=3)
    terms = entropy.terms
    assert terms[2] > terms[1] and terms[2] == terms.max()
    # Same epistemic score everywhere: the far prompt is picked first, the duplicate never early.
    diffs = np.zeros((4, len(points)))
    picks = acq.balpm_batch(diffs, 5, acq.PromptEntropy(points, np.arange(len(points)), counts, k=3),
                            exclude=[0], rng=np.random.default_rng(0))
    order = [p.index for p in picks]
    assert order[0] == 2 and 1 not in order


def test_each_pick_updates_the_terms_so_a_batch_spreads_over_prompts():
    # Prompts on a line, prompt 0 a little apart at one end: the largest radius, so its
    # pairs (0–3) have the best term. Equal BALD everywhere.
    points = np.array([[-1.5], *([float(i)] for i in range(1, 20))])
    point_of = np.array([0, 0, 0, 0, *range(1, 20)])
    entropy = acq.PromptEntropy(points, point_of, np.zeros(20, dtype=int), k=3)
    before = entropy.terms.copy()
    margin = before[0] - np.sort(before)[-5]  # over the best pair of another prompt
    assert 0 < margin < 1  # less than one label's worth: ψ(2) − ψ(1) = 1
    entropy.add(0)  # one label on prompt 0
    assert np.all(entropy.terms[[1, 2, 3]] == before[[1, 2, 3]] - 1.0) and entropy.counts[0] == 1
    # A static ranking would take all four pairs of prompt 0; the greedy update takes one.
    picks = acq.balpm_batch(np.zeros((4, len(point_of))), 4, acq.PromptEntropy(
        points, point_of, np.zeros(20, dtype=int), k=3), rng=np.random.default_rng(0))
    chosen = [point_of[p.index] for p in picks]
    assert chosen[0] == 0 and chosen.count(0) == 1


def test_balpm_with_beta_zero_is_balds_ranking():
    rng = np.random.default_rng(3)
    diffs = rng.normal(scale=2.0, size=(4, 60))
    points, point_of = _prompt_cloud(2, n=30), rng.integers(0, 30, 60)
    counts = np.bincount(point_of[:10], minlength=30)
    bald = [p.index for p in acq.select_batch(acq.score("bald", diffs), 15, exclude=range(10),
                                              rng=np.random.default_rng(9))]
    zero = [p.index for p in acq.balpm_batch(diffs, 15, acq.PromptEntropy(points, point_of, counts), beta=0.0,
                                             exclude=range(10), rng=np.random.default_rng(9))]
    with_entropy = [p.index for p in acq.balpm_batch(diffs, 15, acq.PromptEntropy(points, point_of, counts),
                                                     beta=1.0, exclude=range(10), rng=np.random.default_rng(9))]
    assert zero == bald and with_entropy != bald


def test_balpm_is_deterministic_given_the_generator():
    rng = np.random.default_rng(4)
    diffs = np.zeros((4, 50))  # every BALD score ties: only the entropy term and the generator decide
    points, point_of = _prompt_cloud(5, n=25), np.repeat(np.arange(25), 2)

    def run(seed: int) -> list[int]:
        entropy = acq.PromptEntropy(points, point_of, np.zeros(25, dtype=int))
        return [p.index for p in acq.balpm_batch(diffs, 12, entropy, rng=np.random.default_rng(seed))]

    assert run(7) == run(7)
    assert len(set(rng.permutation(3))) == 3  # (the module's own generator is untouched by the calls above)


def test_prompt_entropy_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="one entry per prompt"):
        acq.PromptEntropy(np.zeros((3, 2)), np.array([0, 1]), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="index into the prompts"):
        acq.PromptEntropy(np.zeros((3, 2)), np.array([0, 3]), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="non-empty"):
        acq.PromptEntropy(np.zeros((0, 2)), np.array([], dtype=int), np.zeros(0, dtype=int))
