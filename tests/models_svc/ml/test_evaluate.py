"""Evaluation functions against hand-computed values."""

from __future__ import annotations

import math

import pytest

from models_svc.ml import evaluate


def test_pairwise_accuracy_excludes_ties_and_counts_zero_difference_as_half():
    assert evaluate.pairwise_accuracy([1.0, -1.0, 0.0, 2.0], [False, False, False, True]) == pytest.approx(0.5)
    assert math.isnan(evaluate.pairwise_accuracy([1.0], [True]))


def test_accuracy_by_strength_buckets():
    got = evaluate.accuracy_by_strength([1.0, -1.0, 2.0, 3.0, -5.0], [1, 1, 2, None, 0], [False, False, False, False, True])
    assert got == {"1": 0.5, "2": 1.0, "unknown": 1.0}


def test_best_of_four_counts_groups_of_at_least_four():
    groups = [([0.1, 0.9, 0.3, 0.2], 1), ([1.0, 0.0, 0.0, 0.0], 2), ([1.0, 2.0, 3.0], 2), ([1.0, 1.0, 0.0, 0.0, 0.0], 0)]
    # hit, miss, skipped (3 responses), tie at the top is a miss
    assert evaluate.best_of_n_accuracy(groups) == pytest.approx(1 / 3)


def test_per_criterion_accuracy_uses_only_a_b_choices():
    choices = [{"helpful": "A", "safe": "B"}, {"helpful": "B", "safe": "tie"}, {"helpful": "na"}]
    diffs = {"helpful": [1.0, 1.0, 5.0], "safe": [-2.0, 0.0, 0.0]}
    assert evaluate.per_criterion_accuracy(choices, diffs) == {"helpful": 0.5, "safe": 1.0}


def test_expected_calibration_error_ten_bins():
    # bins: [0, .1): |0 − .05|; [.1, .2): |1 − .15|; [.9, 1]: |.5 − .95| (two items)
    got = evaluate.expected_calibration_error([0.05, 0.15, 0.95, 0.95], [0, 1, 1, 0])
    assert got == pytest.approx(0.25 * 0.05 + 0.25 * 0.85 + 0.5 * 0.45)
    assert evaluate.expected_calibration_error([1.0], [1]) == pytest.approx(0.0)  # p = 1 lands in the last bin


def test_calibration_inputs_mirror_each_pair():
    p, y = evaluate.pair_calibration_inputs([0.0, math.log(3.0), 7.0], [False, False, True])
    assert p.tolist() == pytest.approx([0.5, 0.75, 0.5, 0.25])
    assert y.tolist() == [1, 1, 0, 0]


def test_length_correlation_is_spearman():
    assert evaluate.length_correlation([1.0, 2.0, 3.0], [10, 200, 3000]) == pytest.approx(1.0)
    # ranks 4,3,2,1 vs 2,3,4,1: 1 − 6·(4+0+4+0)/(4·15) = 0.2
    assert evaluate.length_correlation([3.0, 2.0, 1.0, 0.0], [10, 20, 30, 5]) == pytest.approx(0.2)
    assert math.isnan(evaluate.length_correlation([1.0, 1.0], [1, 2]))


def test_agreement_is_share_of_same_sign_differences():
    assert evaluate.agreement([1.0, -1.0, 2.0, 0.0], [2.0, 1.0, 3.0, 0.0]) == pytest.approx(0.75)


def test_known_best_groups_need_a_response_that_beat_every_other():
    # Prompt p: w beat x, y, z directly → known best. Prompt q: cycle → no known best.
    pids = ["p", "p", "p", "p", "q", "q", "q"]
    a = ["w", "w", "w", "x", "a", "b", "c"]
    b = ["x", "y", "z", "y", "b", "c", "a"]
    ra = [3.0, 3.0, 3.0, 1.0, 1.0, 1.0, 1.0]
    rb = [1.0, 2.0, 0.5, 2.0, 0.0, 0.0, 0.0]
    groups = evaluate.known_best_groups(pids, a, b, ra, rb)
    assert groups == [([3.0, 1.0, 2.0, 0.5], 0)]
    assert evaluate.best_of_n_accuracy(groups) == 1.0
    # A tie with the best means it did not beat everyone.
    assert evaluate.known_best_groups(pids[:3], a[:3], b[:3], ra[:3], rb[:3], [False, True, False]) == []


def test_paired_gain_interval_covers_zero_for_equal_models_and_clears_it_for_a_clearly_better_one():
    import numpy as np

    from models_svc.ml.evaluate import paired_accuracy_gain

    rng = np.random.default_rng(0)
    prompts = np.repeat(np.arange(150), 2)  # 300 held-out pairs, two per prompt
    old = rng.normal(0.3, 1.0, 300)
    same = paired_accuracy_gain(old, old, np.zeros(300, bool), prompts)
    assert same["gain"] == 0 and same["low"] == same["high"] == 0 and (same["pairs"], same["prompts"]) == (300, 150)
    # A model right on 80% of the pairs against one right on about 60%.
    better = np.where(rng.random(300) < 0.8, 1.0, -1.0)
    g = paired_accuracy_gain(better, old, np.zeros(300, bool), prompts)
    assert g["low"] > 0 and g["low"] < g["gain"] < g["high"]
    # Lucky by one pair out of eight: the interval straddles zero.
    small = paired_accuracy_gain([1, 1, 1, 1, 1, -1, -1, -1], [1, 1, 1, 1, -1, -1, -1, -1], [False] * 8, range(8))
    assert small["gain"] == 0.125 and small["low"] <= 0 < small["high"]
    # Ties are left out; the interval of a set with no non-tie pair is undefined.
    assert np.isnan(paired_accuracy_gain([1.0], [1.0], [True], ["p"])["low"])
