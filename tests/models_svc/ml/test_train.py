"""Training in both modes on a tiny random-weight model: parameters move, artifacts
reload to identical scores, cancel leaves nothing, finetune resumes exactly."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel

from models_svc.ml.config import TrainConfig
from models_svc.ml.data import PairExample, RatedExample
from models_svc.ml.infer import RewardModel, build_head_model, embed_items
from models_svc.ml.presets import default_backbone_path
from models_svc.ml.train import Cancelled, train_finetune, train_head


def make_pairs(n: int) -> list[PairExample]:
    pairs = []
    for i in range(n):
        conv = [{"role": "user", "content": f"How do I fix problem number {i}?"}]
        pairs.append(
            PairExample(
                prompt_id=f"p{i}",
                conversation=conv,
                chosen_text=f"Here is a careful, kind answer to problem {i}.",
                rejected_text=f"No. Figure out {i} yourself.",
                tie=i % 9 == 0,
                strength=None if i % 9 == 0 else 1 + i % 3,
                criteria={"helpful": "A", "safe": "tie"},
            )
        )
    return pairs


def make_ratings(pairs: list[PairExample]) -> list[RatedExample]:
    out = []
    for i, p in enumerate(pairs):
        out.append(RatedExample(p.prompt_id, p.conversation, p.chosen_text, {"helpful": 4.0, "verbosity": 3.0}))
        out.append(RatedExample(p.prompt_id, p.conversation, p.rejected_text, {"helpful": 0.0, "verbosity": None if i % 2 else 1.0}))
    return out


PAIRS = make_pairs(30)
RATINGS = make_ratings(PAIRS)
CONV = PAIRS[1].conversation
RESPONSES = [PAIRS[1].chosen_text, PAIRS[1].rejected_text, "Something else entirely."]


def head_config(backbone: Path, **kw) -> TrainConfig:
    settings = {"epochs": 3, "batch_size": 8, "eval_every": 2, "max_length": 48, **kw}
    return TrainConfig(backbone=str(backbone), mode="head", **settings)


def finetune_config(backbone: Path, **kw) -> TrainConfig:
    settings = {"batch_size": 4, "grad_accum": 2, "epochs": 1, "eval_every": 2, "max_length": 48, "lr": 1e-3, **kw}
    return TrainConfig(backbone=str(backbone), mode="finetune", **settings)


def assert_same_scores(a: RewardModel, b: RewardModel) -> None:
    items = [(CONV, r) for r in RESPONSES]
    sa, sb = a.score_items(items), b.score_items(items)
    assert np.array_equal(sa.members, sb.members)
    assert np.array_equal(sa.conservative, sb.conservative)
    assert sa.criteria.keys() == sb.criteria.keys()
    for k in sa.criteria:
        assert np.array_equal(sa.criteria[k], sb.criteria[k])


def test_head_mode_trains_records_curves_and_reloads_to_identical_scores(tiny_backbone: Path, tmp_path: Path):
    reports = []
    cfg = head_config(tiny_backbone, cache_dir=str(tmp_path / "cache"), strength="margin")
    result = train_head(cfg, PAIRS, progress_cb=lambda f, m: reports.append(f))

    initial = build_head_model(cfg.resolve(), [], result.model.head.feature_dim, result.model.head.prompt_dim)
    trained = result.model.head.state_dict()
    assert any(not torch.equal(v, trained[k]) for k, v in initial.state_dict().items() if k.startswith("heads."))
    assert reports[-1] == 1.0 and reports == sorted(reports)
    assert result.curves and {"step", "loss", "eval_accuracy"} <= result.curves[-1].keys()
    assert {"eval_accuracy", "ece", "accuracy_by_strength", "length_spearman"} <= result.metrics.keys()
    assert result.config["ensemble_size"] == 4 and Path(result.config["backbone"]).is_absolute()

    rows = result.model.score(CONV, RESPONSES)
    assert len(rows) == 3 and all(r["std"] > 0 for r in rows)
    assert all(r["conservative"] == pytest.approx(r["reward"] - r["std"]) for r in rows)

    path = result.save(tmp_path / "artifact")
    assert {p.name for p in path.iterdir()} == {"config.json", "heads.safetensors", "metrics.json"}
    # Same embedding source on both sides: BLAS results can differ in the last bit
    # with the batch a text was embedded in, which is not what this test is about.
    assert_same_scores(result.model, RewardModel.load(path, cache_dir=tmp_path / "cache"))


def test_standardized_features_use_training_statistics_and_reload(tiny_backbone: Path, tmp_path: Path):
    cfg = head_config(tiny_backbone, cache_dir=str(tmp_path / "cache"), features="joint+turn+response")  # on by default
    train, held = PAIRS[:-2], PAIRS[-2:]
    result = train_head(cfg, train, eval_pairs=held)
    model = result.model
    assert model.head.feature_dim == 3 * model.backbone.dim
    # The statistics are the training items' (held-out responses excluded), per feature.
    items = sorted({(tuple(map(tuple, (m.items() for m in p.conversation))), r) for p in train
                    for r in (p.chosen_text, p.rejected_text)})
    raw, _ = embed_items(model.backbone, model.embedder, [([dict(m) for m in c], r) for c, r in items],
                         features=cfg.features, with_prompts=False, normalize=True)
    torch.testing.assert_close(model.head.feature_mean, raw.mean(dim=0))
    torch.testing.assert_close(model.head.feature_std, raw.std(dim=0, correction=0).clamp_min(1e-6))
    z = model.head.scale_features(raw)
    torch.testing.assert_close(z.mean(dim=0), torch.zeros(z.shape[1]), atol=1e-4, rtol=0)
    loaded = RewardModel.load(result.save(tmp_path / "artifact"), cache_dir=tmp_path / "cache")
    assert loaded.head.standardize
    assert_same_scores(model, loaded)
    # Without the option there are no such buffers, so artifacts saved before it load unchanged.
    plain = train_head(head_config(tiny_backbone, cache_dir=str(tmp_path / "cache"), standardize=False), train,
                       eval_pairs=held)
    assert "feature_mean" not in plain.model.head.state_dict()


def test_single_member_ensemble_has_zero_std(tiny_backbone: Path):
    result = train_head(head_config(tiny_backbone, ensemble_size=1, head="linear", features="joint"), PAIRS)
    assert all(r["std"] == 0.0 for r in result.model.score(CONV, RESPONSES))


@pytest.mark.parametrize("objective", ["multi", "gated"])
def test_multi_objective_and_gate_train_and_reload(tiny_backbone: Path, tmp_path: Path, objective: str):
    cfg = head_config(tiny_backbone, objective=objective, ensemble_size=2, length_decorrelation=True)
    result = train_head(cfg, PAIRS, RATINGS)
    head = result.model.head
    assert head.criteria == ["helpful", "verbosity"]
    assert head.decorrelation[:, 1].abs().sum() == 0 and head.decorrelation[:, 0].abs().sum() > 0
    assert "eval_mse" in result.metrics and any(c["stage"] == "regression" for c in result.curves)
    if objective == "gated":
        assert any(c["stage"] == "gate" for c in result.curves)
    rows = result.model.score(CONV, RESPONSES)
    assert set(rows[0]["criteria"]) == {"helpful", "verbosity"}
    assert_same_scores(result.model, RewardModel.load(result.save(tmp_path / objective)))


def test_finetune_changes_the_backbone_and_reloads_to_identical_scores(tiny_backbone: Path, tmp_path: Path):
    result = train_finetune(finetune_config(tiny_backbone), PAIRS, work_dir=tmp_path / "work")
    original = AutoModel.from_pretrained(tiny_backbone, local_files_only=True).state_dict()
    tuned = result.model.backbone.model.state_dict()
    assert any(not torch.equal(original[k], tuned[k]) for k in original)
    assert result.curves[-1]["epoch"] == 1.0
    assert "eval_accuracy" in result.metrics
    loaded = RewardModel.load(result.save(tmp_path / "artifact"))
    assert all(r["std"] == 0.0 for r in loaded.score(CONV, RESPONSES))
    assert_same_scores(result.model, loaded)


def test_finetune_through_averaged_layers_moves_every_one_and_reloads(tiny_backbone: Path, tmp_path: Path):
    result = train_finetune(finetune_config(tiny_backbone, layers=2), PAIRS)
    assert result.config["layers"] == 2 and result.model.backbone.layers == 2
    original = AutoModel.from_pretrained(tiny_backbone, local_files_only=True).state_dict()
    tuned = result.model.backbone.model.state_dict()
    assert all(not torch.equal(original[k], tuned[k]) for k in original if k.startswith("encoder.layer.") and "weight" in k)
    path = result.save(tmp_path / "artifact")
    loaded = RewardModel.load(path)
    assert loaded.backbone.layers == 2
    assert_same_scores(result.model, loaded)
    # The saved setting is what scoring pools: the same weights read with layers=1 score otherwise.
    meta = json.loads((path / "config.json").read_text())
    meta["config"]["layers"] = 1
    (path / "config.json").write_text(json.dumps(meta))
    items = [(CONV, r) for r in RESPONSES]
    assert not np.allclose(RewardModel.load(path).score_items(items).reward, loaded.score_items(items).reward, atol=1e-4)


def test_the_gate_has_its_own_ridge_penalty(tiny_backbone: Path):
    def gate_norm(**kw) -> float:
        cfg = head_config(tiny_backbone, objective="gated", ensemble_size=1, epochs=50, lr=1e-2, l2=100.0, **kw)
        gates = train_head(cfg, PAIRS, RATINGS).model.head.gates
        return sum(float(w.detach().pow(2).sum()) for w in gates.parameters() if w.dim() >= 2)

    # gate_l2 shrinks the gate, and l2 (the criterion heads' penalty) does not reach it:
    # were l2 applied to the gate, both gates below would be shrunk alike.
    assert gate_norm(gate_l2=0.0) > 10 * gate_norm(gate_l2=100.0)


def test_an_artifact_saved_before_layers_existed_loads_as_it_was_trained(tiny_backbone: Path, tmp_path: Path):
    cfg = head_config(tiny_backbone, cache_dir=str(tmp_path / "cache"), layers=1, standardize=False)
    result = train_head(cfg, PAIRS)
    path = result.save(tmp_path / "artifact")
    meta = json.loads((path / "config.json").read_text())
    for key in ("layers", "standardize"):  # what an older PrefLab wrote had neither
        del meta["config"][key]
    (path / "config.json").write_text(json.dumps(meta))
    loaded = RewardModel.load(path, cache_dir=tmp_path / "cache")
    assert (loaded.config.layers, loaded.config.standardize) == (1, False)
    assert_same_scores(result.model, loaded)


def test_finetune_resumes_from_the_latest_checkpoint_exactly(tiny_backbone: Path, tmp_path: Path):
    cfg = finetune_config(tiny_backbone, grad_accum=1, checkpoint_every=2, eval_every=1)
    straight = train_finetune(cfg, PAIRS)
    assert len(straight.curves) > 4

    calls = {"n": 0}

    def crash_after_step_3() -> bool:
        # Called once before training, then before and after every step.
        calls["n"] += 1
        if calls["n"] == 1 + 2 * 3:
            raise RuntimeError("worker killed")
        return False

    with pytest.raises(RuntimeError, match="worker killed"):
        train_finetune(cfg, PAIRS, work_dir=tmp_path, should_stop_cb=crash_after_step_3)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-00000002"]

    resumed = train_finetune(cfg, PAIRS, work_dir=tmp_path)
    assert [c["step"] for c in resumed.curves] == [c["step"] for c in straight.curves]
    assert [c["loss"] for c in resumed.curves] == pytest.approx([c["loss"] for c in straight.curves], abs=1e-6)
    a = straight.model.score_items([(CONV, r) for r in RESPONSES]).reward
    b = resumed.model.score_items([(CONV, r) for r in RESPONSES]).reward
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_checkpoint_of_another_run_is_not_resumed(tiny_backbone: Path, tmp_path: Path):
    cfg = finetune_config(tiny_backbone, grad_accum=1, checkpoint_every=2)
    with pytest.raises(RuntimeError):
        train_finetune(cfg, PAIRS, work_dir=tmp_path, progress_cb=_crash_at_step(3))
    with pytest.raises(ValueError, match="another config or other data"):
        train_finetune(cfg, PAIRS[:-1], work_dir=tmp_path)


def _crash_at_step(step: int):
    def cb(fraction: float, metrics: dict) -> None:
        if metrics.get("step", 0) >= step:
            raise RuntimeError("crash")

    return cb


def test_cancel_in_head_mode_raises_and_leaves_no_artifact(tiny_backbone: Path, tmp_path: Path):
    calls = {"n": 0}

    def stop_after_a_few_checks() -> bool:
        calls["n"] += 1
        return calls["n"] > 5

    with pytest.raises(Cancelled):
        train_head(head_config(tiny_backbone), PAIRS, should_stop_cb=stop_after_a_few_checks)
    assert list(tmp_path.iterdir()) == []


def test_cancel_in_finetune_removes_checkpoints(tiny_backbone: Path, tmp_path: Path):
    calls = {"n": 0}

    def stop_after_step_3() -> bool:
        calls["n"] += 1
        return calls["n"] >= 1 + 2 * 3

    cfg = finetune_config(tiny_backbone, grad_accum=1, checkpoint_every=2)
    with pytest.raises(Cancelled):
        train_finetune(cfg, PAIRS, work_dir=tmp_path / "work", should_stop_cb=stop_after_step_3)
    assert calls["n"] == 7
    assert not (tmp_path / "work" / "checkpoints").exists()


def test_ties_can_be_dropped_from_training(tiny_backbone: Path):
    quick = {"ensemble_size": 1, "epochs": 1}
    kept = train_head(head_config(tiny_backbone, **quick), PAIRS, eval_pairs=[])
    dropped = train_head(head_config(tiny_backbone, ties="drop", **quick), PAIRS, eval_pairs=[])
    assert kept.metrics["train_pairs"] == len(PAIRS)
    assert dropped.metrics["train_pairs"] == len([p for p in PAIRS if not p.tie]) < len(PAIRS)


def test_metrics_are_json_safe_when_nothing_qualifies(tiny_backbone: Path, tmp_path: Path):
    ties_only = [p for p in PAIRS if p.tie]
    result = train_head(head_config(tiny_backbone, ensemble_size=1, epochs=1), PAIRS, eval_pairs=ties_only)
    assert result.metrics["eval_accuracy"] is None  # no non-tie pair: NaN, stored as null
    assert json.loads((result.save(tmp_path / "a") / "metrics.json").read_text())["final"]["eval_accuracy"] is None


def test_saving_over_an_existing_directory_is_refused(tiny_backbone: Path, tmp_path: Path):
    result = train_head(head_config(tiny_backbone, ensemble_size=1, epochs=1), PAIRS)
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError):
        result.save(tmp_path / "taken")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def gpu_backbone() -> Path:
    """MiniLM for the GPU tests; PREFLAB_GPU_BACKBONE names a copy where its wheel is not
    installed (the device machine: scripts/gpu_check.sh)."""
    return Path(os.environ.get("PREFLAB_GPU_BACKBONE") or default_backbone_path())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_finetune_smoke_on_cuda(tmp_path: Path):
    pairs = make_pairs(256)
    cfg = TrainConfig(
        backbone=str(gpu_backbone()), mode="finetune", device="cuda", batch_size=32, max_length=256, eval_every=1000
    )
    start = time.perf_counter()
    result = train_finetune(cfg, pairs, eval_pairs=pairs[:32])
    elapsed = time.perf_counter() - start
    print(f"bf16 finetune on {torch.cuda.get_device_name()}: {len(pairs) / elapsed:.1f} pairs/s (incl. load)")
    assert result.metrics["eval_accuracy"] >= 0.5
    assert_same_scores(result.model, RewardModel.load(result.save(tmp_path / "gpu"), device="cuda"))


def test_best_of_4_is_reported_only_where_prompts_have_four_responses(tiny_backbone: Path):
    groups = []
    for g in range(3):
        conv = [{"role": "user", "content": f"Rank four answers to question {g}."}]
        answers = [f"The best, most careful answer {g}.", f"A fair answer {g}.", f"Meh {g}.", f"No {g}."]
        for i in range(4):
            for j in range(i + 1, 4):  # a complete comparison: answer 0 beat every other one
                groups.append(PairExample(f"g{g}", conv, answers[i], answers[j]))
    result = train_head(head_config(tiny_backbone), PAIRS[:20], eval_pairs=groups)
    assert result.metrics["best_of_4_groups"] == 3 and 0.0 <= result.metrics["best_of_4"] <= 1.0
    plain = train_head(head_config(tiny_backbone, ensemble_size=1), PAIRS[:20], eval_pairs=PAIRS[20:])
    assert "best_of_4" not in plain.metrics


def test_a_short_head_stage_still_draws_a_curve_of_about_twenty_points(tiny_backbone: Path):
    # 24 training pairs in batches of 8: 3 steps an epoch.
    quick = head_config(tiny_backbone, ensemble_size=1, epochs=10, eval_every=1000)
    short = train_head(quick, PAIRS[:24], eval_pairs=PAIRS[24:])
    assert [c["step"] for c in short.curves] == list(range(2, 31, 2))  # 30 steps: every 2nd, not none until the end
    long = train_head(head_config(tiny_backbone, ensemble_size=1, epochs=50, eval_every=4), PAIRS[:24], eval_pairs=PAIRS[24:])
    assert [c["step"] for c in long.curves] == [*range(4, 150, 4), 150]  # eval_every holds when it gives enough points
    assert all("eval_accuracy" in c for c in short.curves + long.curves)


def test_both_trainers_first_say_they_are_loading_the_backbone(tiny_backbone: Path):
    for train, cfg in ((train_head, head_config(tiny_backbone, ensemble_size=1, epochs=1)),
                       (train_finetune, finetune_config(tiny_backbone))):
        reports: list[tuple[float, dict]] = []
        train(cfg, PAIRS[:12], eval_pairs=PAIRS[12:16], progress_cb=lambda f, m: reports.append((f, m)))
        assert reports[0] == (0.0, {"phase": "load"})
        assert reports[1][1].get("phase") != "load"


def test_the_gate_learns_a_temperature_that_decompresses_its_probabilities(tiny_backbone: Path, tmp_path: Path):
    """Issue #20, fix 2: w(x)ᵀr mixes z-scores, so on labels this clear its σ(ΔR)
    stays well under 1 (compressed); a β learned with the gate moves up from 1 and
    the calibration error falls."""
    from models_svc.ml.evaluate import expected_calibration_error, pair_calibration_inputs

    def fit(temperature: bool):
        cfg = head_config(tiny_backbone, objective="gated", ensemble_size=1, epochs=40, lr=1e-2,
                          gate_temperature=temperature)
        result = train_head(cfg, PAIRS, RATINGS)
        items = [(p.conversation, t) for p in PAIRS for t in (p.chosen_text, p.rejected_text)]
        r = result.model.score_items(items).reward
        prob, outcome = pair_calibration_inputs(r[0::2] - r[1::2], [p.tie for p in PAIRS])
        return result, expected_calibration_error(prob, outcome)

    plain, ece_plain = fit(False)
    tempered, ece_tempered = fit(True)
    assert float(plain.model.head.gates.members[0].beta()) == 1.0
    beta = float(tempered.model.head.gates.members[0].beta().detach())
    assert beta > 1.2, beta
    assert ece_tempered < ece_plain - 0.05, (ece_plain, ece_tempered)
    assert_same_scores(tempered.model, RewardModel.load(tempered.save(tmp_path / "tempered")))
