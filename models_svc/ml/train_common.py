"""What both training modes share: the result they return, cancellation and
progress reporting, the split when no eval set is given, pair labels and their
loss, and the held-out metrics of a set of pairs."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from . import evaluate
from .config import TrainConfig
from .data import PairExample, RatedExample, split_by_prompt
from .infer import RewardModel
from .losses import preference_loss

ProgressCb = Callable[[float, dict[str, Any]], None]
StopCb = Callable[[], bool]
E = TypeVar("E", PairExample, RatedExample)


class Cancelled(Exception):
    """``should_stop_cb`` returned True; the run stopped and left no artifact."""


@dataclass
class TrainResult:
    """A trained model with its run record; metrics and curves are JSON-safe."""

    model: RewardModel
    metrics: dict[str, Any]
    curves: list[dict[str, Any]]
    config: dict[str, Any]

    def save(self, path: str | Path) -> Path:
        """Write the artifact (weights, resolved config, metrics and curves) atomically."""
        return self.model.save(path, metrics={"final": self.metrics, "curves": self.curves})


def json_safe(value: Any) -> Any:
    """``value`` with every NaN/inf float replaced by None: metrics go into JSON
    columns, and NaN ("no pair qualified") is not JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


class Monitor:
    """Progress reporting (throttled) and cancellation checks."""

    def __init__(self, progress_cb: ProgressCb | None, should_stop_cb: StopCb | None, interval_s: float = 1.0):
        self.progress_cb = progress_cb
        self.should_stop_cb = should_stop_cb
        self.interval_s = interval_s
        self._last = -math.inf

    def check(self) -> None:
        if self.should_stop_cb is not None and self.should_stop_cb():
            raise Cancelled("training cancelled")

    def announce(self, metrics: dict[str, Any]) -> None:
        """A phase starting (at fraction 0): always sent, and not counted by the
        throttle, so the first reports of the phase after it still go out."""
        if self.progress_cb is not None:
            self.progress_cb(0.0, json_safe(metrics))

    def report(self, fraction: float, metrics: dict[str, Any], *, force: bool = False) -> None:
        now = time.monotonic()
        if self.progress_cb is not None and (force or now - self._last >= self.interval_s):
            self._last = now
            self.progress_cb(min(max(fraction, 0.0), 1.0), json_safe(metrics))


def split_or_given(examples: Sequence[E], given_eval: Sequence[E] | None, cfg: TrainConfig) -> tuple[list[E], list[E]]:
    if given_eval is not None:
        return list(examples), list(given_eval)
    return split_by_prompt(examples, cfg.eval_fraction, cfg.split_seed)


@dataclass
class PairLabels:
    """Per-pair labels: tie flags and strength (0 = unknown or tie)."""

    tie: torch.Tensor
    strength: torch.Tensor

    @classmethod
    def build(cls, pairs: Sequence[PairExample]) -> PairLabels:
        return cls(
            tie=torch.tensor([p.tie for p in pairs], dtype=torch.bool),
            strength=torch.tensor([0 if p.tie or p.strength is None else p.strength for p in pairs], dtype=torch.long),
        )

    def loss(self, r_a: torch.Tensor, r_b: torch.Tensor, cfg: TrainConfig, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Preference loss with a preferred unless tie (see ``losses.preference_loss``)."""
        tie, strength = (self.tie, self.strength) if idx is None else (self.tie[idx], self.strength[idx])
        tie, strength = tie.to(r_a.device), strength.to(r_a.device)
        return preference_loss(r_a, r_b, tie, strength, strength_mode=cfg.strength, margins=cfg.margins)


def pair_metrics(
    pairs: Sequence[PairExample], r_a: np.ndarray, r_b: np.ndarray, criterion_diffs: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Final held-out metrics from the rewards of each pair's preferred (a) and other
    (b) response (the ensemble mean in head mode). ``best_of_4`` (with
    ``best_of_4_groups``) appears only when some prompt has ≥ 4 responses and a
    known best one (see ``evaluate.known_best_groups``)."""
    diff = r_a - r_b
    tie = np.array([p.tie for p in pairs], dtype=bool)
    prob, outcome = evaluate.pair_calibration_inputs(diff, tie)
    choices = [p.criteria for p in pairs]
    keys = {k for c in choices for k in c}
    metrics: dict[str, Any] = {
        "eval_pairs": len(pairs),
        "eval_accuracy": evaluate.pairwise_accuracy(diff, tie),
        "accuracy_by_strength": evaluate.accuracy_by_strength(diff, [p.strength for p in pairs], tie),
        "per_criterion_accuracy": evaluate.per_criterion_accuracy(choices, {k: criterion_diffs.get(k, diff) for k in keys}),
        "ece": evaluate.expected_calibration_error(prob, outcome),
    }
    groups = evaluate.known_best_groups(
        [p.prompt_id for p in pairs], [p.chosen_text for p in pairs], [p.rejected_text for p in pairs], r_a, r_b, tie
    )
    groups = [g for g in groups if len(g[0]) >= 4]
    if groups:
        metrics["best_of_4"] = evaluate.best_of_n_accuracy(groups, min_size=4)
        metrics["best_of_4_groups"] = len(groups)
    return metrics
