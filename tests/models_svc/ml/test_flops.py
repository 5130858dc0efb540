"""The model-FLOPs formula behind the throughput benchmark's MFU, checked against
torch's own FLOP counter on the bundled backbone."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModel

from models_svc.ml.flops import Shape, datasheet_peak_tflops, forward_flops, shape_of, training_flops
from models_svc.ml.presets import default_backbone_path


@pytest.fixture(scope="module")
def minilm():
    # Eager attention: torch's counter sees its matrix products (the CPU SDPA kernel is not counted).
    return AutoModel.from_pretrained(default_backbone_path(), local_files_only=True, attn_implementation="eager")


def test_shape_leaves_embedding_tables_out(minilm):
    shape = shape_of(minilm)
    assert (shape.layers, shape.width) == (6, 384)
    tables = (30522 + 512 + 2) * 384  # word, position and token-type embeddings of all-MiniLM-L6-v2
    assert shape.params == sum(p.numel() for p in minilm.parameters()) - tables


def test_formula_by_hand():
    shape = Shape(params=1000, layers=2, width=8)
    assert forward_flops([3, 5], shape) == (2 * 1000 * 3 + 4 * 2 * 8 * 9) + (2 * 1000 * 5 + 4 * 2 * 8 * 25)
    assert training_flops([3], shape) == 3 * forward_flops([3], shape)


@pytest.mark.parametrize("length", [16, 200])
def test_formula_matches_torch_flop_counter_within_two_percent(minilm, length: int):
    ids = torch.randint(1000, 2000, (2, length))
    with FlopCounterMode(display=False) as forward:
        pooled = minilm(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state.mean()
    with FlopCounterMode(display=False) as backward:
        pooled.backward()
    shape = shape_of(minilm)
    # The formula also counts the pooler and bias parameters, which do no per-token product: it is ~1.5% high.
    assert forward.get_total_flops() == pytest.approx(forward_flops([length, length], shape), rel=0.02)
    counted = forward.get_total_flops() + backward.get_total_flops()
    assert counted == pytest.approx(training_flops([length, length], shape), rel=0.02)


def test_datasheet_peaks_are_bf16_dense_and_unknown_chips_have_none():
    assert datasheet_peak_tflops("NVIDIA H200", "bf16") == 989.4
    assert datasheet_peak_tflops("NVIDIA H100 PCIe", "bf16") == 756.0
    assert datasheet_peak_tflops("NVIDIA L40S", "bf16") == 362.1
    assert datasheet_peak_tflops("NVIDIA L4", "bf16") == 121.0
    assert datasheet_peak_tflops("NVIDIA H200", "fp32") is None
    assert datasheet_peak_tflops("Some Future GPU", "bf16") is None
