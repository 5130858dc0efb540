"""Backbone loading (local only) and the embedding cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models_svc.ml.backbone import Backbone, Embedder, EmbeddingCache, mean_pool
from models_svc.ml.data import FormattedText, collate

TEXTS = [FormattedText(f"User: question {i}\n\nAssistant: ", f"answer number {i} " * (i + 1)) for i in range(10)]


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert mean_pool(hidden, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 3.0]]


def test_a_hub_id_is_refused(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="hub ids are not allowed"):
        Backbone.load("sentence-transformers/all-MiniLM-L6-v2", max_length=32, device="cpu")


def test_second_call_computes_nothing_new(tiny_backbone: Path, tmp_path: Path):
    backbone = Backbone.load(tiny_backbone, max_length=64, device="cpu")
    first = Embedder(backbone, EmbeddingCache(tmp_path, backbone), batch_size=4).embed(TEXTS)
    calls = backbone.forward_calls
    assert calls == 3  # 10 texts in batches of 4

    # A new cache object on the same directory: another run reusing the cache.
    again = Embedder(backbone, EmbeddingCache(tmp_path, backbone), batch_size=4).embed(TEXTS[::-1])
    assert backbone.forward_calls == calls
    np.testing.assert_array_equal(again, first[::-1])

    extra = FormattedText("User: new\n\nAssistant: ", "fresh")
    Embedder(backbone, EmbeddingCache(tmp_path, backbone), batch_size=4).embed([*TEXTS, extra, extra])
    assert backbone.forward_calls == calls + 1  # only the one new text, once


def test_cached_vectors_match_uncached_ones(tiny_backbone: Path, tmp_path: Path):
    backbone = Backbone.load(tiny_backbone, max_length=64, device="cpu")
    cached = Embedder(backbone, EmbeddingCache(tmp_path, backbone), batch_size=4).embed(TEXTS)
    plain = Embedder(backbone, None, batch_size=4).embed(TEXTS)
    np.testing.assert_allclose(cached, plain, rtol=0, atol=1e-6)


def test_cache_is_keyed_by_backbone_identity_and_max_length(tiny_backbone: Path, other_tiny_backbone: Path, tmp_path: Path):
    first = Backbone.load(tiny_backbone, max_length=64, device="cpu")
    vectors = Embedder(first, EmbeddingCache(tmp_path, first), batch_size=16).embed(TEXTS)

    other = Backbone.load(other_tiny_backbone, max_length=64, device="cpu")
    assert other.identity != first.identity
    other_vectors = Embedder(other, EmbeddingCache(tmp_path, other), batch_size=16).embed(TEXTS)
    assert other.forward_calls == 1
    assert not np.allclose(vectors, other_vectors)

    shorter = Backbone.load(tiny_backbone, max_length=8, device="cpu")
    assert EmbeddingCache(tmp_path, shorter).key(TEXTS[0]) != EmbeddingCache(tmp_path, first).key(TEXTS[0])
    Embedder(shorter, EmbeddingCache(tmp_path, shorter), batch_size=16).embed(TEXTS)
    assert shorter.forward_calls == 1


def test_layers_average_the_last_hidden_states_before_pooling(tiny_backbone: Path, tmp_path: Path):
    texts = TEXTS[:4]
    last = Backbone.load(tiny_backbone, max_length=64, device="cpu", precision="fp32")
    both = Backbone.load(tiny_backbone, max_length=64, device="cpu", precision="fp32", layers=2)
    capped = Backbone.load(tiny_backbone, max_length=64, device="cpu", precision="fp32", layers=6)
    assert (last.layers, both.layers, capped.layers) == (1, 2, 2)  # the tiny model has 2 layers
    batch = collate(last.text.encode(texts), last.pad_id)
    with torch.no_grad():
        states = last.model(**batch, output_hidden_states=True).hidden_states  # embeddings, layer 1, layer 2
        by_hand = mean_pool((states[1] + states[2]) / 2, batch["attention_mask"])
        torch.testing.assert_close(both.pooled(batch), by_hand)
        torch.testing.assert_close(last.pooled(batch), mean_pool(states[2], batch["attention_mask"]))
        assert not torch.allclose(both.pooled(batch), last.pooled(batch), atol=1e-3)
    # Different vectors, different cache keys: a cache never mixes the two.
    assert EmbeddingCache(tmp_path, both).key(texts[0]) != EmbeddingCache(tmp_path, last).key(texts[0])
    assert EmbeddingCache(tmp_path, capped).key(texts[0]) == EmbeddingCache(tmp_path, both).key(texts[0])
    with pytest.raises(ValueError, match="layers=0"):
        Backbone.load(tiny_backbone, max_length=64, device="cpu", layers=0)
