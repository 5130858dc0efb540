"""Smoke test of the active-learning harness (benchmarks/active_learning.py) on a
tiny synthetic problem: random features, no backbone, a few epochs."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dataio.imports.parsers.base import LabelRecord, Record, ResponseRecord
from models_svc.ml.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def al():
    # One thread, as the harness trains its heads: tiny matmuls only lose to thread sync.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("al_harness", REPO / "benchmarks" / "active_learning.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["al_harness"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("al_harness", None)
    torch.set_num_threads(threads)


@pytest.fixture
def cfg(tmp_path, al):
    # The harness's resolved config without the bundled backbone; few epochs keep the test fast.
    return TrainConfig(backbone=str(tmp_path), epochs=3, **al.LEARNER).resolve()


def synthetic(al, seed: int = 0, items: int = 60, pool: int = 48, held: int = 30):
    """Pairs whose label is the sign of a hidden linear reward, some ties."""
    rng = np.random.default_rng(seed)
    x = torch.nn.functional.normalize(torch.randn(items, 16, generator=torch.Generator().manual_seed(seed)), dim=-1)
    w = torch.randn(16, generator=torch.Generator().manual_seed(seed + 1))
    reward = (x @ w).numpy()

    def pairs(n):
        a, b = rng.integers(0, items, n), rng.integers(0, items, n)
        b = np.where(a == b, (b + 1) % items, b)
        return a, b, np.sign(reward[a] - reward[b]).astype(int)

    pa, pb, pl = pairs(pool)
    pl[:4] = 0  # a few ties in the pool
    ea, eb, el = pairs(held)
    # Each item's prompt embedding (BAL-PM's space): one vector per pool prompt, shared by its items.
    prompt_of_item = np.zeros(items, dtype=int)
    prompt_of_item[pa] = np.arange(pool) // 2
    prompt_of_item[pb] = np.arange(pool) // 2
    prompt_vectors = torch.randn(pool // 2 + 1, 8, generator=torch.Generator().manual_seed(seed + 2))
    return al.SimData(
        features=x,
        pool_a=pa,
        pool_b=pb,
        pool_prompts=[f"p{i // 2}" for i in range(pool)],  # two pairs per prompt: the per-prompt cap matters
        pool_labels=pl,
        eval_a=np.where(el < 0, eb, ea),
        eval_b=np.where(el < 0, ea, eb),
        eval_tie=np.zeros(held, dtype=bool),
        prompt_features=prompt_vectors[prompt_of_item],
    )


def test_curves_have_one_point_per_round_and_documented_keys(al, cfg):
    data = synthetic(al)
    result = al.simulate(data, list(al.STRATEGIES), 2, seed_labels=8, batch=6, rounds=2, cfg=cfg)
    assert set(result) == {"strategies", "target_accuracy"}
    documented = {
        "labels", "accuracy", "mean", "std", "final_mean", "final_std", "auc_mean", "auc_std",
        "auc_vs_random_mean", "auc_vs_random_std", "labels_to_target", "ratio_to_random", "round_seconds",
    }
    for name, s in result["strategies"].items():
        assert set(s) == documented, name
        assert s["labels"] == [8, 14, 20]
        assert len(s["accuracy"]) == 2 and all(len(c) == 3 for c in s["accuracy"])
        assert all(0.0 <= a <= 1.0 for c in s["accuracy"] for a in c)
    # Same seed → same seed set and first model for every strategy (a paired comparison).
    firsts = {tuple(c[0] for c in s["accuracy"]) for s in result["strategies"].values()}
    assert len(firsts) == 1
    assert result["target_accuracy"] == result["strategies"]["random"]["final_mean"]
    assert result["strategies"]["random"]["auc_vs_random_mean"] == 0.0
    json.dumps(result)  # the JSON the CLI writes


@pytest.mark.parametrize("strategy", ["uncertainty", "balpm"])
def test_labels_are_revealed_only_for_acquired_pairs(al, cfg, strategy):
    data = synthetic(al, seed=3)
    oracle = al.Oracle(data.pool_labels)
    curve = al.run_curve(data, strategy, 0, seed_labels=8, batch=6, rounds=3, cfg=cfg, oracle=oracle)
    assert len(oracle.revealed) == len(set(oracle.revealed)) == curve["labels"][-1] == 26
    # Flip every label the learner was never shown: the run must not change at all.
    hidden = np.setdiff1d(np.arange(len(data.pool_a)), oracle.revealed)
    flipped = data.pool_labels.copy()
    flipped[hidden] = -flipped[hidden]
    again = al.run_curve(dataclasses.replace(data, pool_labels=flipped), strategy, 0,
                         seed_labels=8, batch=6, rounds=3, cfg=cfg)
    assert again["accuracy"] == curve["accuracy"]


def test_diverse_strategy_respects_the_per_prompt_cap(al):
    rng = np.random.default_rng(0)
    diffs = rng.normal(size=(4, 20))
    prompts = [f"p{i // 5}" for i in range(20)]
    picked = al.pick("uncertainty+diverse", diffs, 8, exclude=np.array([0, 1]), prompts=prompts,
                     pair_embeddings=rng.normal(size=(20, 5)), rng=rng, diversity=0.5, diverse_cap=2)
    assert len(picked) == 8 and not {0, 1} & set(picked)
    assert max(sum(prompts[i] == p for i in picked) for p in set(prompts)) == 2


def _record(pid, texts, votes):
    responses = [ResponseRecord(f"id-{t}", t) for t in texts]
    labels = [LabelRecord(responses[0].external_id, responses[1].external_id, f"w{i}", c) for i, c in enumerate(votes)]
    return Record(1, pid, [{"role": "user", "content": pid}], {}, responses, labels)


def test_repeated_judgments_merge_by_majority(al):
    pairs = al.merge_labels([
        _record("p1", ("x", "y"), ["A", "A", "tie"]),  # PandaLM-like row: 2 of 3 → A
        _record("p2", ("x", "y"), ["A", "B", "tie"]),  # no majority → tie
        _record("p3", ("y", "x"), ["A"]),  # summarize-like: one worker per row, responses in either order …
        _record("p3", ("x", "y"), ["B"]),  # … both said "y"
        _record("p3", ("x", "z"), ["A"]),
        _record("p3", ("x", "z"), ["B"]),  # 1–1 → tie
    ])
    by_key = {(p.prompt_id, p.text_a, p.text_b): (p.label, p.votes) for p in pairs}
    assert by_key == {
        ("p1", "x", "y"): (1, 3),
        ("p2", "x", "y"): (0, 3),
        ("p3", "x", "y"): (-1, 2),
        ("p3", "x", "z"): (0, 2),
    }


def _pandalm_file(al, tmp_path, monkeypatch, n: int, per_prompt: int) -> Path:
    """A small PandaLM-format file (3 annotators a row, some disagreeing), and random
    features instead of the backbone."""
    rows = [
        {"idx": i, "instruction": f"question {i // per_prompt}", "input": "", "response1": f"good {i}",
         "response2": f"bad {i}", "annotator1": 1, "annotator2": 1 if i % 5 else 0, "annotator3": 1 if i % 7 else 2,
         "cmp_key": "m1_m2"}
        for i in range(n)
    ]
    source = tmp_path / "pandalm.json"
    source.write_text(json.dumps(rows))
    monkeypatch.setattr(al, "embed", lambda items, cache_dir, threads, learner: (
        torch.nn.functional.normalize(torch.randn(len(items), 8, generator=torch.Generator().manual_seed(0)), dim=-1),
        torch.randn(len(items), 4, generator=torch.Generator().manual_seed(1))))
    return source


def test_cli_writes_json_svg_and_png(al, tmp_path, monkeypatch):
    """The whole script on a small PandaLM-format file, random features instead of the backbone."""
    source = _pandalm_file(al, tmp_path, monkeypatch, 40, per_prompt=1)
    out_json, out_svg = tmp_path / "r.json", tmp_path / "r.svg"
    monkeypatch.setattr(sys, "argv", [
        "active_learning.py", "--format", "pandalm", "--path", str(source), "--seeds", "2", "--rounds", "2",
        "--batch", "5", "--seed-labels", "5", "--eval-fraction", "0.3", "--strategies", "random,bald",
        "--cache-dir", str(tmp_path / "cache"), "--out-json", str(out_json), "--out-plot", str(out_svg),
        "--out-png", str(tmp_path / "r.png"),
    ])
    al.main()  # sets one thread, as the fixture does
    report = json.loads(out_json.read_text())
    assert set(report) == {"command", "dataset", "config", "strategies", "target_accuracy"}
    timing = json.loads((tmp_path / "r.timing.json").read_text())
    assert set(timing) == {"uptime_before", "uptime_after", "wall_seconds", "embed_seconds", "round_seconds"} and set(timing["round_seconds"]) == {"random", "bald"}
    assert report["dataset"]["pairs"] == 40 and report["dataset"]["pool"] + report["dataset"]["eval"] == 40
    assert set(report["strategies"]) == {"random", "bald"}
    assert out_svg.read_text().startswith("<svg")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --replot redraws from the JSON alone, without data or a backbone.
    monkeypatch.setattr(sys, "argv", ["active_learning.py", "--replot", str(out_json), "--out-png", str(tmp_path / "again.png")])
    al.main()
    assert (tmp_path / "again.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_two_runs_of_variance_uncertainty_and_balpm_write_identical_json(al, tmp_path, monkeypatch):
    """Issue #20, fix 6: the same command twice gives the same file, byte for byte,
    whatever state the global generators are in (timings go to a file of their own)."""
    import random

    source = _pandalm_file(al, tmp_path, monkeypatch, 60, per_prompt=2)
    outputs = []
    for run in range(2):
        random.seed(run)
        np.random.seed(run)
        torch.manual_seed(run)
        out = tmp_path / "run.json"  # the same command twice: the file holds the command
        monkeypatch.setattr(sys, "argv", [
            "active_learning.py", "--format", "pandalm", "--path", str(source), "--seeds", "2", "--rounds", "3",
            "--batch", "5", "--seed-labels", "6", "--eval-fraction", "0.3", "--strategies", "variance,uncertainty,balpm",
            "--cache-dir", str(tmp_path / "cache"), "--out-json", str(out),
        ])
        al.main()
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    report = json.loads(outputs[0])
    assert set(report["strategies"]) == {"variance", "uncertainty", "balpm"}
    assert all(len(c) == 4 for s in report["strategies"].values() for c in s["accuracy"])


def test_the_table_does_not_call_a_run_without_random_not_reached(al, cfg):
    """Without random there is no target: the row must not read as a strategy that lost."""
    result = al.simulate(synthetic(al), ["variance"], 1, seed_labels=8, batch=6, rounds=1, cfg=cfg)
    row = al.table(result).splitlines()[-1]
    assert result["target_accuracy"] is None and "no random run" in row and "not reached" not in row


def test_default_recipe_z_scores_with_the_trained_items_statistics(al, tmp_path):
    features = torch.tensor([[1.0, 10.0], [3.0, 10.0], [100.0, -5.0]])
    z = al.standardized(features, np.array([0, 1, 1]))  # trained on items 0 and 1 only
    assert torch.allclose(z[:2, 0], torch.tensor([-1.0, 1.0])) and torch.allclose(z[2], torch.tensor([98.0, -15e6]))
    cfg = TrainConfig(backbone=str(tmp_path), epochs=3, **al.RECIPES["default"]).resolve()
    assert (cfg.layers, cfg.standardize) == (4, True)
    result = al.simulate(synthetic(al), ["random", "balpm"], 1, seed_labels=8, batch=6, rounds=1, cfg=cfg)
    assert all(0.0 <= a <= 1.0 for s in result["strategies"].values() for c in s["accuracy"] for a in c)


def test_runs_of_other_strategies_merge_into_the_run_of_all_of_them(al, tmp_path, monkeypatch):
    """HH's table is run in two halves side by side; the merged file must be the one
    a single run would write (the curves are the same, the summary recomputed)."""
    source = _pandalm_file(al, tmp_path, monkeypatch, 50, per_prompt=2)

    def run(strategies: str, out: Path) -> dict:
        monkeypatch.setattr(sys, "argv", [
            "active_learning.py", "--format", "pandalm", "--path", str(source), "--seeds", "2", "--rounds", "2",
            "--batch", "5", "--seed-labels", "6", "--eval-fraction", "0.3", "--strategies", strategies,
            "--cache-dir", str(tmp_path / "cache"), "--out-json", str(out),
        ])
        al.main()
        return json.loads(out.read_text())

    whole = run("random,bald,balpm", tmp_path / "whole.json")
    run("balpm", tmp_path / "b.json")
    run("random,bald", tmp_path / "a.json")
    monkeypatch.setattr(sys, "argv", ["active_learning.py", "--merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                                      "--out-json", str(tmp_path / "merged.json")])
    al.main()
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert len(merged.pop("merged_from")) == 2
    assert {k: v for k, v in merged.items() if k != "command"} == {k: v for k, v in whole.items() if k != "command"}
    # The balpm-only half has no target; merged with random it gets one.
    assert json.loads((tmp_path / "b.json").read_text())["target_accuracy"] is None
    monkeypatch.setattr(sys, "argv", ["active_learning.py", "--merge", str(tmp_path / "a.json"), str(tmp_path / "whole.json"),
                                      "--out-json", str(tmp_path / "bad.json")])
    with pytest.raises(ValueError, match="strategy 'random' is in two of the files"):
        al.main()
