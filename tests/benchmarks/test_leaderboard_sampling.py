"""The leaderboard-sampling replay (benchmarks/leaderboard_sampling.py): labels are
revealed only when a strategy asks for them, the tiny run is quick, and the JSON has
its documented fields."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ls():
    spec = importlib.util.spec_from_file_location("leaderboard_sampling", REPO / "benchmarks" / "leaderboard_sampling.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["leaderboard_sampling"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("leaderboard_sampling", None)


def synthetic(ls, seed: int = 0, per_pair: int = 30):
    """Four sources of strengths 0, 0.3, 0.6, 1.5; every pair compared ``per_pair``
    times over prompts shared by three comparisons."""
    rng = np.random.default_rng(seed)
    strength = [0.0, 0.3, 0.6, 1.5]
    triples = []
    for i in range(4):
        for j in range(i + 1, 4):
            for k in range(per_pair):
                p = 1 / (1 + np.exp(-(strength[i] - strength[j])))
                outcome = "tie" if rng.random() < 0.1 else ("A" if rng.random() < p else "B")
                triples.append((f"s{i}", f"s{j}", outcome, f"prompt-{(i * 4 + j) * per_pair + k // 3}"))
    return ls._votes("synthetic", triples)


def flipped(outcomes, keep):
    swap = {"A": "B", "B": "A", "tie": "A"}
    return [o if k in keep else swap[o] for k, o in enumerate(outcomes)]


@pytest.mark.parametrize("strategy", ["uniform", "arena", "variance", "width"])
def test_replay_reveals_labels_only_when_asked(ls, strategy):
    data = synthetic(ls)
    oracle = ls.Oracle(data.outcomes)
    trace = ls.replay(data, oracle, strategy, seed=3, every=10, rounds=10, budget=60)
    assert trace.picks == oracle.revealed and len(set(oracle.revealed)) == 60  # each label once, when picked
    # Every label the run did not ask for is flipped: the run cannot tell.
    other = ls.Oracle(flipped(data.outcomes, set(oracle.revealed)))
    again = ls.replay(data, other, strategy, seed=3, every=10, rounds=10, budget=60)
    assert again.picks == trace.picks and again.checkpoints == trace.checkpoints
    # … whereas flipping the asked-for labels changes what it saw.
    changed = ls.replay(data, ls.Oracle(flipped(data.outcomes, set())), strategy, seed=3, every=10, rounds=10, budget=60)
    assert changed.checkpoints != trace.checkpoints


def test_active_rules_spend_votes_differently_from_uniform(ls):
    data = synthetic(ls)

    def share_on_weakest_neighbours(strategy):  # votes between s0 and s1, the closest pair
        trace = ls.replay(data, ls.Oracle(data.outcomes), strategy, seed=0, every=10, rounds=10, budget=80)
        return np.mean([{int(data.a[i]), int(data.b[i])} == {0, 1} for i in trace.picks])

    # s3 is far ahead: the rank rule spends little on pairs whose order is settled and
    # more on the close pairs than uniform's one in six.
    assert share_on_weakest_neighbours("variance") > share_on_weakest_neighbours("uniform")


def test_votes_to_targets_counts_from_when_the_target_holds_to_the_end(ls):
    ref = {"ranking": ["x", "y", "z"]}
    trace = ls.Trace(checkpoints=[
        (0, (), (), float("inf")),
        (10, ("x", "y", "z"), (3, 2, 1), 50.0),   # right, then lost again: does not count
        (20, ("y", "x", "z"), (3, 2, 1), 40.0),
        (30, ("x", "z", "y"), (3, 2, 1), 30.0),   # top-1 right from here on
        (40, ("x", "y", "z"), (3, 2, 1), 20.0),
    ])
    assert ls.votes_to_targets(trace, ref, tau=0.9, width=35.0) == {"top1": 30, "tau": 40, "width": 30}


@pytest.mark.shared_data
def test_tiny_run_writes_the_documented_json(ls, tmp_path, shared_data):
    out = tmp_path / "ls.json"
    result = ls.main(["--data", str(shared_data), "--datasets", "cnndm", "--seeds", "2", "--rounds", "5",
                      "--ref-rounds", "20", "--every", "40", "--out-json", str(out)])
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(result))
    assert {"command", "uptime_before", "uptime_after", "config", "datasets", "cpus", "wall_seconds"} <= set(saved)
    assert "load average" in saved["uptime_before"]
    d = saved["datasets"]["cnndm"]
    assert d["votes"] == 437 and len(d["sources"]) == 4 and len(d["reference"]["ranking"]) == 4
    for name, s in d["strategies"].items():
        for target in ("top1", "tau", "width"):
            assert {"median", "p25", "p75", "not_reached", "ratio_to_uniform"} <= set(s[target]), (name, target)
            assert len(s["votes_to"][target]) == 2
    assert d["strategies"]["uniform"]["top1"]["ratio_to_uniform"] == 1.0
