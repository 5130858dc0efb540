"""Training loops: ``train_head`` (frozen backbone, seconds) and ``train_finetune``.

Both take plain examples, report ``progress_cb(fraction, metrics)`` (at most about
once a second, plus at every evaluation), raise :class:`Cancelled` as soon as
``should_stop_cb()`` is true, and return a :class:`TrainResult` holding the model,
the curves (loss and eval accuracy per eval step) and final eval metrics. Nothing
is written as an artifact until the caller runs ``result.save(path)``.

When no eval set is passed, the training examples are split by prompt with
``config.eval_fraction`` and ``config.split_seed`` (see ``data.split_by_prompt``).
Heads always train on the CPU: they are tiny, and it keeps runs reproducible.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn

from . import evaluate
from .backbone import PooledRewardModel
from .config import TrainConfig
from .data import Message, PairExample, RatedExample, collate, length_grouped_batches, split_by_prompt
from .heads import HeadModel
from .infer import RewardModel, build_head_model, frozen_embedder, head_inputs, load_backbone, load_stacked
from .losses import gated_reward, masked_mse, preference_loss

ProgressCb = Callable[[float, dict[str, Any]], None]
StopCb = Callable[[], bool]
E = TypeVar("E", PairExample, RatedExample)

_EMBED_SHARE = 0.5  # head mode: progress fraction given to embedding, the rest to training
_MIN_CURVE_POINTS = 20  # head mode: evaluations per stage at least (see _HeadFitter._fit)
_STAGE_SALT = {"bt": 0, "regression": 1, "gate": 2}  # independent bootstrap draws per stage
_RUNTIME_FIELDS = ("device", "cache_dir", "eval_every", "checkpoint_every", "embed_batch_size")


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


class _Monitor:
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


def _split(examples: Sequence[E], given_eval: Sequence[E] | None, cfg: TrainConfig) -> tuple[list[E], list[E]]:
    if given_eval is not None:
        return list(examples), list(given_eval)
    return split_by_prompt(examples, cfg.eval_fraction, cfg.split_seed)


class _Items:
    """Distinct (conversation, response) texts, so each is embedded and scored once."""

    def __init__(self) -> None:
        self.items: list[tuple[list[Message], str]] = []
        self._index: dict[tuple[str, str], int] = {}

    def add(self, conversation: list[Message], response: str) -> int:
        key = (json.dumps(conversation, sort_keys=True), response)
        if key not in self._index:
            self._index[key] = len(self.items)
            self.items.append((conversation, response))
        return self._index[key]


@dataclass
class _Labels:
    """Per-pair labels: tie flags and strength (0 = unknown or tie)."""

    tie: torch.Tensor
    strength: torch.Tensor

    @classmethod
    def build(cls, pairs: Sequence[PairExample]) -> _Labels:
        return cls(
            tie=torch.tensor([p.tie for p in pairs], dtype=torch.bool),
            strength=torch.tensor([0 if p.tie or p.strength is None else p.strength for p in pairs], dtype=torch.long),
        )

    def loss(self, r_a: torch.Tensor, r_b: torch.Tensor, cfg: TrainConfig, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Preference loss with a preferred unless tie (see ``losses.preference_loss``)."""
        tie, strength = (self.tie, self.strength) if idx is None else (self.tie[idx], self.strength[idx])
        tie, strength = tie.to(r_a.device), strength.to(r_a.device)
        return preference_loss(r_a, r_b, tie, strength, strength_mode=cfg.strength, margins=cfg.margins)


@dataclass
class _PairIndex:
    """Pairs as indices into the item table; a is the preferred item unless tie."""

    a: torch.Tensor
    b: torch.Tensor
    labels: _Labels

    @classmethod
    def build(cls, pairs: Sequence[PairExample], items: _Items) -> _PairIndex:
        return cls(
            a=torch.tensor([items.add(p.conversation, p.chosen_text) for p in pairs], dtype=torch.long),
            b=torch.tensor([items.add(p.conversation, p.rejected_text) for p in pairs], dtype=torch.long),
            labels=_Labels.build(pairs),
        )

    def __len__(self) -> int:
        return len(self.a)


