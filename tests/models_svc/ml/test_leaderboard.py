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


# --- the bootstrap resamples clusters (comparisons, prompts), not single labels ----------


def _median_width(pairs, **kw) -> float:
    return float(np.median([r.high - r.low for r in leaderboard(pairs, **kw)]))


def test_tripling_every_label_within_its_comparison_leaves_the_interval_width_unchanged():
    # Three identical labels on a comparison carry no more information than one; a
    # bootstrap that draws labels would treat them as three and shrink the interval ≈ √3.
    rng = np.random.default_rng(0)
    names, beta = ["strong", "mid", "weak"], np.array([1.0, 0.0, -1.0])
    ia = rng.integers(3, size=600)
    ib = (ia + rng.integers(1, 3, size=600)) % 3  # another source
    a_wins = rng.random(600) < 1 / (1 + np.exp(beta[ib] - beta[ia]))
    pairs = [(names[x], names[y], "A" if win else "B", comparison)
             for comparison, (x, y, win) in enumerate(zip(ia, ib, a_wins))]
    tripled = [p for p in pairs for _ in range(3)]
    original = _median_width(pairs, rounds=400)
    clustered = _median_width(tripled, rounds=400)
    label_level = _median_width([p[:3] for p in tripled], rounds=400)  # no cluster ids: each label its own
    assert clustered > 0.8 * original
    assert label_level < 0.7 * original  # what resampling labels did


def _pandalm_pairs(shared_data, by: str) -> list[tuple]:
    """PandaLM's human test set as battles: three annotators per pair; ``by`` picks the
    cluster: "prompt" (instruction + input; up to ten pairs of the five systems share
    one), "comparison" (the row) or "label" (none: the old bootstrap)."""
    import json

    rows = json.loads((shared_data / "pandalm" / "testset-v1.json").read_text(encoding="utf-8"))
    outcome = {0: "tie", 1: "A", 2: "B"}
    out = []
    for r in rows:
        a, b = r["cmp_key"].split("_", 1)
        cluster = {"prompt": (r["instruction"], r["input"]), "comparison": r["idx"]}.get(by)
        for k in (1, 2, 3):
            out.append((a, b, outcome[r[f"annotator{k}"]]) + (() if cluster is None else (cluster,)))
    return out


@pytest.mark.shared_data
def test_pandalm_intervals_widen_when_prompts_are_resampled_whole(shared_data):
    prompt = {r.source: r for r in leaderboard(_pandalm_pairs(shared_data, "prompt"), rounds=200)}
    comparison = {r.source: r for r in leaderboard(_pandalm_pairs(shared_data, "comparison"), rounds=200)}
    label = {r.source: r for r in leaderboard(_pandalm_pairs(shared_data, "label"), rounds=200)}
    assert len(prompt) == 5 and {r.battles for r in prompt.values()} == {r.battles for r in label.values()}
    assert all(prompt[s].score == pytest.approx(label[s].score) for s in label)  # the point fit is unchanged

    def ratio(rows):
        return float(np.median([(rows[s].high - rows[s].low) / (label[s].high - label[s].low) for s in label]))

    # Measured (seed 0, 200 rounds): comparisons 1.60×, prompts 2.33×.
    assert ratio(comparison) > 1.2
    assert ratio(prompt) > 1.2 and ratio(prompt) > ratio(comparison)


@pytest.mark.django_db
@pytest.mark.shared_data
def test_source_battles_cluster_by_prompt_on_imported_pandalm(project, shared_data):
    from dataio.imports.services import import_file
    from annotate.models import Comparison, ImportJob
    from models_svc.selection import source_battles

    job = import_file(project=project, format="pandalm", path=shared_data / "pandalm" / "testset-v1.json")
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    battles = source_battles(project)
    assert len(battles) == 3 * 999 and all(len(b) == 4 for b in battles)
    prompts = set(Comparison.objects.filter(project=project).values_list("prompt_id", flat=True))
    assert {b[3] for b in battles} == prompts and len(prompts) == 170
    widths = {r.source: r.high - r.low for r in leaderboard(battles, rounds=200)}
    label = {r.source: r.high - r.low for r in leaderboard([b[:3] for b in battles], rounds=200)}
    assert float(np.median([widths[s] / label[s] for s in label])) > 1.2


def test_plan_votes_aims_at_unsure_neighbours_and_new_sources():
    from models_svc.ml.leaderboard import plan_votes

    wins = np.zeros((4, 4))
    wins[0, 1], wins[1, 0] = 40, 0  # 0 always beat 1: settled, though p(1−p) → 0
    wins[1, 2], wins[2, 1] = 21, 19  # 1 vs 2: a coin toss
    wins[0, 2], wins[2, 0] = 38, 2
    available = np.triu(np.full((4, 4), 50.0), 1)
    available[:, 3] = 0  # source 3 not comparable yet
    plan = plan_votes(wins, available, 10)
    assert plan[0] == (1, 2) and plan.count((1, 2)) >= 6, plan
    available[:, 3] = np.triu(np.full((4, 4), 50.0), 1)[:, 3]
    assert plan_votes(wins, available, 1)[0][1] == 3  # a source never seen: cover it first
    assert len(plan_votes(wins, np.triu(np.ones((4, 4)), 1), 100)) == 6  # no more than is open
    with pytest.raises(ValueError, match="objective"):
        plan_votes(wins, available, 1, objective="magic")
