"""Nested prompt cross-validation of the head recipe (benchmarks/_nested_cv.py), with a
recording stand-in for training: what each fit saw is checked on the prompt ids."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from models_svc.ml.data import PairExample

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks import _nested_cv  # noqa: E402
from benchmarks._nested_cv import Outcome, Recipe  # noqa: E402

GRID = _nested_cv.GRIDS["coarse"]
FIXED = {"default": Recipe(4, True, 1.0), "before session 7": Recipe(1, False, 0.01)}


def _pairs(n_prompts: int = 23) -> list[PairExample]:
    # Uneven pairs per prompt, so a pair-count split and a prompt split differ.
    return [
        PairExample(f"p{p}", [{"role": "user", "content": f"q{p}"}], f"good {p} {k}", f"bad {p} {k}", tie=k == 3)
        for p in range(n_prompts)
        for k in range(1 + p % 4)
    ]


class Recorder:
    """Stands in for training: records each call, scores a recipe by a fixed table."""

    def __init__(self, scores: dict[str, float]):
        self.scores = scores
        self.calls: list[tuple[Recipe, set[str], set[str], tuple]] = []

    def __call__(self, recipe, train, held, tag):
        self.calls.append((recipe, {p.prompt_id for p in train}, {p.prompt_id for p in held}, tag))
        fold = tag[1]
        return Outcome(self.scores[recipe.name] + 0.01 * fold, 0.1 + 0.01 * fold, sum(not p.tie for p in held))


def _run(pairs, fit, k=4, inner=3, seed=0):
    return _nested_cv.nested_cv(pairs, k=k, inner=inner, grid=GRID, fixed=FIXED, seed=seed, fit=fit)


def test_the_inner_choice_never_sees_an_outer_test_prompt():
    pairs = _pairs()
    fit = Recorder({r.name: 0.6 for r in GRID})
    result = _run(pairs, fit)
    everything = {p.prompt_id for p in pairs}
    outer = [c for c in fit.calls if c[3][0] == "outer"]
    tested = [held for _, _, held, tag in outer if tag[2] == "chosen"]
    assert len(tested) == 4 and set().union(*tested) == everything and sum(map(len, tested)) == len(everything)
    for f, test_prompts in enumerate(tested):
        outer_train = everything - test_prompts
        inner = [c for c in fit.calls if c[3][:2] == ("inner", f)]
        assert len(inner) == len(GRID) * 3
        for _, train, held, _ in inner:
            assert not (train | held) & test_prompts  # the outer fold took no part in the choice
            assert train | held == outer_train and not train & held
        for recipe in GRID:  # each recipe's inner held-out sides cover the outer training side once
            helds = [held for r, _, held, _ in inner if r == recipe]
            assert set().union(*helds) == outer_train and sum(map(len, helds)) == len(outer_train)
        for _, train, held, tag in outer:
            if tag[1] == f:
                assert (train, held) == (outer_train, test_prompts)
    assert [fo["test_prompts"] for fo in result["folds"]] == [len(t) for t in tested]


def test_the_recipe_with_the_best_inner_accuracy_is_chosen_and_scored_on_the_outer_fold():
    scores = {r.name: 0.55 for r in GRID} | {"L1 z l2=1": 0.7}
    fit = Recorder(scores)
    result = _run(_pairs(), fit)
    assert result["chosen_counts"] == {"L1 z l2=1": 4}
    for f, fo in enumerate(result["folds"]):
        assert fo["chosen"] == {"recipe": "L1 z l2=1", "accuracy": pytest.approx(0.7 + 0.01 * f), "ece": 0.1 + 0.01 * f}
        assert fo["inner_accuracy"]["L1 z l2=1"] == pytest.approx(0.7 + 0.01 * f)
        assert fo["default"]["accuracy"] == pytest.approx(0.55 + 0.01 * f)
    # the default recipe is in the grid but not chosen: it is trained once more on each outer side
    assert sum(1 for c in fit.calls if c[3][0] == "outer") == 4 * 3


def test_summary_is_mean_and_sample_std_over_outer_folds():
    fit = Recorder({r.name: 0.6 for r in GRID} | {"L4 z l2=1": 0.65})
    result = _run(_pairs(), fit, k=5)
    accuracies = [0.65 + 0.01 * f for f in range(5)]
    summary = result["summary"]
    assert summary["chosen"]["accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    assert summary["chosen"]["accuracy"]["std"] == pytest.approx(np.std(accuracies, ddof=1))
    assert summary["default"]["accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    assert summary["before session 7"]["accuracy"]["mean"] == pytest.approx(0.62)
    assert summary["chosen"]["ece"]["mean"] == pytest.approx(0.12)
    # the chosen recipe is the default here: one outer fit serves both
    assert sum(1 for c in fit.calls if c[3][0] == "outer") == 5 * 2


def test_pooled_accuracy_weights_folds_by_scored_pairs_and_skips_empty_ones():
    outcomes = [Outcome(1.0, 0.0, 3), Outcome(0.0, 0.0, 1), Outcome(float("nan"), float("nan"), 0)]
    assert _nested_cv.pooled_accuracy(outcomes) == pytest.approx(0.75)


def test_too_few_prompts_for_the_folds_is_refused():
    with pytest.raises(ValueError, match="at least 4 distinct prompts"):
        _run(_pairs(3), Recorder({r.name: 0.5 for r in GRID}))