@dataclass
class _RatingIndex:
    """Ratings as item indices with z-scored targets and a mask of observed scores."""

    item: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def build(
        cls, ratings: Sequence[RatedExample], items: _Items, criteria: Sequence[str], mean: torch.Tensor, std: torch.Tensor
    ) -> _RatingIndex:
        raw = torch.tensor(
            [[np.nan if r.scores.get(k) is None else float(r.scores[k]) for k in criteria] for r in ratings],
            dtype=torch.float32,
        ).reshape(len(ratings), len(criteria))
        mask = ~torch.isnan(raw)
        target = torch.where(mask, (raw - mean) / std, torch.zeros_like(raw))
        return cls(torch.tensor([items.add(r.conversation, r.response_text) for r in ratings], dtype=torch.long), target, mask)

    def __len__(self) -> int:
        return len(self.item)


def _criteria_stats(ratings: Sequence[RatedExample]) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Criteria with at least one score, with their mean and std (std 1 when constant)."""
    values: dict[str, list[float]] = {}
    for r in ratings:
        for k, v in r.scores.items():
            if v is not None:
                values.setdefault(k, []).append(float(v))
    criteria = sorted(values)
    mean = torch.tensor([float(np.mean(values[k])) for k in criteria])
    std = torch.tensor([float(np.std(values[k])) or 1.0 for k in criteria])
    return criteria, mean, std


def _steps(n: int, cfg: TrainConfig) -> int:
    assert cfg.batch_size is not None and cfg.epochs is not None
    return cfg.epochs * math.ceil(n / cfg.batch_size) if n else 0


def train_head(
    config: TrainConfig,
    pairs: Sequence[PairExample],
    ratings: Sequence[RatedExample] = (),
    *,
    eval_pairs: Sequence[PairExample] | None = None,
    eval_ratings: Sequence[RatedExample] | None = None,
    progress_cb: ProgressCb | None = None,
    should_stop_cb: StopCb | None = None,
) -> TrainResult:
    """Frozen backbone + ensemble heads on cached embeddings.

    ``bt``: M reward heads trained with :func:`losses.preference_loss` on the pairs.
    ``multi``: M per-criterion regression heads (masked MSE on z-scored ratings).
    ``gated``: multi, then (heads frozen) M prompt gates trained with BT on the pairs.
    Members differ by seed and, with ``bootstrap`` and M > 1, by a bootstrap resample.
    """
    cfg = config.resolve()
    if cfg.mode != "head":
        raise ValueError("train_head needs mode='head'")
    train_p, eval_p = _split(pairs, eval_pairs, cfg)
    train_r, eval_r = _split(ratings, eval_ratings, cfg)
    if cfg.ties == "drop":
        train_p = [p for p in train_p if not p.tie]
    if cfg.objective in ("bt", "gated") and not train_p:
        raise ValueError(f"objective {cfg.objective!r} needs training pairs")
    if cfg.objective in ("multi", "gated") and not train_r:
        raise ValueError(f"objective {cfg.objective!r} needs training ratings")
    monitor = _Monitor(progress_cb, should_stop_cb)
    monitor.check()

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        monitor.announce({"phase": "load"})  # a GGUF takes seconds to de-quantise: say so
        embedder = frozen_embedder(cfg.backbone, cfg.pooling, cfg, cfg.cache_dir)
        backbone, cache = embedder.backbone, embedder.cache
        stacked = load_stacked(cfg)

        items = _Items()
        train_pi, eval_pi = _PairIndex.build(train_p, items), _PairIndex.build(eval_p, items)
        criteria, mean, std = _criteria_stats(train_r) if cfg.objective != "bt" else ([], torch.zeros(0), torch.ones(0))
        train_ri = _RatingIndex.build(train_r, items, criteria, mean, std) if criteria else None
        eval_ri = _RatingIndex.build(eval_r, items, criteria, mean, std) if criteria and eval_r else None

        def on_embed(done: int, todo: int) -> None:
            monitor.check()
            monitor.report(_EMBED_SHARE * done / max(todo, 1), {"phase": "embed", "embedded": done, "to_embed": todo})

        feats, prompts = head_inputs(embedder, stacked, items.items, cfg, on_embed)
        head = build_head_model(cfg, criteria, feats.shape[1], backbone.dim)
        if head.standardize:  # the statistics of the items trained on (a copy of their rows: only when asked)
            trained_on = torch.cat([train_pi.a, train_pi.b, *([train_ri.item] if train_ri is not None else [])]).unique()
            head.fit_standardization(feats[trained_on])
            feats = head.scale_features(feats)
        head.criterion_mean.copy_(mean)
        head.criterion_std.copy_(std)
        fitter = _HeadFitter(cfg, head, feats, prompts, monitor, eval_pi, eval_ri)
        if cfg.objective == "bt":
            fitter.total = _steps(len(train_pi), cfg)
            fitter.fit_pairs("bt", train_pi, list(head.heads.parameters()), fitter.bt_rewards)
        else:
            assert train_ri is not None
            fitter.total = _steps(len(train_ri), cfg) + (_steps(len(train_pi), cfg) if cfg.objective == "gated" else 0)
            fitter.fit_regression(train_ri)
            head.heads.requires_grad_(False)
            if cfg.length_decorrelation:
                _fit_decorrelation(head, feats[train_ri.item])
            if head.gates is not None:
                fitter.frozen_scores = head.decorrelate(_eval(head, lambda: head.criterion_scores(feats)))
                fitter.fit_pairs("gate", train_pi, list(head.gates.parameters()), fitter.gated_rewards)
        head.eval()
        metrics = _head_metrics(head, feats, prompts, items, train_pi, eval_pi, eval_p, eval_ri)
        metrics["precision"] = backbone.precision  # what "auto" came to on this machine
    monitor.report(1.0, metrics, force=True)
    model = RewardModel(config=cfg, backbone=backbone, head=head, cache=cache, stacked=stacked)
    return TrainResult(model=model, metrics=json_safe(metrics), curves=json_safe(fitter.curves), config=cfg.to_dict())


R = TypeVar("R")


def _eval(module: nn.Module, fn: Callable[[], R]) -> R:
    """fn() in eval mode without gradients, restoring the module's mode."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return fn()
    finally:
        module.train(was_training)


