"""Heads on pooled embeddings: reward heads, per-criterion heads, the gate, ensembles.

Head mode trains these on cached embeddings of a frozen backbone. An ensemble of M
members (different seeds, bootstrap resamples) gives per-response rewards r_m and

    μ = mean_m r_m,   σ = sqrt(mean_m (r_m − μ)²),   conservative = μ − λσ.

σ is the population standard deviation, so it is exactly 0 for M = 1 or identical
members.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .losses import gated_reward


def make_head(kind: str, in_dim: int, out_dim: int, hidden: int, dropout: float) -> nn.Module:
    """``linear``: r = Wx + b. ``mlp``: one GELU hidden layer with dropout (a frozen
    embedding is not linearly separable by preference; a small MLP helps)."""
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    return nn.Sequential(
        nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
    )


class GatingNetwork(nn.Module):
    """ArmoRM gate: prompt embedding → softmax weights w(x) over K criteria, and
    (``temperature``) a learned β > 0 that scales the gated reward before the
    sigmoid. w(x)ᵀr is a convex mix of z-scored criteria, so its differences are
    small and σ of them crowds near ½ however sure the labels are; ArmoRM learns
    β with the gate. β = exp(log β), log β starts at 0 (β = 1)."""

    def __init__(self, prompt_dim: int, n_criteria: int, hidden: int, temperature: bool = False):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(prompt_dim, hidden), nn.GELU(), nn.Linear(hidden, n_criteria))
        self.log_beta = nn.Parameter(torch.zeros(())) if temperature else None

    def forward(self, prompt_emb: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(prompt_emb), dim=-1)

    def beta(self) -> torch.Tensor:
        return self.log_beta.exp() if self.log_beta is not None else torch.ones(())


class Ensemble(nn.Module):
    """M modules built by ``factory``, member m initialised under seed ``seed + m``
    (without disturbing the caller's global RNG); forward stacks outputs to [M, …]."""

    def __init__(self, factory: Callable[[], nn.Module], size: int, seed: int):
        super().__init__()
        members = []
        for m in range(size):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + m)
                members.append(factory())
        self.members = nn.ModuleList(members)

    def __len__(self) -> int:
        return len(self.members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members])


