"""Model FLOPs of a transformer backbone, for throughput and utilisation figures.

For one sequence of T real tokens through a transformer with N non-embedding
parameters, L layers and width d (Kaplan et al. 2020, §2.1; PaLM, appendix B):

    forward  ≈ 2·N·T + 4·L·d·T²        weight products; attention scores and values
    training ≈ 3 × forward = 6·N·T + 12·L·d·T²

Padded positions are not counted, nor norms, softmax or other element-wise work:
model FLOPs utilisation (MFU) is useful work per second over the chip's peak, so
padding shows up as a lower MFU. ``tests/models_svc/ml/test_flops.py`` checks the formula
against ``torch.utils.flop_counter`` on an unpadded batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

# Dense bf16 tensor-core peaks from the vendor's datasheets, TFLOP/s (no sparsity).
# Matched in order against torch.cuda.get_device_name(); the first hit wins.
_BF16_PEAK_TFLOPS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("H100", "PCIe"), 756.0),
    (("H100", "NVL"), 835.0),
    (("H100",), 989.4),
    (("H200",), 989.4),
    (("GH200",), 989.4),
    (("A100",), 312.0),
    (("L40S",), 362.1),
    (("L4",), 121.0),
)


@dataclass(frozen=True)
class Shape:
    """What the FLOPs formula needs of a model."""

    params: int  # non-embedding parameters
    layers: int
    width: int


def shape_of(model: nn.Module) -> Shape:
    """N (parameters outside embedding tables), L and d of a Hugging Face model."""
    total = sum(p.numel() for p in model.parameters())
    tables = sum(p.numel() for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters(recurse=False))
    config = model.config
    return Shape(params=total - tables, layers=int(config.num_hidden_layers), width=int(config.hidden_size))


def forward_flops(lengths: Iterable[int], shape: Shape) -> float:
    """Σ over sequences of 2·N·T + 4·L·d·T²."""
    return float(sum(2 * shape.params * t + 4 * shape.layers * shape.width * t * t for t in lengths))


def training_flops(lengths: Iterable[int], shape: Shape) -> float:
    """Forward and backward: 3 × :func:`forward_flops`."""
    return 3.0 * forward_flops(lengths, shape)


def datasheet_peak_tflops(device_name: str, precision: str) -> float | None:
    """The dense bf16 peak of a known GPU, else None (fp32 peaks are not tabled:
    quote MFU against a measured or given peak there)."""
    if precision != "bf16":
        return None
    for words, peak in _BF16_PEAK_TFLOPS:
        if all(w in device_name for w in words):
            return peak
    return None
