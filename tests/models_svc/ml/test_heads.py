"""Ensembles: σ across members, the conservative score."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models_svc.ml.heads import Ensemble, GatingNetwork, summarize


def test_summarize_gives_mean_population_std_and_conservative_score():
    mu, sigma, cons = summarize(torch.tensor([[1.0, 3.0], [3.0, 5.0]]), lam=2.0)
    assert mu.tolist() == [2.0, 4.0]
    assert sigma.tolist() == [1.0, 1.0]
    assert cons.tolist() == [0.0, 2.0]


def test_std_is_zero_for_a_single_member():
    ens = Ensemble(lambda: nn.Linear(4, 1), size=1, seed=0)
    _, sigma, cons = summarize(ens(torch.randn(5, 4)).squeeze(-1), lam=1.5)
    assert torch.equal(sigma, torch.zeros(5))


def test_std_is_zero_when_members_are_identical_and_positive_otherwise():
    ens = Ensemble(lambda: nn.Linear(4, 1), size=3, seed=0)
    x = torch.randn(5, 4)
    mu, sigma, cons = summarize(ens(x).squeeze(-1).detach(), lam=1.0)
    assert bool((sigma > 0).all())  # different seeds → different members
    assert torch.allclose(cons, mu - sigma)
    for member in ens.members[1:]:
        member.load_state_dict(ens.members[0].state_dict())
    _, sigma, _ = summarize(ens(x).squeeze(-1).detach(), lam=1.0)
    assert torch.equal(sigma, torch.zeros(5))


def test_members_are_seeded_and_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = Ensemble(lambda: nn.Linear(4, 1), size=2, seed=5)
    assert torch.equal(torch.get_rng_state(), before)
    b = Ensemble(lambda: nn.Linear(4, 1), size=2, seed=5)
    assert torch.equal(a.members[1].weight, b.members[1].weight)
    assert not torch.equal(a.members[0].weight, a.members[1].weight)


def test_gate_outputs_a_distribution_over_criteria():
    w = GatingNetwork(8, 3, hidden=4)(torch.randn(6, 8))
    assert w.shape == (6, 3)
    assert w.sum(dim=-1).tolist() == pytest.approx([1.0] * 6)