def summarize(member_rewards: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(μ, σ, μ − λσ) over the member axis of [M, N] rewards."""
    mu = member_rewards.mean(dim=0)
    sigma = member_rewards.std(dim=0, correction=0)
    return mu, sigma, mu - lam * sigma


def overall_reward(aggregation: dict[str, Any], criteria: Sequence[str], ratings: torch.Tensor) -> torch.Tensor:
    """[…] overall rewards from […, K] predicted ratings (rating units, in the order
    of ``criteria``) by a rubric aggregation (``rubrics.derive.reward_aggregation``,
    whose docstring gives the rules). Criteria the rubric does not name count 0."""
    specs = {c["key"]: c for c in aggregation["criteria"]}
    rule = aggregation["rule"]
    total = ratings.new_zeros(ratings.shape[:-1])
    for j, key in enumerate(criteria):
        c = specs.get(key)
        if c is None:
            continue
        v = ratings[..., j].clamp(c["lo"], c["hi"])  # a rating cannot leave its scale
        oriented = -(v - c["target"]).abs() if c["target"] is not None else c["sign"] * v
        if rule == "conjunctive":
            total = total + F.logsigmoid(oriented - c["worst"] - c["reference"])
        elif "limit" in c:  # a hierarchical hard rule
            total = total - aggregation["hard_penalty"] * (oriented < c["limit"]).to(total.dtype)
        elif c["best"] > c["worst"]:
            total = total + c["weight"] * (oriented - c["worst"]) / (c["best"] - c["worst"])
    return total


class HeadModel(nn.Module):
    """Everything head mode puts on top of a frozen backbone.

    - ``bt``: M scalar reward heads on the features.
    - ``multi``: M heads with one output per criterion, trained on z-scored ratings;
      reward R = the rubric's aggregation of the predicted ratings when one is given
      (``overall_reward``), else Σ_k w_k r'_k with fixed weights (equal by default).
    - ``gated``: as multi, plus M gates on the prompt embedding; R = β w(x)ᵀ r'
      (β learned with the gate when ``gate_temperature``, else 1).

    r' is r after optional length decorrelation, r'_k = r_k − λ_k r_verbosity, with a
    λ per member and criterion (0 for verbosity itself and when disabled). Buffers
    hold the rating normalisation (mean, std) to report criteria in rating units.
    """

    def __init__(
        self,
        *,
        objective: str,
        feature_dim: int,
        prompt_dim: int,
        criteria: Sequence[str],
        ensemble_size: int,
        head: str,
        hidden: int,
        dropout: float,
        seed: int,
        criterion_weights: dict[str, float] | None = None,
        aggregation: dict[str, Any] | None = None,
        verbosity_key: str = "verbosity",
        standardize: bool = False,
        gate_temperature: bool = False,
    ):
        super().__init__()
        self.objective = objective
        self.criteria = list(criteria)
        self.feature_dim = feature_dim
        self.prompt_dim = prompt_dim
        k = len(self.criteria)
        if objective != "bt" and k == 0:
            raise ValueError(f"objective {objective!r} needs at least one rated criterion")
        out = 1 if objective == "bt" else k
        self.heads = Ensemble(lambda: make_head(head, feature_dim, out, hidden, dropout), ensemble_size, seed)
        self.gates = (
            Ensemble(lambda: GatingNetwork(prompt_dim, k, hidden, gate_temperature), ensemble_size, seed + 10_000)
            if objective == "gated"
            else None
        )
        weights = torch.full((k,), 1.0 / max(k, 1))
        if criterion_weights:
            weights = torch.tensor([float(criterion_weights.get(c, 0.0)) for c in self.criteria])
        self.register_buffer("criterion_weights", weights)
        self.aggregation = aggregation if objective == "multi" else None
        self.register_buffer("criterion_mean", torch.zeros(k))
        self.register_buffer("criterion_std", torch.ones(k))
        self.register_buffer("decorrelation", torch.zeros(ensemble_size, k))
        self.verbosity_index = self.criteria.index(verbosity_key) if verbosity_key in self.criteria else None
        # Only when asked, so that artifacts saved before standardisation existed load unchanged.
        self.standardize = standardize
        if standardize:
            self.register_buffer("feature_mean", torch.zeros(feature_dim))
            self.register_buffer("feature_std", torch.ones(feature_dim))

    def fit_standardization(self, train_features: torch.Tensor) -> None:
        """Per-feature mean and std of the training items' features (std floored so a
        constant feature stays finite)."""
        if self.standardize:
            self.feature_mean.copy_(train_features.mean(dim=0))
            self.feature_std.copy_(train_features.std(dim=0, correction=0).clamp_min(1e-6))

    def scale_features(self, features: torch.Tensor) -> torch.Tensor:
        """z = (x − mean) / std when standardising, else x unchanged."""
        if not self.standardize:
            return features
        return (features - self.feature_mean) / self.feature_std

    def criterion_scores(self, features: torch.Tensor) -> torch.Tensor:
        """[M, N, K] per-criterion scores in z-score units (multi/gated)."""
        return self.heads(features)

    def decorrelate(self, scores: torch.Tensor) -> torch.Tensor:
        """r'_k = r_k − λ_k r_verbosity on [M, N, K] scores."""
        if self.verbosity_index is None:
            return scores
        v = scores[..., self.verbosity_index : self.verbosity_index + 1]
        return scores - self.decorrelation.unsqueeze(1) * v

    def combine(self, scores: torch.Tensor, prompt_emb: torch.Tensor | None) -> torch.Tensor:
        """[M, N] rewards from [M, N, K] criterion scores."""
        adjusted = self.decorrelate(scores)
        if self.aggregation is not None:
            return overall_reward(self.aggregation, self.criteria, adjusted * self.criterion_std + self.criterion_mean)
        if self.gates is None:
            return adjusted @ self.criterion_weights
        if prompt_emb is None:
            raise ValueError("the gated objective needs prompt embeddings")
        beta = torch.stack([g.beta() for g in self.gates.members]).unsqueeze(-1)  # [M, 1]
        return beta * gated_reward(self.gates(prompt_emb), adjusted)

    def forward(self, features: torch.Tensor, prompt_emb: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(member rewards [M, N], per-criterion scores in rating units [M, N, K])."""
        if self.objective == "bt":
            rewards = self.heads(features).squeeze(-1)
            return rewards, rewards.new_zeros((*rewards.shape, 0))
        scores = self.criterion_scores(features)
        return self.combine(scores, prompt_emb), scores * self.criterion_std + self.criterion_mean
