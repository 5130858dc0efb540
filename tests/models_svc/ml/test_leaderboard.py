"""Bradley-Terry leaderboard of response sources."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models_svc.ml.leaderboard import fit, leaderboard, most_informative_pair


def test_two_sources_recover_the_log_odds():
    # 75 wins of a over b in 100: β_a − β_b → ln 3 (ridge is tiny).
    w = np.array([0] * 75 + [1] * 25)
    l = 1 - w
    beta = fit(w, l, np.ones(100), 2, ridge=1e-6)
    assert beta[0] - beta[1] == pytest.approx(math.log(3), rel=1e-3)
    assert beta.sum() == pytest.approx(0.0, abs=1e-9)


def test_ties_count_half_each_way():
    rows = leaderboard([("x", "y", "tie")] * 20, rounds=20)
    assert rows[0].score == pytest.approx(rows[1].score, abs=1e-6)


def test_ranking_and_intervals_follow_strength():
    rng = np.random.default_rng(0)
    strength = {"strong": 1.5, "mid": 0.0, "weak": -1.5}
    names = list(strength)
    pairs = []
    for _ in range(600):
        a, b = rng.choice(names, 2, replace=False)
        p = 1 / (1 + math.exp(-(strength[a] - strength[b])))
        pairs.append((a, b, "A" if rng.random() < p else "B"))
    rows = leaderboard(pairs, rounds=100, seed=1)
    assert [r.source for r in rows] == ["strong", "mid", "weak"]
    for r in rows:
        assert r.low <= r.score <= r.high and r.battles > 300
    assert rows[0].low > rows[1].high  # clearly separated with this much data
    assert most_informative_pair(rows) in {("strong", "mid"), ("mid", "weak")}
