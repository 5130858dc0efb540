"""Objectives against values computed by hand (log σ(x) = −log(1 + e^−x))."""

from __future__ import annotations

import math

import pytest
import torch

from models_svc.ml import losses

LOG2 = math.log(2.0)
SP1 = math.log1p(math.exp(-1.0))  # −log σ(1) = 0.3132617
SPM1 = math.log1p(math.exp(1.0))  # −log σ(−1) = 1.3132617


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_bradley_terry_is_mean_negative_log_sigmoid_of_the_difference():
    assert losses.bt_loss(t(1.0, 0.0), t(0.0, 0.0)).item() == pytest.approx((SP1 + LOG2) / 2)


def test_bradley_terry_is_stable_for_huge_differences():
    assert losses.bt_loss(t(-1000.0), t(1000.0)).item() == pytest.approx(2000.0)
    assert losses.bt_loss(t(1000.0), t(-1000.0)).item() == pytest.approx(0.0)


def test_tie_loss_targets_one_half_and_is_symmetric():
    assert losses.tie_loss(t(1.0), t(0.0)).item() == pytest.approx((SP1 + SPM1) / 2)
    assert losses.tie_loss(t(0.0), t(1.0)).item() == pytest.approx((SP1 + SPM1) / 2)
    assert losses.tie_loss(t(0.3), t(0.3)).item() == pytest.approx(LOG2)  # the minimum


def test_margin_shifts_the_difference_by_the_strength_margin():
    assert losses.margin_bt_loss(t(2.0), t(0.0), t(1.0)).item() == pytest.approx(SP1)


def test_scaled_bt_weighs_each_pair_by_its_strength():
    assert losses.scaled_bt_loss(t(0.0, 0.0), t(0.0, 0.0), t(1.0, 3.0)).item() == pytest.approx(2 * LOG2)


def test_preference_loss_mixes_ties_margins_and_unknown_strength():
    r_a, r_b = t(1.0, 1.5, 0.0), t(0.0, 0.0, 0.0)
    tie = torch.tensor([True, False, False])
    strength = torch.tensor([0, 2, 0])
    got = losses.preference_loss(r_a, r_b, tie, strength, strength_mode="margin", margins=(0.0, 0.5, 1.0))
    # tie at Δ=1; strength 2 → m=0.5 so −log σ(1); unknown strength → m=0 at Δ=0.
    assert got.item() == pytest.approx(((SP1 + SPM1) / 2 + SP1 + LOG2) / 3)


def test_preference_loss_scaled_treats_unknown_strength_as_one():
    got = losses.preference_loss(
        t(0.0, 0.0), t(0.0, 0.0), torch.tensor([False, False]), torch.tensor([3, 0]), strength_mode="scaled", margins=(0, 0, 0)
    )
    assert got.item() == pytest.approx((3 * LOG2 + LOG2) / 2)


def test_masked_mse_averages_per_criterion_and_ignores_missing_scores():
    pred = t(1.0, 0.0, 9.0, 3.0, 5.0, 9.0).reshape(2, 3)
    target = t(0.0, 0.0, 0.0, 1.0, 100.0, 0.0).reshape(2, 3)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    # criterion 0: (1² + 2²)/2 = 2.5; criterion 1: 0²/1 = 0; criterion 2 never scored.
    assert losses.masked_mse(pred, target, mask).item() == pytest.approx(1.25)


def test_missing_scores_get_no_gradient():
    pred = t(1.0, 3.0).reshape(1, 2).requires_grad_()
    losses.masked_mse(pred, t(0.0, 0.0).reshape(1, 2), torch.tensor([[1, 0]])).backward()
    assert pred.grad is not None and pred.grad[0, 1].item() == 0.0 and pred.grad[0, 0].item() == pytest.approx(2.0)


def test_gated_reward_and_its_bradley_terry_loss_with_fixed_weights():
    w = t(0.25, 0.75).reshape(1, 2)
    r_w, r_l = t(2.0, 0.0).reshape(1, 2), t(0.0, 2.0).reshape(1, 2)
    assert losses.gated_reward(w, r_w).item() == pytest.approx(0.5)
    assert losses.gated_reward(w, r_l).item() == pytest.approx(1.5)
    assert losses.gated_bt_loss(w, r_w, r_l).item() == pytest.approx(SPM1)