def _fit_decorrelation(head: HeadModel, train_feats: torch.Tensor) -> None:
    """λ_k = Cov(r_k, r_v) / Var(r_v) per member on the training ratings' predicted
    scores: the least-squares slope, so r_k − λ_k r_v is uncorrelated with r_v there."""
    if head.verbosity_index is None:
        return
    scores = _eval(head, lambda: head.criterion_scores(train_feats))  # [M, R, K]
    centred = scores - scores.mean(dim=1, keepdim=True)
    v = centred[..., head.verbosity_index]
    lam = (centred * v.unsqueeze(-1)).mean(dim=1) / v.pow(2).mean(dim=1, keepdim=True).clamp(min=1e-12)
    lam[:, head.verbosity_index] = 0.0
    head.decorrelation.copy_(lam)


class _HeadFitter:
    """Trains the M ensemble members in lockstep: one optimizer step updates every
    member on its own minibatch of its own (bootstrap) sample. The step minimises

        Σ_m [ L_m(batch_m) + λ Σ_{W ∈ member m} ‖W‖² ]      (λ = config.l2, ridge; gate_l2 for the gate)

    which has no cross-member terms, and AdamW is per-parameter, so this is M
    independent trainings done in one loop (and one curve for the ensemble)."""

    def __init__(
        self,
        cfg: TrainConfig,
        head: HeadModel,
        feats: torch.Tensor,
        prompts: torch.Tensor | None,
        monitor: _Monitor,
        eval_pairs: _PairIndex,
        eval_ratings: _RatingIndex | None,
    ):
        self.cfg = cfg
        self.head = head
        self.feats = feats
        self.prompts = prompts
        self.monitor = monitor
        self.eval_pairs = eval_pairs
        self.eval_ratings = eval_ratings
        self.frozen_scores: torch.Tensor | None = None  # [M, T, K] criterion scores under the gate
        self.curves: list[dict[str, Any]] = []
        self.step = 0
        self.total = 0

    def bt_rewards(self, m: int, items: torch.Tensor) -> torch.Tensor:
        return self.head.heads.members[m](self.feats[items]).squeeze(-1)

    def gated_rewards(self, m: int, items: torch.Tensor) -> torch.Tensor:
        assert self.head.gates is not None and self.prompts is not None and self.frozen_scores is not None
        return gated_reward(self.head.gates.members[m](self.prompts[items]), self.frozen_scores[m, items])

    def fit_pairs(
        self, stage: str, pairs: _PairIndex, params: list[nn.Parameter], reward: Callable[[int, torch.Tensor], torch.Tensor]
    ) -> None:
        def member_loss(m: int, idx: torch.Tensor) -> torch.Tensor:
            r = reward(m, torch.cat([pairs.a[idx], pairs.b[idx]]))
            return pairs.labels.loss(r[: len(idx)], r[len(idx) :], self.cfg, idx)

        self._fit(stage, len(pairs), member_loss, params)

    def fit_regression(self, ratings: _RatingIndex) -> None:
        def member_loss(m: int, idx: torch.Tensor) -> torch.Tensor:
            pred = self.head.heads.members[m](self.feats[ratings.item[idx]])
            return masked_mse(pred, ratings.target[idx], ratings.mask[idx])

        self._fit("regression", len(ratings), member_loss, list(self.head.heads.parameters()))

    def _fit(self, stage: str, n: int, member_loss: Callable[[int, torch.Tensor], torch.Tensor], params: list[nn.Parameter]) -> None:
        cfg = self.cfg
        assert cfg.batch_size is not None and cfg.epochs is not None and cfg.lr is not None
        n_members = cfg.ensemble_size
        rngs = [np.random.default_rng([cfg.seed, m, _STAGE_SALT[stage]]) for m in range(n_members)]
        resample = cfg.bootstrap and n_members > 1
        samples = [rng.integers(0, n, n) if resample else np.arange(n) for rng in rngs]
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay or 0.0)
        matrices = [p for p in params if p.dim() >= 2]
        penalty = cfg.gate_l2 if stage == "gate" else cfg.l2
        steps_per_epoch = math.ceil(n / cfg.batch_size)
        last = self.step + cfg.epochs * steps_per_epoch
        # Evaluating a head costs one pass over cached vectors: a short stage (a small
        # project) is evaluated more often than eval_every, so its curves still say something.
        every = min(cfg.eval_every, max(1, math.ceil(cfg.epochs * steps_per_epoch / _MIN_CURVE_POINTS)))
        running: list[float] = []
        self.head.train()
        for epoch in range(cfg.epochs):
            orders = [torch.from_numpy(rng.permutation(sample)) for rng, sample in zip(rngs, samples, strict=True)]
            for s in range(steps_per_epoch):
                self.monitor.check()
                window = slice(s * cfg.batch_size, (s + 1) * cfg.batch_size)
                data_loss = sum(member_loss(m, orders[m][window]) for m in range(n_members))
                optimizer.zero_grad(set_to_none=True)
                (data_loss + penalty * sum(w.pow(2).sum() for w in matrices)).backward()
                optimizer.step()
                self.step += 1
                running.append(data_loss.item() / n_members)
                fraction = _EMBED_SHARE + (1 - _EMBED_SHARE) * self.step / max(self.total, 1)
                if self.step % every == 0 or self.step == last:
                    point = {"stage": stage, "step": self.step, "epoch": epoch + (s + 1) / steps_per_epoch}
                    point.update({"loss": float(np.mean(running)), **self._evaluate()})
                    running = []
                    self.curves.append(point)
                    self.monitor.report(fraction, point, force=True)
                else:
                    self.monitor.report(fraction, {"stage": stage, "step": self.step, "loss": running[-1]})
        self.head.eval()

    def _evaluate(self) -> dict[str, float]:
        out: dict[str, float] = {}
        ev = self.eval_pairs
        if len(ev):
            items = torch.unique(torch.cat([ev.a, ev.b]))
            members, _ = _eval(self.head, lambda: self.head(self.feats[items], _rows(self.prompts, items)))
            a, b = torch.searchsorted(items, ev.a), torch.searchsorted(items, ev.b)
            diff = (members[:, a] - members[:, b]).mean(dim=0)
            out["eval_accuracy"] = evaluate.pairwise_accuracy(diff.numpy(), ev.labels.tie.numpy())
            losses = [ev.labels.loss(members[m, a], members[m, b], self.cfg) for m in range(len(members))]
            out["eval_loss"] = float(torch.stack(losses).mean())
        er = self.eval_ratings
        if er is not None and len(er):
            pred = _eval(self.head, lambda: self.head.criterion_scores(self.feats[er.item]))
            out["eval_mse"] = float(torch.stack([masked_mse(p, er.target, er.mask) for p in pred]).mean())
        return out


