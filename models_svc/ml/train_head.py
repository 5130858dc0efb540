"""Head mode: a frozen backbone's cached embeddings, and small ensemble heads
trained on them in seconds (DESIGN §4). Heads always train on the CPU: they are
tiny, and it keeps runs reproducible."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from . import evaluate
from .config import TrainConfig
from .data import Message, PairExample, RatedExample
from .heads import HeadModel
from .infer import RewardModel, build_head_model, frozen_embedder, head_inputs, load_stacked
from .losses import masked_mse
from .train_common import Monitor, PairLabels, ProgressCb, StopCb, TrainResult, json_safe, pair_metrics, split_or_given

_EMBED_SHARE = 0.5  # head mode: progress fraction given to embedding, the rest to training
_MIN_CURVE_POINTS = 20  # head mode: evaluations per stage at least (see _HeadFitter._fit)
_STAGE_SALT = {"bt": 0, "regression": 1, "gate": 2}  # independent bootstrap draws per stage


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
class _PairIndex:
    """Pairs as indices into the item table; a is the preferred item unless tie."""

    a: torch.Tensor
    b: torch.Tensor
    labels: PairLabels

    @classmethod
    def build(cls, pairs: Sequence[PairExample], items: _Items) -> _PairIndex:
        return cls(
            a=torch.tensor([items.add(p.conversation, p.chosen_text) for p in pairs], dtype=torch.long),
            b=torch.tensor([items.add(p.conversation, p.rejected_text) for p in pairs], dtype=torch.long),
            labels=PairLabels.build(pairs),
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
    ``gated``: multi, then (heads frozen) M prompt gates trained with BT on the pairs,
    over the criterion scores oriented by the rubric's aggregation when the config has one.
    Members differ by seed and, with ``bootstrap`` and M > 1, by a bootstrap resample.
    """
    cfg = config.resolve()
    if cfg.mode != "head":
        raise ValueError("train_head needs mode='head'")
    train_p, eval_p = split_or_given(pairs, eval_pairs, cfg)
    train_r, eval_r = split_or_given(ratings, eval_ratings, cfg)
    if cfg.ties == "drop":
        train_p = [p for p in train_p if not p.tie]
    if cfg.objective in ("bt", "gated") and not train_p:
        raise ValueError(f"objective {cfg.objective!r} needs training pairs")
    if cfg.objective in ("multi", "gated") and not train_r:
        raise ValueError(f"objective {cfg.objective!r} needs training ratings")
    monitor = Monitor(progress_cb, should_stop_cb)
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
                fitter.frozen_scores, fitter.frozen_violations = head.gate_inputs(
                    _eval(head, lambda: head.criterion_scores(feats)))
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
        monitor: Monitor,
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
        self.frozen_scores: torch.Tensor | None = None  # [M, T, K] the gate's inputs (oriented criterion scores)
        self.frozen_violations: torch.Tensor | None = None  # [M, T] hard rules each item violates
        self.curves: list[dict[str, Any]] = []
        self.step = 0
        self.total = 0

    def bt_rewards(self, m: int, items: torch.Tensor) -> torch.Tensor:
        return self.head.heads.members[m](self.feats[items]).squeeze(-1)

    def gated_rewards(self, m: int, items: torch.Tensor) -> torch.Tensor:
        assert self.prompts is not None and self.frozen_scores is not None and self.frozen_violations is not None
        return self.head.gated_member(m, self.prompts[items], self.frozen_scores[m, items],
                                      self.frozen_violations[m, items])

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
        metrics.update(pair_metrics(eval_p, mu[eval_pi.a].numpy(), mu[eval_pi.b].numpy(), crit_diffs))
        responses = torch.unique(torch.cat([eval_pi.a, eval_pi.b]))
        lengths = [len(items.items[i][1]) for i in responses.tolist()]
        metrics["length_spearman"] = evaluate.length_correlation(mu[responses].numpy(), lengths)
    if eval_ri is not None and len(eval_ri):
        scores = head.criterion_scores(feats[eval_ri.item]).detach()
        metrics["eval_mse"] = float(torch.stack([masked_mse(p, eval_ri.target, eval_ri.mask) for p in scores]).mean())
    return metrics
