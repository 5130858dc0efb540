"""The gated objective reads each criterion the way the pinned rubric does (issue #20,
point 1 for ``gated``): the gate's softmax weights are ≥ 0, so a lower-is-better or a
"right length" criterion must be oriented before the gate, or the gate rewards more
errors and longer answers. Models trained without an aggregation score as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models_svc.ml.config import STORED_BEFORE, TrainConfig
from models_svc.ml.heads import HeadModel
from models_svc.ml.infer import build_head_model
from rubrics import derive

TEMPLATE = Path(__file__).resolve().parents[3] / "rubrics" / "templates_data" / "helpsteer2.json"
BEFORE = Path(__file__).resolve().parent / "data" / "gated_before_orientation"
# HelpSteer2-like rating statistics (0-4 scale), as in test_rubric_reward.
HS2_STATS = {"coherence": (3.3, 0.8), "complexity": (1.5, 0.7), "correctness": (2.8, 1.2),
             "helpfulness": (2.6, 1.2), "verbosity": (1.5, 0.8)}


def _helpsteer2() -> dict:
    data = json.loads(TEMPLATE.read_text())
    return derive.reward_aggregation(data["aggregation"], derive.rules_from_specs(data["criteria"]))


def _aggregation(rule: str, specs: list[dict]) -> dict:
    return derive.reward_aggregation(rule, derive.rules_from_specs(specs))


def _likert(key: str, **kw) -> dict:
    return {"key": key, "name": key.title(), "scale": "likert", "min": 0, "max": 4, **kw}


def _gated(aggregation, criteria, stats, gate_logits) -> HeadModel:
    """A gated model whose heads pass features through (feature k is criterion k's
    z-score) and whose gate ignores the prompt: softmax(gate_logits) over the criteria."""
    k = len(criteria)
    head = HeadModel(objective="gated", feature_dim=k, prompt_dim=3, criteria=criteria, ensemble_size=1,
                     head="linear", hidden=8, dropout=0.0, seed=0, aggregation=aggregation, gate_temperature=True)
    with torch.no_grad():
        head.heads.members[0].weight.copy_(torch.eye(k))
        head.heads.members[0].bias.zero_()
        last = head.gates.members[0].net[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor(gate_logits, dtype=torch.float32))
        head.gates.members[0].log_beta.fill_(0.5)
    head.criterion_mean.copy_(torch.tensor([stats[c][0] for c in criteria]))
    head.criterion_std.copy_(torch.tensor([stats[c][1] for c in criteria]))
    return head.eval()


def _z(stats, criteria, ratings: dict[str, float]) -> torch.Tensor:
    """Features (= z-scores) of a response with these ratings (others at their mean)."""
    return torch.tensor([(ratings.get(c, stats[c][0]) - stats[c][0]) / stats[c][1] for c in criteria])


def _rewards(head: HeadModel, rows: list[torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return head(torch.stack(rows), torch.zeros(len(rows), 3))[0][0]


@pytest.mark.parametrize("verbosity_weight", [0.0, 2.0])
def test_under_helpsteer2_a_response_only_more_verbose_than_the_target_scores_no_higher(verbosity_weight):
    criteria = sorted(HS2_STATS)
    logits = [0.0] * len(criteria)
    logits[criteria.index("verbosity")] = verbosity_weight  # the gate leans on verbosity (or weighs all alike)
    head = _gated(_helpsteer2(), criteria, HS2_STATS, logits)
    right = _z(HS2_STATS, criteria, {"verbosity": 2.0})  # verbosity at its target of 2
    longer = _z(HS2_STATS, criteria, {"verbosity": 3.5})
    terse = _z(HS2_STATS, criteria, {"verbosity": 0.5})
    more_correct = _z(HS2_STATS, criteria, {"verbosity": 2.0, "correctness": 3.5})
    r_right, r_longer, r_terse, r_correct = _rewards(head, [right, longer, terse, more_correct]).tolist()
    assert r_longer < r_right and r_terse < r_right
    # Beyond the target by as much as short of it costs the same: −|v − 2| / σ.
    assert r_longer == pytest.approx(r_terse, abs=1e-6)
    assert r_correct > r_right  # a plain criterion still counts up


def test_a_criterion_with_negative_polarity_lowers_the_gated_reward_as_it_rises():
    criteria = ["errors", "harm", "helpful"]
    aggregation = _aggregation("weighted_sum", [
        _likert("helpful"), _likert("errors", polarity="lower_better"),
        {"key": "harm", "name": "Harm", "scale": "severity"},  # severity: none 0 … severe 3, lower is better
    ])
    stats = {"errors": (1.0, 1.0), "harm": (0.5, 0.8), "helpful": (2.0, 1.0)}
    head = _gated(aggregation, criteria, stats, [1.0, 1.0, 0.0])
    r = _rewards(head, [_z(stats, criteria, {}), _z(stats, criteria, {"errors": 3.0}),
                        _z(stats, criteria, {"harm": 2.0}), _z(stats, criteria, {"helpful": 3.0})])
    assert r[1] < r[0] and r[2] < r[0] and r[3] > r[0]
    # With weights w = softmax(1, 1, 0) the drop is β·w_errors·(3 − 1)/σ, as the z-score of a negated rating.
    w = torch.softmax(torch.tensor([1.0, 1.0, 0.0]), dim=0)
    assert float(r[0] - r[1]) == pytest.approx(float(torch.exp(torch.tensor(0.5)) * w[0] * 2.0), rel=1e-5)


def test_criteria_the_rubric_does_not_weigh_are_left_out_of_the_gate():
    criteria = ["helpful", "length", "style"]  # "length" is rated but the rubric does not name it
    aggregation = _aggregation("weighted_sum", [_likert("helpful"), _likert("style", weight=0.0)])
    stats = {c: (2.0, 1.0) for c in criteria}
    head = _gated(aggregation, criteria, stats, [0.0, 5.0, 5.0])  # the gate would lean on the two left out
    base = _z(stats, criteria, {})
    r = _rewards(head, [base, _z(stats, criteria, {"length": 4.0, "style": 0.0}), _z(stats, criteria, {"helpful": 3.0})])
    assert float(r[1]) == float(r[0])
    # helpful alone is weighed, with all the weight: β · (3 − 2) / 1.
    assert float(r[2] - r[0]) == pytest.approx(float(torch.exp(torch.tensor(0.5))), rel=1e-5)
    with pytest.raises(ValueError, match="aggregation: no criterion"):
        _gated(_aggregation("weighted_sum", [_likert("other")]), criteria, stats, [0.0, 0.0, 0.0])


def test_a_violated_hard_rule_ranks_below_anything_the_gate_can_give():
    specs = [{"key": "safe", "name": "Safe", "scale": "binary", "kind": "hard_rule"},
             _likert("helpful", priority=1), _likert("concise", priority=2)]
    criteria = ["concise", "helpful", "safe"]
    stats = {"concise": (2.0, 0.5), "helpful": (2.0, 0.5), "safe": (0.9, 0.3)}
    for logits in ([0.0, 0.0, 0.0], [4.0, -4.0, 9.0], [-4.0, 4.0, 0.0]):
        head = _gated(_aggregation("hierarchical", specs), criteria, stats, logits)
        unsafe_best = _z(stats, criteria, {"safe": 0.0, "helpful": 4.0, "concise": 4.0})
        safe_worst = _z(stats, criteria, {"safe": 1.0, "helpful": 0.0, "concise": 0.0})
        r = _rewards(head, [unsafe_best, safe_worst])
        assert r[1] > r[0], logits
        # The hard rule's criterion takes no part in the gate.
        with torch.no_grad():
            assert float(head.gates.members[0](torch.zeros(1, 3), head.orientation.keep)[0, 2]) == 0.0


def test_an_artifact_saved_before_orientation_loads_and_scores_exactly_as_before():
    """``data/gated_before_orientation`` was written by the code at main 4a8ce65 (a
    gated model with β, length decorrelation and HelpSteer2's criteria, no
    aggregation), with the rewards it gave on probe inputs. Equal to float32 rounding:
    bit-identical on the CPU that wrote it, but another CPU's vector code (AVX-512
    against AVX2, say) sums in another order and differs in the last bits; any change
    in what is computed (a sign, a scale, a dropped criterion) is orders larger."""
    meta = json.loads((BEFORE / "config.json").read_text())
    config = TrainConfig.from_dict({**STORED_BEFORE, **meta["config"]})
    head = build_head_model(config, meta["head_criteria"], meta["feature_dim"], meta["prompt_dim"])
    head.load_state_dict(load_file(str(BEFORE / "heads.safetensors")))
    head.eval()
    probe = load_file(str(BEFORE / "probe.safetensors"))
    with torch.no_grad():
        rewards, ratings = head(probe["features"], probe["prompts"])
    assert head.orientation is None and config.aggregation is None
    torch.testing.assert_close(rewards, probe["rewards"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ratings, probe["ratings"], rtol=1e-5, atol=1e-6)


def test_the_gate_trains_on_oriented_scores_and_the_artifact_keeps_the_aggregation(tiny_backbone: Path, tmp_path: Path):
    """The labels prefer the response with fewer errors. Read as higher-is-better, the
    gate's one criterion can only rank the other way round; oriented by the rubric
    (errors: lower is better) it ranks them right. Reloading keeps the orientation."""
    from models_svc.ml.data import RatedExample
    from models_svc.ml.infer import RewardModel
    from models_svc.ml.train import train_head

    from .test_train import CONV, PAIRS, RESPONSES, assert_same_scores, head_config

    ratings = [RatedExample(p.prompt_id, p.conversation, text, {"errors": errors})
               for p in PAIRS for text, errors in ((p.chosen_text, 0.0), (p.rejected_text, 3.0))]
    aggregation = _aggregation("weighted_sum", [_likert("errors", polarity="lower_better")])

    def fit(aggregation):
        cfg = head_config(tiny_backbone, objective="gated", ensemble_size=2, epochs=10, lr=1e-2, aggregation=aggregation)
        return train_head(cfg, PAIRS, ratings)

    raw, oriented = fit(None), fit(aggregation)
    assert raw.metrics["train_accuracy"] < 0.2 and oriented.metrics["train_accuracy"] > 0.8
    assert oriented.config["aggregation"] == aggregation
    loaded = RewardModel.load(oriented.save(tmp_path / "oriented"))
    assert loaded.head.orientation is not None
    assert_same_scores(oriented.model, loaded)
    chosen, rejected = loaded.score_items([(CONV, RESPONSES[0]), (CONV, RESPONSES[1])]).reward
    assert chosen > rejected