def _rows(t: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
    return None if t is None else t[idx]


def _pair_metrics(
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


def _head_metrics(
    head: HeadModel,
    feats: torch.Tensor,
    prompts: torch.Tensor | None,
    items: _Items,
    train_pi: _PairIndex,
    eval_pi: _PairIndex,
    eval_p: Sequence[PairExample],
    eval_ri: _RatingIndex | None,
) -> dict[str, Any]:
    with torch.no_grad():
        members, criteria = head(feats, prompts)
    mu = members.mean(dim=0)
    metrics: dict[str, Any] = {"train_pairs": len(train_pi)}
    if len(train_pi):
        train_diff = (mu[train_pi.a] - mu[train_pi.b]).numpy()
        metrics["train_accuracy"] = evaluate.pairwise_accuracy(train_diff, train_pi.labels.tie.numpy())
    if len(eval_pi):
        crit = criteria.mean(dim=0)
        crit_diffs = {k: (crit[eval_pi.a, j] - crit[eval_pi.b, j]).numpy() for j, k in enumerate(head.criteria)}
        metrics.update(_pair_metrics(eval_p, mu[eval_pi.a].numpy(), mu[eval_pi.b].numpy(), crit_diffs))
        responses = torch.unique(torch.cat([eval_pi.a, eval_pi.b]))
        lengths = [len(items.items[i][1]) for i in responses.tolist()]
        metrics["length_spearman"] = evaluate.length_correlation(mu[responses].numpy(), lengths)
    if eval_ri is not None and len(eval_ri):
        scores = head.criterion_scores(feats[eval_ri.item]).detach()
        metrics["eval_mse"] = float(torch.stack([masked_mse(p, eval_ri.target, eval_ri.mask) for p in scores]).mean())
    return metrics


# ---------------------------------------------------------------------------- finetune


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
    train_p, eval_p = _split(pairs, eval_pairs, cfg)
    if cfg.ties == "drop":
        train_p = [p for p in train_p if not p.tie]
    if not train_p:
        raise ValueError("finetune needs training pairs")
    monitor = _Monitor(progress_cb, should_stop_cb)
    monitor.check()
    ckpt_root = Path(work_dir) / "checkpoints" if work_dir is not None else None
    devices = [torch.device(cfg.device).index or 0] if cfg.device == "cuda" else []

    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(cfg.seed)
        monitor.announce({"phase": "load"})
        backbone = load_backbone(cfg.backbone, cfg)
        model = PooledRewardModel(backbone).to(cfg.device)
        text = backbone.text
        ids_a = text.encode([text.format(p.conversation, p.chosen_text) for p in train_p])
        ids_b = text.encode([text.format(p.conversation, p.rejected_text) for p in train_p])
        ev_a = text.encode([text.format(p.conversation, p.chosen_text) for p in eval_p])
        ev_b = text.encode([text.format(p.conversation, p.rejected_text) for p in eval_p])
        labels, ev_labels = _Labels.build(train_p), _Labels.build(eval_p)
        lengths = [max(len(a), len(b)) for a, b in zip(ids_a, ids_b, strict=True)]
        epoch_batches = _EpochBatches(lengths, cfg.batch_size, cfg.seed)
        steps_per_epoch = math.ceil(len(epoch_batches(0)) / cfg.grad_accum)
        total = cfg.epochs * steps_per_epoch
        optimizer = torch.optim.AdamW(_decay_groups(model, cfg.weight_decay or 0.0), lr=cfg.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _linear_schedule(total, cfg.warmup_ratio))
        fingerprint = _fingerprint(cfg, train_p)
        step, curves = 0, []
        latest = _latest_checkpoint(ckpt_root)
        if latest is not None:
            step, curves = _load_checkpoint(latest, model, optimizer, scheduler, fingerprint, cfg.device)

        def evaluate_now() -> dict[str, float]:
            if not eval_p:
                return {}
            r_a, r_b = model.rewards(ev_a, cfg.embed_batch_size), model.rewards(ev_b, cfg.embed_batch_size)
            return {
                "eval_accuracy": evaluate.pairwise_accuracy((r_a - r_b).numpy(), ev_labels.tie.numpy()),
                "eval_loss": float(ev_labels.loss(r_a, r_b, cfg)),
            }

        model.train()
        train_s, done_pairs = 0.0, 0  # throughput counts training steps only, not evaluation
        try:
            while step < total:
                monitor.check()
                started = time.perf_counter()
                epoch, within = divmod(step, steps_per_epoch)
                micro = epoch_batches(epoch)[within * cfg.grad_accum : (within + 1) * cfg.grad_accum]
                n_step = sum(len(mb) for mb in micro)
                step_loss = 0.0
                for mb in micro:
                    idx = torch.tensor(mb, dtype=torch.long)
                    r = model(collate([ids_a[i] for i in mb] + [ids_b[i] for i in mb], backbone.pad_id))
                    # Weighted by micro-batch size: the step's gradient is that of the mean over all its pairs.
                    loss = labels.loss(r[: len(mb)], r[len(mb) :], cfg, idx) * (len(mb) / n_step)
                    loss.backward()
                    step_loss += loss.item()
                nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                done_pairs += n_step
                train_s += time.perf_counter() - started
                point: dict[str, Any] = {
                    "stage": "finetune",
                    "step": step,
                    "epoch": step / steps_per_epoch,
                    "loss": step_loss,
                    "pairs_per_s": done_pairs / train_s,
                }
                evaluated = step % cfg.eval_every == 0 or step == total
                if evaluated:
                    point.update(evaluate_now())
                    curves.append(point)
                if ckpt_root is not None and step % cfg.checkpoint_every == 0 and step < total:
                    _save_checkpoint(ckpt_root, step, model, optimizer, scheduler, curves, fingerprint)
                monitor.report(step / total, point, force=evaluated)
                monitor.check()
        except Cancelled:
            if ckpt_root is not None:
                shutil.rmtree(ckpt_root, ignore_errors=True)
            raise
        model.eval()
        metrics: dict[str, Any] = {
            "train_pairs": len(train_p), "precision": backbone.precision,
            "train_pairs_per_s": done_pairs / train_s if train_s else None,  # this run's steps (None: resumed at the end)
        }
        if eval_p:
            r_a, r_b = model.rewards(ev_a, cfg.embed_batch_size), model.rewards(ev_b, cfg.embed_batch_size)
            metrics.update(_pair_metrics(eval_p, r_a.numpy(), r_b.numpy(), {}))
            rewards = torch.cat([r_a, r_b]).numpy()
            lengths_chars = [len(p.chosen_text) for p in eval_p] + [len(p.rejected_text) for p in eval_p]
            metrics["length_spearman"] = evaluate.length_correlation(rewards, lengths_chars)
    monitor.report(1.0, metrics, force=True)
    model_out = RewardModel(config=cfg, backbone=backbone, pooled=model)
    return TrainResult(model=model_out, metrics=json_safe(metrics), curves=json_safe(curves), config=cfg.to_dict())


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


def _fingerprint(cfg: TrainConfig, pairs: Sequence[PairExample]) -> str:
    """What a checkpoint must match to be resumed: the training config (minus fields
    that do not change the result) and the exact training pairs."""
    settings = {k: v for k, v in cfg.to_dict().items() if k not in _RUNTIME_FIELDS}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for p in pairs:
        row = [str(p.prompt_id), p.conversation, p.chosen_text, p.rejected_text, p.tie, p.strength]
        digest.update(json.dumps(row, sort_keys=True).encode())
    return digest.hexdigest()


def _latest_checkpoint(root: Path | None) -> Path | None:
    if root is None or not root.is_dir():
        return None
    done = sorted(root.glob("step-*"))
    return done[-1] if done else None


def _save_checkpoint(
    root: Path,
    step: int,
    model: PooledRewardModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    curves: list[dict[str, Any]],
    fingerprint: str,
) -> None:
    """Write ``step-NNNNNNNN`` via a temporary directory and a rename (a crash mid-write
    leaves only a ``.tmp-`` directory, never a half checkpoint), then drop older ones."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "curves": curves,
        "fingerprint": fingerprint,
    }
    torch.save(state, tmp / "trainer.pt")
    os.rename(tmp, final)
    for old in root.iterdir():
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(
    path: Path,
    model: PooledRewardModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    fingerprint: str,
    device: str,
) -> tuple[int, list[dict[str, Any]]]:
    state = torch.load(path / "trainer.pt", weights_only=True, map_location="cpu")
    if state["fingerprint"] != fingerprint:
        raise ValueError(f"checkpoint {path} was made with another config or other data; use a fresh work_dir")
    load_model(model, str(path / "model.safetensors"), device=device)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["step"]), list(state["curves"])
