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

    def forward(self, prompt_emb: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Weights [N, K]; with ``keep`` ([K] bool) the others get weight 0 and the
        rest sum to 1."""
        logits = self.net(prompt_emb)
        if keep is not None:
            logits = logits.masked_fill(~keep, float("-inf"))
        return torch.softmax(logits, dim=-1)

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
        oriented = _oriented(c, ratings[..., j])
        if rule == "conjunctive":
            total = total + F.logsigmoid(oriented - c["worst"] - c["reference"])
        elif "limit" in c:  # a hierarchical hard rule
            total = total - aggregation["hard_penalty"] * (oriented < c["limit"]).to(total.dtype)
        elif c["best"] > c["worst"]:
            total = total + c["weight"] * (oriented - c["worst"]) / (c["best"] - c["worst"])
    return total


def _oriented(spec: dict[str, Any], ratings: torch.Tensor) -> torch.Tensor:
    """A criterion's ratings oriented higher-is-better by its aggregation spec:
    sign · v, or −|v − target|, with v clipped to the scale (a rating cannot leave it)."""
    v = ratings.clamp(spec["lo"], spec["hi"])
    return -(v - spec["target"]).abs() if spec["target"] is not None else spec["sign"] * v


class GateOrientation:
    """What a rubric aggregation makes of the gated model's criterion scores.

    The gate's weights are a softmax (≥ 0), so it can only add criteria: each must be
    higher-is-better before it reaches the gate, or a longer answer gains reward
    whenever the gate weighs verbosity. Per criterion k, with v_k its predicted
    rating clipped to the scale and (μ_k, σ_k) the training ratings' mean and std:

    * plain: o_k = sign_k · (v_k − μ_k) / σ_k (the z-score, negated for lower-better);
    * target: o_k = −|v_k − t_k| / σ_k, so one rating step counts as on a plain one;
    * not in the gate: a criterion the aggregation does not name, gives weight 0
      (weighted sum), or makes a hard rule; the gate's weights over the rest sum to 1.

    A hard rule (hierarchical) that the predicted rating violates, as in
    :func:`overall_reward`, costs ``hard_penalty`` · (1 + max_k range_k) in the gate's
    units (range_k = (best_k − worst_k) / σ_k): more than the gate can give between
    two responses to one prompt, so hard rules come first whatever w(x) is. The
    rubric's weights and priorities take no other part: weighing the criteria is the
    gate's job. Constant shifts (a target criterion is ≤ 0) do not matter: both
    responses to a prompt get the same w(x).
    """

    def __init__(self, aggregation: dict[str, Any], criteria: Sequence[str]):
        specs = {c["key"]: c for c in aggregation["criteria"]}
        rule = aggregation["rule"]
        self.hard_penalty = float(aggregation["hard_penalty"])
        self.specs: list[dict[str, Any] | None] = []
        self.hard: list[int] = []
        keep = []
        for j, key in enumerate(criteria):
            c = specs.get(key)
            in_gate = c is not None and "limit" not in c and (rule != "weighted_sum" or c["weight"] > 0)
            if c is not None and "limit" in c:
                self.hard.append(j)
            self.specs.append(c)
            keep.append(in_gate)
        if not any(keep):
            raise ValueError(f"aggregation: no criterion of {list(criteria)} is one the rubric weighs; "
                             "the gate would have nothing to weigh")
        self.keep = torch.tensor(keep)
        ends = [(c["best"] - c["worst"]) if k and c is not None else 0.0 for c, k in zip(self.specs, keep, strict=True)]
        self.range = torch.tensor(ends)
        self.sign = torch.tensor([float(c["sign"]) if c is not None else 1.0 for c in self.specs])
        self.target = torch.tensor([float(c["target"]) if c and c["target"] is not None else 0.0 for c in self.specs])
        self.is_target = torch.tensor([bool(c and c["target"] is not None) for c in self.specs])
        self.lo = torch.tensor([float(c["lo"]) if c else float("-inf") for c in self.specs])
        self.hi = torch.tensor([float(c["hi"]) if c else float("inf") for c in self.specs])

    def orient(self, ratings: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """[…, K] gate inputs from predicted ratings in rating units (0 outside the gate)."""
        def t(x: torch.Tensor) -> torch.Tensor:
            return x.to(ratings.device, ratings.dtype if x.is_floating_point() else x.dtype)

        v = torch.maximum(torch.minimum(ratings, t(self.hi)), t(self.lo))
        plain = t(self.sign) * (v - mean) / std
        toward = -(v - t(self.target)).abs() / std
        oriented = torch.where(t(self.is_target), toward, plain)
        return torch.where(t(self.keep), oriented, torch.zeros_like(oriented))

    def violations(self, ratings: torch.Tensor) -> torch.Tensor:
        """[…] number of hard rules the predicted ratings violate."""
        count = ratings.new_zeros(ratings.shape[:-1])
        for j in self.hard:
            spec = self.specs[j]
            assert spec is not None
            count = count + (_oriented(spec, ratings[..., j]) < spec["limit"]).to(count.dtype)
        return count

    def penalty(self, std: torch.Tensor) -> torch.Tensor:
        """What one violated hard rule costs in the gate's units."""
        spread = (self.range.to(std.device) / std)[self.keep.to(std.device)].max()
        return self.hard_penalty * (1.0 + spread)


class HeadModel(nn.Module):
    """Everything head mode puts on top of a frozen backbone.

    - ``bt``: M scalar reward heads on the features.
    - ``multi``: M heads with one output per criterion, trained on z-scored ratings;
      reward R = the rubric's aggregation of the predicted ratings when one is given
      (``overall_reward``), else Σ_k w_k r'_k with fixed weights (equal by default).
    - ``gated``: as multi, plus M gates on the prompt embedding; R = β w(x)ᵀ o
      (β learned with the gate when ``gate_temperature``, else 1). o = r' without an
      aggregation (every criterion read as higher-is-better, as ArmoRM and models
      trained before rubrics oriented the gate); with one, o is r' oriented by the
      rubric (:class:`GateOrientation`: polarity, targets, which criteria the gate
      weighs, hard rules).

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
        self.aggregation = aggregation if objective in ("multi", "gated") else None
        # Built from the stored aggregation, not saved as buffers: artifacts from before it load unchanged.
        self.orientation = (
            GateOrientation(aggregation, self.criteria) if objective == "gated" and aggregation is not None else None
        )
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

    def gate_inputs(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(gate inputs o [M, N, K], hard rules violated [M, N]) from [M, N, K] criterion
        scores: r' oriented by the rubric when the model has one, else r' as it is."""
        adjusted = self.decorrelate(scores)
        if self.orientation is None:
            return adjusted, adjusted.new_zeros(adjusted.shape[:-1])
        ratings = adjusted * self.criterion_std + self.criterion_mean
        return (self.orientation.orient(ratings, self.criterion_mean, self.criterion_std),
                self.orientation.violations(ratings))

    def gated_member(self, m: int, prompt_emb: torch.Tensor, inputs: torch.Tensor, violated: torch.Tensor) -> torch.Tensor:
        """Member m's gated rewards [N] from its gate inputs [N, K] (training calls this too)."""
        assert self.gates is not None
        gate = self.gates.members[m]
        if self.orientation is None:
            return gate.beta() * gated_reward(gate(prompt_emb), inputs)
        reward = gated_reward(gate(prompt_emb, self.orientation.keep.to(inputs.device)), inputs)
        if self.orientation.hard:
            reward = reward - self.orientation.penalty(self.criterion_std) * violated
        return gate.beta() * reward

    def combine(self, scores: torch.Tensor, prompt_emb: torch.Tensor | None) -> torch.Tensor:
        """[M, N] rewards from [M, N, K] criterion scores."""
        if self.gates is not None:
            if prompt_emb is None:
                raise ValueError("the gated objective needs prompt embeddings")
            inputs, violated = self.gate_inputs(scores)
            return torch.stack([self.gated_member(m, prompt_emb, inputs[m], violated[m]) for m in range(len(self.gates))])
        adjusted = self.decorrelate(scores)
        if self.aggregation is not None:
            return overall_reward(self.aggregation, self.criteria, adjusted * self.criterion_std + self.criterion_mean)
        return adjusted @ self.criterion_weights

    def forward(self, features: torch.Tensor, prompt_emb: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(member rewards [M, N], per-criterion scores in rating units [M, N, K])."""
        if self.objective == "bt":
            rewards = self.heads(features).squeeze(-1)
            return rewards, rewards.new_zeros((*rewards.shape, 0))
        scores = self.criterion_scores(features)
        return self.combine(scores, prompt_emb), scores * self.criterion_std + self.criterion_mean
