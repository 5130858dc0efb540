"""bf16 autocast runs on the CPU too: the arithmetic the GPU path uses (autocast
around the backbone, fp32 pooling, heads and losses) is exercised by every CI run,
which never has a GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel

from models_svc.ml.backbone import Backbone, Embedder, EmbeddingCache
from models_svc.ml.config import TrainConfig, resolve_precision
from models_svc.ml.infer import RewardModel
from models_svc.ml.train import train_finetune, train_head

from .test_train import CONV, PAIRS, RESPONSES, assert_same_scores, finetune_config, gpu_backbone, head_config

TEXTS_CONV = [{"role": "user", "content": "Summarise the plot of a novel in one line."}]


@pytest.mark.parametrize("amx", [True, False])
def test_auto_precision_is_bf16_on_cuda_and_on_cpus_with_matrix_units(monkeypatch, amx: bool):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert resolve_precision("auto", "cuda") == "bf16"
    assert resolve_precision("auto", "cuda:1") == "bf16"
    assert resolve_precision("auto", "cpu") == ("bf16" if amx else "fp32")
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("fp32", "cuda") == "fp32"
    assert resolve_precision("fp32", "cpu") == "fp32"


def test_unknown_precision_is_refused_with_its_name():
    with pytest.raises(ValueError, match="precision='fp16'"):
        TrainConfig(precision="fp16")


def test_precision_is_stored_as_given_so_auto_follows_the_loading_machine(tiny_backbone: Path):
    assert TrainConfig(device="cpu").to_dict()["precision"] == "auto"
    assert TrainConfig(device="cpu", precision="bf16").to_dict()["precision"] == "bf16"
    result = train_head(head_config(tiny_backbone, device="cpu", ensemble_size=1, epochs=1), PAIRS)
    assert result.config["precision"] == "auto"
    assert result.metrics["precision"] == resolve_precision("auto", "cpu")  # the run record says what was used


def test_bf16_backbone_computes_in_bf16_and_returns_fp32(tiny_backbone: Path):
    fp32 = Backbone.load(tiny_backbone, max_length=48, device="cpu", precision="fp32")
    bf16 = Backbone.load(tiny_backbone, max_length=48, device="cpu", precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    texts = [fp32.text.format(TEXTS_CONV, r) for r in RESPONSES]
    a = Embedder(fp32, None, batch_size=4).embed(texts)
    b = Embedder(bf16, None, batch_size=4).embed(texts)
    assert a.dtype == b.dtype == np.float32
    # Same weights, bf16 matrix products: close, but not the fp32 numbers.
    assert not np.array_equal(a, b)
    np.testing.assert_allclose(a, b, rtol=0.1, atol=0.1)


def test_bf16_and_fp32_embeddings_never_share_cache_entries(tiny_backbone: Path, tmp_path: Path):
    fp32 = Backbone.load(tiny_backbone, max_length=48, device="cpu", precision="fp32")
    bf16 = Backbone.load(tiny_backbone, max_length=48, device="cpu", precision="bf16")
    text = fp32.text.format(TEXTS_CONV, RESPONSES[0])
    assert EmbeddingCache(tmp_path, fp32).key(text) != EmbeddingCache(tmp_path, bf16).key(text)
    Embedder(fp32, EmbeddingCache(tmp_path, fp32), batch_size=4).embed([text])
    Embedder(bf16, EmbeddingCache(tmp_path, bf16), batch_size=4).embed([text])
    assert bf16.forward_calls == 1  # the fp32 vector in the cache was not reused


def test_bf16_finetune_on_cpu_trains_and_reloads_to_identical_scores(tiny_backbone: Path, tmp_path: Path):
    result = train_finetune(finetune_config(tiny_backbone, precision="bf16", device="cpu"), PAIRS)
    original = AutoModel.from_pretrained(tiny_backbone, local_files_only=True).state_dict()
    tuned = result.model.backbone.model.state_dict()
    assert all(v.dtype == torch.float32 for v in tuned.values())  # autocast keeps fp32 master weights
    assert any(not torch.equal(original[k], tuned[k]) for k in original)
    assert all(np.isfinite(point["loss"]) for point in result.curves)
    assert result.config["precision"] == result.metrics["precision"] == "bf16"

    path = result.save(tmp_path / "bf16")
    loaded = RewardModel.load(path, device="cpu")
    assert loaded.backbone.precision == "bf16"
    assert_same_scores(result.model, loaded)
    as_fp32 = RewardModel.load(path, device="cpu", precision="fp32")
    bf16_rewards = [r["reward"] for r in loaded.score(CONV, RESPONSES)]
    fp32_rewards = [r["reward"] for r in as_fp32.score(CONV, RESPONSES)]
    assert bf16_rewards != fp32_rewards
    np.testing.assert_allclose(bf16_rewards, fp32_rewards, atol=0.1)


def test_bf16_head_mode_trains_and_reloads_to_identical_scores(tiny_backbone: Path, tmp_path: Path):
    cfg = head_config(tiny_backbone, precision="bf16", device="cpu", cache_dir=str(tmp_path / "cache"))
    result = train_head(cfg, PAIRS)
    assert result.model.backbone.precision == "bf16"
    assert_same_scores(result.model, RewardModel.load(result.save(tmp_path / "head"), cache_dir=tmp_path / "cache"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_head_trained_on_cuda_in_bf16_scores_alike_on_the_cpu(tmp_path: Path):
    # A GPU worker trains; the web process scores on its CPU (precision auto follows the machine).
    cfg = TrainConfig(backbone=str(gpu_backbone()), mode="head", device="cuda", max_length=128, epochs=5)
    result = train_head(cfg, PAIRS)
    assert result.model.backbone.precision == "bf16" and result.config["device"] == "cuda"
    path = result.save(tmp_path / "gpu-head")
    on_gpu = RewardModel.load(path, device="cuda")
    assert_same_scores(result.model, on_gpu)
    on_cpu = RewardModel.load(path, device="cpu")
    assert on_cpu.backbone.precision == resolve_precision("auto", "cpu")
    gpu_rewards = [r["reward"] for r in on_gpu.score(CONV, RESPONSES)]
    cpu_rewards = [r["reward"] for r in on_cpu.score(CONV, RESPONSES)]
    np.testing.assert_allclose(gpu_rewards, cpu_rewards, atol=0.05)
    assert np.argmax(gpu_rewards) == np.argmax(cpu_rewards)


def test_a_bf16_checkpoint_loads_with_fp32_weights(tiny_backbone: Path, tmp_path: Path):
    stored = AutoModel.from_pretrained(tiny_backbone, local_files_only=True).to(torch.bfloat16)
    stored.save_pretrained(tmp_path / "bf16-checkpoint")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_backbone / name).exists():
            (tmp_path / "bf16-checkpoint" / name).write_bytes((tiny_backbone / name).read_bytes())
    backbone = Backbone.load(tmp_path / "bf16-checkpoint", max_length=32, device="cpu")
    assert {p.dtype for p in backbone.model.parameters()} == {torch.float32}
