"""Reward-model objectives, each a few lines of torch.

Notation: r_w, r_l are the rewards of the preferred and the other response,
Δ = r_w − r_l, σ the logistic function. Every log σ is ``F.logsigmoid`` (stable for
large |Δ|). Functions return the batch mean unless they say otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bt_loss(r_w: torch.Tensor, r_l: torch.Tensor) -> torch.Tensor:
    """Bradley-Terry: L = −log σ(r_w − r_l)."""
    return -F.logsigmoid(r_w - r_l).mean()


def tie_loss(r_a: torch.Tensor, r_b: torch.Tensor) -> torch.Tensor:
    """Tie as a soft label P(a≻b) = ½ (binary cross-entropy with target 0.5):

        L = −½ [log σ(r_a − r_b) + log σ(r_b − r_a)],

    minimal (log 2) at r_a = r_b and symmetric in a, b. Chosen over dropping ties by
    default because a tie is information ("these are about equal"); the config can
    drop them instead.
    """
    d = r_a - r_b
    return -0.5 * (F.logsigmoid(d) + F.logsigmoid(-d)).mean()


def margin_bt_loss(r_w: torch.Tensor, r_l: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """BT with a strength margin (Llama 2): L = −log σ(r_w − r_l − m(s))."""
    return -F.logsigmoid(r_w - r_l - margin).mean()


def scaled_bt_loss(r_w: torch.Tensor, r_l: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """Scaled-BT (HelpSteer2-Preference): L = mean_i s_i · (−log σ(r_w,i − r_l,i))."""
    return (-strength * F.logsigmoid(r_w - r_l)).mean()


def preference_loss(
    r_a: torch.Tensor,
    r_b: torch.Tensor,
    tie: torch.Tensor,
    strength: torch.Tensor,
    *,
    strength_mode: str,
    margins: tuple[float, float, float],
) -> torch.Tensor:
    """Per-pair mix used in training: a is the preferred response unless ``tie``.

    Non-ties use BT, margin-BT or Scaled-BT by ``strength_mode`` (``none``,
    ``margin``, ``scaled``); ``strength`` holds 1..3, or 0 where unknown (margin 0,
    weight 1). Ties use :func:`tie_loss`. Returns the mean over all pairs.
    """
    d = r_a - r_b
    s = strength.long()
    if strength_mode == "margin":
        table = torch.tensor((0.0, *margins), dtype=d.dtype, device=d.device)
        pref = -F.logsigmoid(d - table[s])
    elif strength_mode == "scaled":
        pref = -torch.where(s > 0, s.to(d.dtype), torch.ones_like(d)) * F.logsigmoid(d)
    else:
        pref = -F.logsigmoid(d)
    tie_term = -0.5 * (F.logsigmoid(d) + F.logsigmoid(-d))
    return torch.where(tie, tie_term, pref).mean()


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Multi-objective regression (ArmoRM stage 1) with missing scores.

    pred, target, mask are [N, K] (mask 1 where the criterion was scored). Per
    criterion k: L_k = Σ_i m_ik (ŷ_ik − y_ik)² / Σ_i m_ik; L = mean of L_k over the
    criteria with at least one score. Missing entries contribute nothing, and a
    criterion rated on few responses weighs as much as a common one. Targets are
    expected normalised per criterion (z-scores) by the caller.
    """
    m = mask.to(pred.dtype)
    count = m.sum(dim=0)
    per_criterion = ((pred - target) ** 2 * m).sum(dim=0) / count.clamp(min=1.0)
    present = count > 0
    if not bool(present.any()):
        return pred.sum() * 0.0
    return per_criterion[present].mean()


def gated_reward(weights: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """ArmoRM stage 2 score: R = w(x)ᵀ r(x, y), weights [N, K] (rows sum to 1), rewards [N, K].

    w ≥ 0, so each r_k must be higher-is-better: the gated model passes its criterion
    scores oriented by the rubric (``heads.GateOrientation``)."""
    return (weights * rewards).sum(dim=-1)


def gated_bt_loss(weights: torch.Tensor, r_w: torch.Tensor, r_l: torch.Tensor) -> torch.Tensor:
    """BT on gated scores; one prompt, so the same w(x) weighs both responses:
    L = −log σ(w(x)ᵀ r(x, y_w) − w(x)ᵀ r(x, y_l))."""
    return bt_loss(gated_reward(weights, r_w), gated_reward(weights, r_l))
