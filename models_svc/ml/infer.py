"""Scoring with a trained reward model, and its artifact format.

An artifact is a directory:

- ``config.json``: format tag, the resolved :class:`TrainConfig`, criteria,
  backbone identity, head dimensions;
- ``heads.safetensors`` (head mode): ensemble heads, gates and their buffers; the
  frozen backbone is referenced by path and checked by content hash on load;
- ``backbone/`` + ``head.safetensors`` (finetune mode): the fine-tuned backbone
  (``save_pretrained``, safetensors) and its linear head;
- ``metrics.json`` (optional): final metrics and curves of the run.

``save`` writes to a temporary sibling and renames it into place, so a directory
at the target path is always complete.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .backbone import Backbone, Embedder, EmbeddingCache, PooledRewardModel, backbone_identity
from .config import STORED_BEFORE, TrainConfig, resolve_device
from .data import FormattedText, Message
from .heads import HeadModel, summarize

ARTIFACT_FORMAT = "preflab-reward-model/1"
_HEAD_CHUNK = 4096  # rows per head forward when scoring large pools

Item = tuple[Sequence[Message], str]  # (conversation, response)


def build_head_model(config: TrainConfig, criteria: Sequence[str], feature_dim: int, prompt_dim: int) -> HeadModel:
    """The head-mode module a resolved config describes (used by training and loading)."""
    return HeadModel(
        objective=config.objective,
        feature_dim=feature_dim,
        prompt_dim=prompt_dim,
        criteria=criteria,
        ensemble_size=config.ensemble_size,
        head=config.head,
        hidden=config.head_hidden,
        dropout=config.head_dropout,
        seed=config.seed,
        criterion_weights=config.criterion_weights,
        aggregation=config.aggregation,
        verbosity_key=config.verbosity_key,
        standardize=config.standardize,
        gate_temperature=config.gate_temperature,
    )


def embed_items(
    backbone: Backbone,
    embedder: Embedder,
    items: Sequence[Item],
    *,
    features: str,
    with_prompts: bool,
    normalize: bool,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Head-mode inputs for (conversation, response) items, in one embedding pass.

    Features: the embeddings of the views ``features`` names, joined by "+", side
    by side: ``joint`` = e(conversation + response), ``turn`` = e(last turn +
    response), ``response`` = e(response). Mean pooling over a long conversation
    dilutes the response; the response alone restores it (joint 0.571 → joint+response
    0.625 on HH harmless, mean of 5 prompt splits), and the last turn gives it back
    the question it answers. Prompt embeddings e(conversation) feed the gate.
    With ``normalize`` each embedding is scaled to unit L2 norm (the cache keeps the
    raw pooled vectors).
    """
    text = backbone.text
    views = {
        "joint": lambda conv, resp: text.format(conv, resp),
        "turn": lambda conv, resp: text.format(conv[-1:], resp),
        "response": lambda conv, resp: text.format_response(resp),
    }
    groups: list[list[FormattedText]] = [
        [views[view](conv, resp) for conv, resp in items] for view in features.split("+")
    ]
    if with_prompts:
        groups.append([text.format_prompt(conv) for conv, _ in items])
    flat = [t for g in groups for t in g]
    vectors = torch.from_numpy(embedder.embed(flat, on_progress))
    if normalize:
        vectors = torch.nn.functional.normalize(vectors, dim=-1)
    parts = list(vectors.split(len(items))) if items else [vectors] * len(groups)
    prompt_emb = parts.pop() if with_prompts else None
    return torch.cat(parts, dim=1), prompt_emb


def load_backbone(path: str | Path, config: TrainConfig, pooling: str | None = None) -> Backbone:
    """The backbone at ``path`` with the config's length, device and precision, and
    its pooling (or ``pooling``: a stacked backbone has its own)."""
    assert config.layers is not None, "load_backbone needs a resolved config"
    return Backbone.load(
        path, max_length=config.max_length, device=config.device, pooling=pooling or config.pooling,
        precision=config.precision, layers=config.layers,
    )


