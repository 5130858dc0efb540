"""Fine-tune mode: the backbone and a linear head trained end to end with
Bradley-Terry (minutes on a CPU, the GPU path in production; DESIGN §4).

``train_finetune`` reads as its steps: set up (load, tokenize, optimizer and
schedule, resume from a checkpoint), then optimizer steps until done, each one
possibly followed by an evaluation and a checkpoint, then the final metrics.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import checkpoints, evaluate
from .backbone import PooledRewardModel
from .config import TrainConfig
from .data import PairExample, RatedExample, collate, length_grouped_batches
from .infer import RewardModel, load_backbone
from .train_common import (
    Cancelled,
    Monitor,
    PairLabels,
    ProgressCb,
    StopCb,
    TrainResult,
    json_safe,
    pair_metrics,
    split_or_given,
)


def train_finetune(
    config: TrainConfig,
    pairs: Sequence[PairExample],
    ratings: Sequence[RatedExample] = (),
    *,
    eval_pairs: Sequence[PairExample] | None = None,
    work_dir: str | Path | None = None,
    progress_cb: ProgressCb | None = None,
    should_stop_cb: StopCb | None = None,
) -> TrainResult:
    """Full fine-tune of backbone + linear head with (margin/scaled/tie) BT.

    AdamW (no decay on biases and norms), linear warm-up then linear decay,
    gradient accumulation over ``grad_accum`` micro-batches, clipping, and the
    backbone under bf16 autocast or in fp32 per ``precision`` (fp32 weights either
    way). With ``work_dir``, a checkpoint (weights, optimizer, scheduler, RNG,
    curves) is written every ``checkpoint_every`` optimizer steps and the run resumes
    from the latest one if present, provided it belongs to the same config and data
    (a fingerprint is checked). A cancel deletes the checkpoints: the run is
    abandoned; a crash leaves them for the resume. ``ratings`` are not used (the
    finetune objective is BT); the parameter keeps both trainers interchangeable.
    """
    cfg = config.resolve()
    if cfg.mode != "finetune":
        raise ValueError("train_finetune needs mode='finetune'")
    assert cfg.batch_size is not None and cfg.epochs is not None and cfg.lr is not None
    train_p, eval_p = split_or_given(pairs, eval_pairs, cfg)
    if cfg.ties == "drop":
        train_p = [p for p in train_p if not p.tie]
    if not train_p:
        raise ValueError("finetune needs training pairs")
    monitor = Monitor(progress_cb, should_stop_cb)
    monitor.check()
    ckpt_root = Path(work_dir) / "checkpoints" if work_dir is not None else None
    devices = [torch.device(cfg.device).index or 0] if cfg.device == "cuda" else []

    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(cfg.seed)
        monitor.announce({"phase": "load"})
        run = _Finetune(cfg, train_p, eval_p, ckpt_root)
        run.resume()
        try:
            run.train(monitor)
        except Cancelled:
            if ckpt_root is not None:
                shutil.rmtree(ckpt_root, ignore_errors=True)
            raise
        metrics = run.final_metrics()
    monitor.report(1.0, metrics, force=True)
    model_out = RewardModel(config=cfg, backbone=run.backbone, pooled=run.model)
    return TrainResult(model=model_out, metrics=json_safe(metrics), curves=json_safe(run.curves), config=cfg.to_dict())


class _Finetune:
    """One fine-tune in progress: the model, its tokenized pairs, optimizer and
    schedule, and where it stands (optimizer step, curves, throughput)."""

    def __init__(self, cfg: TrainConfig, train_p: list[PairExample], eval_p: list[PairExample], ckpt_root: Path | None):
        assert cfg.batch_size is not None and cfg.lr is not None and cfg.epochs is not None
        self.cfg, self.train_p, self.eval_p, self.ckpt_root = cfg, train_p, eval_p, ckpt_root
        self.backbone = load_backbone(cfg.backbone, cfg)
        self.model = PooledRewardModel(self.backbone).to(cfg.device)
        text = self.backbone.text
        self.ids_a = text.encode([text.format(p.conversation, p.chosen_text) for p in train_p])
        self.ids_b = text.encode([text.format(p.conversation, p.rejected_text) for p in train_p])
        self.ev_a = text.encode([text.format(p.conversation, p.chosen_text) for p in eval_p])
        self.ev_b = text.encode([text.format(p.conversation, p.rejected_text) for p in eval_p])
        self.labels, self.ev_labels = PairLabels.build(train_p), PairLabels.build(eval_p)
        lengths = [max(len(a), len(b)) for a, b in zip(self.ids_a, self.ids_b, strict=True)]
        self.epoch_batches = _EpochBatches(lengths, cfg.batch_size, cfg.seed)
        self.steps_per_epoch = math.ceil(len(self.epoch_batches(0)) / cfg.grad_accum)
        self.total = cfg.epochs * self.steps_per_epoch
        self.optimizer = torch.optim.AdamW(_decay_groups(self.model, cfg.weight_decay or 0.0), lr=cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _linear_schedule(self.total, cfg.warmup_ratio))
        self.fingerprint = checkpoints.fingerprint(cfg, train_p)
        self.step = 0
        self.curves: list[dict[str, Any]] = []
        self.train_s, self.done_pairs = 0.0, 0  # throughput counts training steps only, not evaluation

    def resume(self) -> None:
        """Continue from the latest checkpoint in the work dir, if there is one."""
        latest = checkpoints.latest_checkpoint(self.ckpt_root)
        if latest is not None:
            self.step, self.curves = checkpoints.load_checkpoint(
                latest, self.model, self.optimizer, self.scheduler, self.fingerprint, self.cfg.device)

    def train(self, monitor: Monitor) -> None:
        """Optimizer steps until the last one; evaluates every ``eval_every`` steps
        (and at the end), checkpoints every ``checkpoint_every`` (not at the end)."""
        cfg = self.cfg
        self.model.train()
        while self.step < self.total:
            monitor.check()
            point = self._optimizer_step()
            evaluated = self.step % cfg.eval_every == 0 or self.step == self.total
            if evaluated:
                point.update(self.evaluate())
                self.curves.append(point)
            if self.ckpt_root is not None and self.step % cfg.checkpoint_every == 0 and self.step < self.total:
                checkpoints.save_checkpoint(self.ckpt_root, self.step, self.model, self.optimizer, self.scheduler,
                                            self.curves, self.fingerprint)
            monitor.report(self.step / self.total, point, force=evaluated)
            monitor.check()

    def _optimizer_step(self) -> dict[str, Any]:
        """One step over ``grad_accum`` micro-batches; returns its curve point."""
        cfg = self.cfg
        started = time.perf_counter()
        epoch, within = divmod(self.step, self.steps_per_epoch)
        micro = self.epoch_batches(epoch)[within * cfg.grad_accum : (within + 1) * cfg.grad_accum]
        n_step = sum(len(mb) for mb in micro)
        step_loss = 0.0
        for mb in micro:
            idx = torch.tensor(mb, dtype=torch.long)
            r = self.model(collate([self.ids_a[i] for i in mb] + [self.ids_b[i] for i in mb], self.backbone.pad_id))
            # Weighted by micro-batch size: the step's gradient is that of the mean over all its pairs.
            loss = self.labels.loss(r[: len(mb)], r[len(mb) :], cfg, idx) * (len(mb) / n_step)
            loss.backward()
            step_loss += loss.item()
        nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.done_pairs += n_step
        self.train_s += time.perf_counter() - started
        return {
            "stage": "finetune",
            "step": self.step,
            "epoch": self.step / self.steps_per_epoch,
            "loss": step_loss,
            "pairs_per_s": self.done_pairs / self.train_s,
        }

    def _eval_rewards(self) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.cfg.embed_batch_size
        return self.model.rewards(self.ev_a, batch), self.model.rewards(self.ev_b, batch)

    def evaluate(self) -> dict[str, float]:
        """Held-out accuracy and loss for the curves (nothing without eval pairs)."""
        if not self.eval_p:
            return {}
        r_a, r_b = self._eval_rewards()
        return {
            "eval_accuracy": evaluate.pairwise_accuracy((r_a - r_b).numpy(), self.ev_labels.tie.numpy()),
            "eval_loss": float(self.ev_labels.loss(r_a, r_b, self.cfg)),
        }

    def final_metrics(self) -> dict[str, Any]:
        self.model.eval()
        metrics: dict[str, Any] = {
            "train_pairs": len(self.train_p), "precision": self.backbone.precision,
            # this run's steps (None: resumed at the end)
            "train_pairs_per_s": self.done_pairs / self.train_s if self.train_s else None,
        }
        if self.eval_p:
            r_a, r_b = self._eval_rewards()
            metrics.update(pair_metrics(self.eval_p, r_a.numpy(), r_b.numpy(), {}))
            rewards = torch.cat([r_a, r_b]).numpy()
            lengths_chars = [len(p.chosen_text) for p in self.eval_p] + [len(p.rejected_text) for p in self.eval_p]
            metrics["length_spearman"] = evaluate.length_correlation(rewards, lengths_chars)
        return metrics


class _EpochBatches:
    """Length-grouped micro-batches of an epoch, seeded by (seed, epoch) so that a
    resumed run sees exactly the batches the interrupted one would have."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self._memo: dict[int, list[list[int]]] = {}

    def __call__(self, epoch: int) -> list[list[int]]:
        if epoch not in self._memo:
            self._memo = {epoch: length_grouped_batches(self.lengths, self.batch_size, seed=self.seed * 100_003 + epoch)}
        return self._memo[epoch]


def _decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only: decaying biases and norm gains only hurts."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def _linear_schedule(total: int, warmup_ratio: float) -> Callable[[int], float]:
    warmup = int(warmup_ratio * total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor
