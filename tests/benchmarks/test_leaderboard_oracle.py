"""The oracle bound of benchmarks/leaderboard_oracle.py and the Fisher information it
rests on (models_svc.ml.leaderboard.information)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from models_svc.ml import leaderboard as lb

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def oracle():
    spec = importlib.util.spec_from_file_location("leaderboard_oracle", REPO / "benchmarks" / "leaderboard_oracle.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["leaderboard_oracle"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("leaderboard_oracle", None)


def _neg_log_likelihood(beta, battles, wins_share=0.5):
    # expected log-likelihood with every pair's outcome at its model probability
    n = len(beta)
    total = 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                p = 1 / (1 + np.exp(-(beta[i] - beta[j])))
                total -= battles[i, j] * wins_share * np.log(p)
    return total


def test_information_is_the_hessian_of_the_bradley_terry_likelihood():
    beta = np.array([0.0, 0.4, -1.1, 2.0])
    rng = np.random.default_rng(0)
    battles = rng.integers(1, 9, size=(4, 4)).astype(float)
    battles = np.triu(battles, 1) + np.triu(battles, 1).T
    h = lb.information(beta, battles)
    eps = 1e-4
    numeric = np.zeros((4, 4))
    for i in range(4):
        for j in range(4):
            def f(di, dj):
                b = beta.copy()
                b[i] += di
                b[j] += dj
                return _neg_log_likelihood(b, battles, 1.0)
            numeric[i, j] = (f(eps, eps) - f(eps, -eps) - f(-eps, eps) + f(-eps, -eps)) / (4 * eps * eps)
    # the expected Hessian: each battle counted once per direction, so halve the numeric one
    assert np.allclose(h, numeric / 2, atol=1e-4)
    assert np.allclose(h.sum(axis=1), 0)  # scores are relative


def test_equal_sources_leave_nothing_to_gain_over_a_balanced_mix_in_total_variance(oracle):
    # For equal strengths the balanced design is A-optimal: no split of the votes
    # lowers the summed variance. (The median can still be lowered a little by
    # neglecting one source, which is what a median-width target rewards.)
    beta = np.zeros(4)
    mix = np.full(6, 1 / 6)
    centred = np.eye(4) - 1 / 4

    def total(share):
        return float(np.trace(centred @ oracle.variance_at_one_vote(beta, share) @ centred))

    value, _ = oracle.best_share(total, [np.log(mix), np.random.default_rng(1).normal(size=6)])
    assert value / total(mix) == pytest.approx(1.0, abs=0.01)
    width = oracle.objectives(beta)["width"]
    assert oracle.best_share(width, [np.log(mix)])[0] <= width(mix) + 1e-12


def test_the_order_oracle_spends_its_votes_on_the_close_neighbours(oracle):
    # sources 0 and 1 are close; 2 and 3 are far from them and from each other
    beta = np.array([0.05, 0.0, 2.0, -2.0])
    mix = np.full(6, 1 / 6)
    order = oracle.objectives(beta)["order"]
    value, share = oracle.best_share(order, [np.log(mix)])
    assert value / order(mix) < 0.5
    iu, ju = np.triu_indices(4, 1)
    close = int(np.flatnonzero((iu == 0) & (ju == 1))[0])
    assert share[close] == max(share)