def frozen_embedder(path: str | Path, pooling: str, config: TrainConfig, cache_dir: str | Path | None) -> Embedder:
    """A frozen backbone with its embedding cache (none without ``cache_dir``)."""
    backbone = load_backbone(path, config, pooling)
    backbone.model.requires_grad_(False)
    cache = EmbeddingCache(cache_dir, backbone) if cache_dir else None
    return Embedder(backbone, cache, config.embed_batch_size)


def load_stacked(config: TrainConfig, cache_dir: str | Path | None = None) -> list[Embedder]:
    """Frozen embedders of the config's ``stack`` backbones, each with its own cache
    (under ``cache_dir``, else the config's)."""
    root = cache_dir if cache_dir is not None else config.cache_dir
    return [frozen_embedder(path, pooling, config, root) for path, pooling in config.stacked()]


def head_inputs(
    embedder: Embedder, stacked: Sequence[Embedder], items: Sequence[Item], config: TrainConfig,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Head-mode (features, prompt embeddings) for training and scoring alike: the
    main backbone's views, then the same views from each stacked backbone."""
    def embed(e: Embedder, with_prompts: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        return embed_items(e.backbone, e, items, features=config.features, with_prompts=with_prompts,
                           normalize=config.normalize, on_progress=on_progress)

    feats, prompts = embed(embedder, config.objective == "gated")
    if stacked:
        feats = torch.cat([feats, *(embed(e, False)[0] for e in stacked)], dim=1)
    return feats, prompts


@dataclass
class Scores:
    """Scores of N responses: ensemble mean, σ, μ − λσ, each member, each criterion."""

    reward: np.ndarray
    std: np.ndarray
    conservative: np.ndarray
    members: np.ndarray  # [M, N]
    criteria: dict[str, np.ndarray]

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "reward": float(self.reward[i]),
                "std": float(self.std[i]),
                "conservative": float(self.conservative[i]),
                "criteria": {k: float(v[i]) for k, v in self.criteria.items()},
            }
            for i in range(len(self.reward))
        ]


