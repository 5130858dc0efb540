"""The multi objective's overall reward follows the rubric's aggregation
(issue #20, fix 1): weights, polarity and targets as ``rubrics.derive`` compares
rated responses, evaluated on the model's predicted ratings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models_svc.ml.heads import HeadModel, overall_reward
from rubrics import derive

TEMPLATE = Path(__file__).resolve().parents[3] / "rubrics" / "templates_data" / "helpsteer2.json"


def _helpsteer2(rule: str | None = None) -> tuple[dict, list[derive.Rule]]:
    data = json.loads(TEMPLATE.read_text())
    rules = derive.rules_from_specs(data["criteria"])
    return derive.reward_aggregation(rule or data["aggregation"], rules), rules


def _model(aggregation, criteria, mean, std) -> HeadModel:
    """A multi model whose heads pass the features through: feature k is criterion k's z-score."""
    k = len(criteria)
    head = HeadModel(objective="multi", feature_dim=k, prompt_dim=k, criteria=criteria, ensemble_size=1,
                     head="linear", hidden=8, dropout=0.0, seed=0, aggregation=aggregation)
    with torch.no_grad():
        head.heads.members[0].weight.copy_(torch.eye(k))
        head.heads.members[0].bias.zero_()
    head.criterion_mean.copy_(torch.tensor(mean))
    head.criterion_std.copy_(torch.tensor(std))
    return head.eval()


def test_a_response_that_is_only_longer_scores_no_higher_under_helpsteer2():
    aggregation, _ = _helpsteer2()
    criteria = sorted(c["key"] for c in aggregation["criteria"])  # as training orders them
    # HelpSteer2-like rating statistics (0-4 scale): verbosity sits a little under its target of 2.
    stats = {"coherence": (3.3, 0.8), "complexity": (1.5, 0.7), "correctness": (2.8, 1.2),
             "helpfulness": (2.6, 1.2), "verbosity": (1.5, 0.8)}
    model = _model(aggregation, criteria, [stats[c][0] for c in criteria], [stats[c][1] for c in criteria])
    base = torch.zeros(len(criteria))
    longer = base.clone()
    longer[criteria.index("verbosity")] = 2.0  # +2σ on verbosity, nothing else changes
    with torch.no_grad():
        reward, ratings = model(torch.stack([base, longer]))
    assert ratings[0, 1, criteria.index("verbosity")] == pytest.approx(1.5 + 2 * 0.8)
    assert reward[0, 1] <= reward[0, 0]
    # … while a more correct one scores higher, by its weight over the normalised range.
    correct = base.clone()
    correct[criteria.index("correctness")] = 0.5
    with torch.no_grad():
        gain = model(correct[None])[0][0, 0] - reward[0, 0]
    assert gain == pytest.approx(0.8 * 0.5 * 1.2 / 4, rel=1e-5)


def test_the_overall_reward_ranks_rated_responses_as_the_rubric_derives_them():
    """On exact ratings, the reward's order is derive's decision for every pair (weighted sum and conjunctive)."""
    gen = torch.Generator().manual_seed(0)
    for rule in ("weighted_sum", "conjunctive"):
        aggregation, rules = _helpsteer2(rule)
        criteria = [r.key for r in rules]
        ratings = torch.randint(0, 5, (40, len(criteria)), generator=gen).double()
        reward = overall_reward(aggregation, criteria, ratings)
        for i in range(0, 40, 2):
            a, b = ({k: float(v) for k, v in zip(criteria, ratings[j].tolist())} for j in (i, i + 1))
            decision = derive.derive(rule, a, b, rules)
            expected = {"A": 1, "B": -1, "tie": 0}[decision.choice]
            diff = float(reward[i] - reward[i + 1])
            assert (0 if abs(diff) < 1e-9 else (1 if diff > 0 else -1)) == expected, (rule, a, b)


def test_hierarchical_puts_hard_rules_first_and_principles_in_priority_order():
    specs = [
        {"key": "safe", "name": "Safe", "scale": "binary", "kind": "hard_rule"},
        {"key": "helpful", "name": "Helpful", "scale": "likert", "min": 0, "max": 4, "priority": 1},
        {"key": "concise", "name": "Concise", "scale": "likert", "min": 0, "max": 4, "priority": 2},
    ]
    rules = derive.rules_from_specs(specs)
    aggregation = derive.reward_aggregation("hierarchical", rules)
    criteria = ["safe", "helpful", "concise"]
    r = overall_reward(aggregation, criteria, torch.tensor([
        [0.0, 4.0, 4.0],  # unsafe, otherwise perfect
        [1.0, 0.0, 0.0],  # safe, otherwise worst
        [1.0, 3.0, 0.0],  # more helpful …
        [1.0, 2.0, 4.0],  # … beats more concise
    ]))
    assert r[1] > r[0] and r[2] > r[3]