class RewardModel:
    """A trained reward model, either mode, ready to score."""

    def __init__(
        self,
        *,
        config: TrainConfig,
        backbone: Backbone,
        head: HeadModel | None = None,
        pooled: PooledRewardModel | None = None,
        cache: EmbeddingCache | None = None,
        stacked: Sequence[Embedder] = (),
    ):
        if (head is None) == (pooled is None):
            raise ValueError("a reward model has either heads on a frozen backbone or a fine-tuned backbone")
        self.config = config
        self.backbone = backbone
        self.head = head
        self.pooled = pooled
        self.embedder = Embedder(backbone, cache, config.embed_batch_size)
        self.stacked = list(stacked)  # embedders of config.stack, in order
        for module in (head, pooled):
            if module is not None:
                module.eval()

    @property
    def criteria(self) -> list[str]:
        return list(self.head.criteria) if self.head is not None else []

    def score(self, conversation: Sequence[Message], responses: Sequence[str]) -> list[dict[str, Any]]:
        """Per response: ``{reward, std, conservative, criteria: {key: score}}``."""
        return self.score_items([(conversation, r) for r in responses]).rows()

    @torch.inference_mode()
    def score_items(self, items: Sequence[Item], on_progress: Callable[[int, int], None] | None = None) -> Scores:
        """Batched scores of (conversation, response) items, with each member's
        reward (active learning needs the per-member differences)."""
        if self.pooled is not None:
            ids = self.backbone.text.encode([self.backbone.text.format(c, r) for c, r in items])
            members = self.pooled.rewards(ids, self.config.embed_batch_size).unsqueeze(0)
            criteria_scores = members.new_zeros((1, len(items), 0))
        else:
            assert self.head is not None
            feats, prompts = head_inputs(self.embedder, self.stacked, items, self.config, on_progress)
            members, criteria_scores = self._head_outputs(self.head.scale_features(feats), prompts)
        mu, sigma, cons = summarize(members, self.config.conservative_lambda)
        crit_mean = criteria_scores.mean(dim=0)
        return Scores(
            reward=mu.numpy(),
            std=sigma.numpy(),
            conservative=cons.numpy(),
            members=members.numpy(),
            criteria={k: crit_mean[:, j].numpy() for j, k in enumerate(self.criteria)},
        )

    @torch.inference_mode()
    def prompt_embeddings(self, conversations: Sequence[Sequence[Message]]) -> np.ndarray:
        """(N, dim) backbone embeddings of the prompts alone (BAL-PM's feature space),
        through the embedding cache."""
        text = self.backbone.text
        return self.embedder.embed([text.format_prompt(c) for c in conversations])

    def _head_outputs(self, feats: torch.Tensor, prompts: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.head is not None
        rewards, criteria = [], []
        for start in range(0, max(len(feats), 1), _HEAD_CHUNK):
            end = start + _HEAD_CHUNK
            r, c = self.head(feats[start:end], None if prompts is None else prompts[start:end])
            rewards.append(r)
            criteria.append(c)
        return torch.cat(rewards, dim=1), torch.cat(criteria, dim=1)

    def save(self, path: str | Path, metrics: dict[str, Any] | None = None) -> Path:
        """Write the artifact directory atomically; ``path`` must not exist yet."""
        target = Path(path)
        if target.exists():
            raise FileExistsError(f"{target} already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            meta: dict[str, Any] = {"format": ARTIFACT_FORMAT, "config": self.config.to_dict(), "criteria": self.criteria}
            if self.head is not None:
                meta["backbone"] = {"path": str(self.backbone.path), "identity": self.backbone.identity}
                meta["stack"] = [{"path": str(e.backbone.path), "identity": e.backbone.identity} for e in self.stacked]
                meta["feature_dim"] = self.head.feature_dim
                meta["prompt_dim"] = self.head.prompt_dim
                meta["head_criteria"] = self.head.criteria
                save_file(_contiguous(self.head.state_dict()), str(tmp / "heads.safetensors"))
            else:
                assert self.pooled is not None
                self.backbone.model.save_pretrained(tmp / "backbone")
                self.backbone.tokenizer.save_pretrained(tmp / "backbone")
                meta["backbone"] = {"path": "backbone", "identity": backbone_identity(tmp / "backbone")}
                save_file(_contiguous(self.pooled.head.state_dict()), str(tmp / "head.safetensors"))
            (tmp / "config.json").write_text(json.dumps(meta, indent=2))
            if metrics is not None:
                (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False))
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    @classmethod
    def load(
        cls, path: str | Path, *, device: str = "auto", cache_dir: str | Path | None = None, precision: str | None = None
    ) -> RewardModel:
        """Load an artifact for scoring; reload gives the same scores as before saving.
        ``device`` and ``precision`` (None: the trained one) pick where and how it runs."""
        root = Path(path)
        meta = json.loads((root / "config.json").read_text())
        if meta.get("format") != ARTIFACT_FORMAT:
            raise ValueError(f"{root}: not a {ARTIFACT_FORMAT} artifact")
        overrides = {"device": resolve_device(device)} | ({"precision": precision} if precision else {})
        config = TrainConfig.from_dict({**STORED_BEFORE, **meta["config"], **overrides}).resolve()
        if config.mode == "finetune":
            backbone = load_backbone(root / "backbone", config)
            pooled = PooledRewardModel(backbone)
            pooled.head.load_state_dict(load_file(str(root / "head.safetensors")))
            pooled.to(config.device)
            return cls(config=config, backbone=backbone, pooled=pooled)
        backbone = load_backbone(config.backbone, config)
        if backbone.identity != meta["backbone"]["identity"]:
            raise ValueError(f"backbone at {config.backbone} is not the one these heads were trained on")
        stacked = load_stacked(config, cache_dir)
        for embedder, saved in zip(stacked, meta.get("stack", []), strict=True):
            if embedder.backbone.identity != saved["identity"]:
                raise ValueError(f"stacked backbone at {saved['path']} is not the one these heads were trained on")
        head = build_head_model(config, meta["head_criteria"], meta["feature_dim"], meta["prompt_dim"])
        head.load_state_dict(load_file(str(root / "heads.safetensors")))
        cache = EmbeddingCache(cache_dir, backbone) if cache_dir is not None else None
        return cls(config=config, backbone=backbone, head=head, cache=cache, stacked=stacked)


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}
