"""Nested prompt cross-validation of the head recipe (issue #20, point 5), for
``rm_accuracy.py --cv K``.

The outer loop deals the file's prompts into K folds (``folds_by_prompt``). For each
outer fold, an inner K2-fold prompt CV *inside the outer training side* scores every
recipe of a named grid; the recipe with the best pooled inner accuracy (correct
non-tie pairs over all inner held-out pairs; the grid's first on a tie) is trained on
the whole outer training side and evaluated on the outer fold, which took no part in
the choice. The product default recipe and the recipe before session 7 are trained
and evaluated on the same outer folds with no choice at all, so the table also says
whether the default holds up on this file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models_svc.ml.config import STORED_BEFORE, TrainConfig
from models_svc.ml.data import PairExample, folds_by_prompt


@dataclass(frozen=True)
class Recipe:
    """The head hyper-parameters the nested CV chooses between. lr and epochs follow
    ``standardize`` as the config's defaults do (1e-3 and 60 z-scored, 1e-2 and 30 not)."""

    layers: int
    standardize: bool
    l2: float

    @property
    def name(self) -> str:
        return f"L{self.layers} {'z' if self.standardize else 'raw'} l2={self.l2:g}"

    def apply(self, config: TrainConfig) -> TrainConfig:
        return dataclasses.replace(config, layers=self.layers, standardize=self.standardize, l2=self.l2)


def _grid(l2_raw: Sequence[float], l2_z: Sequence[float]) -> list[Recipe]:
    return [
        Recipe(layers, standardize, l2)
        for layers in (1, 4)
        for standardize, penalties in ((False, l2_raw), (True, l2_z))
        for l2 in penalties
    ]


# coarse: the last layer or the mean of the last four, z-scored or not, each with its
# defaults. standard: coarse, and the default's ridge penalty a factor of 3 either
# side (sessions 5 and 7 moved it that far on HH without a clear gain). wide: every
# penalty on every recipe (12 recipes, three times standard's cost: for a quiet machine).
_COARSE = _grid((0.01,), (1.0,))
GRIDS: dict[str, list[Recipe]] = {
    "coarse": _COARSE,
    "standard": [*_COARSE, Recipe(4, True, 0.3), Recipe(4, True, 3.0)],
    "wide": _grid((0.003, 0.01, 0.03), (0.3, 1.0, 3.0)),
}


def fixed_recipes(config: TrainConfig) -> dict[str, Recipe]:
    """Recipes reported on every outer fold without any choice: the product default
    (what ``TrainConfig`` resolves to in head mode) and the recipe before session 7."""
    now = dataclasses.replace(config, mode="head", layers=None, standardize=None, l2=None).resolve()
    before = dataclasses.replace(config, mode="head", l2=None, **STORED_BEFORE).resolve()
    assert now.layers and before.layers and now.l2 is not None and before.l2 is not None
    return {
        "default": Recipe(now.layers, bool(now.standardize), now.l2),
        "before session 7": Recipe(before.layers, bool(before.standardize), before.l2),
    }


@dataclass(frozen=True)
class Outcome:
    """Held-out accuracy (ties excluded) and ECE of one fit, and how many non-tie pairs scored it."""

    accuracy: float
    ece: float
    scored: int


# fit(recipe, train pairs, held-out pairs, tag) → Outcome. tag is ("inner", outer fold,
# inner fold) or ("outer", outer fold, recipe role), so a caller can check what each fit saw.
Fit = Callable[[Recipe, list[PairExample], list[PairExample], tuple], Outcome]


def pooled_accuracy(outcomes: Sequence[Outcome]) -> float:
    """Correct pairs over scored pairs, across folds (a fold with no scored pair adds nothing)."""
    scored = sum(o.scored for o in outcomes if o.scored)
    correct = sum(o.accuracy * o.scored for o in outcomes if o.scored)
    return correct / scored if scored else float("nan")


def _spread(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (ddof 1) over outer folds, ignoring nan."""
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    return {
        "mean": float(v.mean()) if len(v) else float("nan"),
        "std": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
    }


def nested_cv(
    pairs: Sequence[PairExample],
    *,
    k: int,
    inner: int,
    grid: Sequence[Recipe],
    fixed: dict[str, Recipe],
    seed: int,
    fit: Fit,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Per outer fold: the recipe the inner CV chose, its outer accuracy and ECE, and
    each fixed recipe's; then mean ± std over outer folds. Inner folds are drawn from
    the outer training side only, with their own seed per outer fold."""
    if not grid:
        raise ValueError("the recipe grid is empty")
    folds = []
    for f, (outer_train, outer_test) in enumerate(folds_by_prompt(list(pairs), k, seed)):
        started = time.perf_counter()
        inner_folds = folds_by_prompt(outer_train, inner, [seed, f])
        inner_scores = {}
        for recipe in grid:
            outcomes = [fit(recipe, tr, te, ("inner", f, j)) for j, (tr, te) in enumerate(inner_folds)]
            inner_scores[recipe.name] = pooled_accuracy(outcomes)
            log(f"  fold {f}: inner {recipe.name:<18} {inner_scores[recipe.name]:.4f}")
        def rank(r: Recipe) -> tuple[float, int]:  # a recipe with no scored pair (nan) never wins
            score = inner_scores[r.name]
            return (-math.inf if math.isnan(score) else score, -grid.index(r))

        best = max(grid, key=rank)
        roles = {"chosen": best, **fixed}
        outer: dict[str, Outcome] = {}
        for role, recipe in roles.items():
            same = next((o for r, o in outer.items() if roles[r] == recipe), None)  # one fit per distinct recipe
            outer[role] = same or fit(recipe, outer_train, outer_test, ("outer", f, role))
        folds.append({
            "fold": f,
            "train_pairs": len(outer_train),
            "test_pairs": len(outer_test),
            "test_scored": outer["chosen"].scored,
            "train_prompts": len({p.prompt_id for p in outer_train}),
            "test_prompts": len({p.prompt_id for p in outer_test}),
            "inner_accuracy": inner_scores,
            **{role: {"recipe": roles[role].name, "accuracy": o.accuracy, "ece": o.ece} for role, o in outer.items()},
            "seconds": time.perf_counter() - started,
        })
        shown = ", ".join(f"{role} {o.accuracy:.4f} (ECE {o.ece:.4f})" for role, o in outer.items())
        log(f"fold {f}: chose {best.name}; outer accuracy: {shown}; {folds[-1]['seconds']:.0f} s")
    summary = {
        role: {
            "recipe": fixed[role].name if role in fixed else "chosen by inner CV",
            "accuracy": _spread([fo[role]["accuracy"] for fo in folds]),
            "ece": _spread([fo[role]["ece"] for fo in folds]),
        }
        for role in ("chosen", *fixed)
    }
    return {
        "k": k,
        "inner": inner,
        "grid": [r.name for r in grid],
        "selection": "best pooled inner accuracy over the inner folds (grid order breaks ties)",
        "folds": folds,
        "chosen_counts": dict(Counter(fo["chosen"]["recipe"] for fo in folds)),
        "summary": summary,
    }


def head_fit(base: TrainConfig, train_head: Callable[..., Any]) -> Fit:
    """The product's head training (``train_head``) under a recipe."""
    def fit(recipe: Recipe, train: list[PairExample], held: list[PairExample], tag: tuple) -> Outcome:
        metrics = train_head(recipe.apply(base), train, eval_pairs=held).metrics
        scored = sum(not p.tie for p in held)
        return Outcome(float(metrics.get("eval_accuracy", float("nan"))), float(metrics.get("ece", float("nan"))), scored)

    return fit


def table(result: dict[str, Any]) -> str:
    roles = list(result["summary"])
    head = ["fold", "train/test pairs", "chosen recipe", "inner acc."]
    head += [f"{r} acc." for r in roles] + [f"{r} ECE" for r in roles]
    rows = [head]
    for fo in result["folds"]:
        rows.append([
            str(fo["fold"]), f"{fo['train_pairs']}/{fo['test_pairs']}", fo["chosen"]["recipe"],
            f"{fo['inner_accuracy'][fo['chosen']['recipe']]:.4f}",
            *(f"{fo[r]['accuracy']:.4f}" for r in roles), *(f"{fo[r]['ece']:.4f}" for r in roles),
        ])
    s = result["summary"]
    rows.append(["mean ± std", "", "", "",
                 *(f"{s[r]['accuracy']['mean']:.4f} ± {s[r]['accuracy']['std']:.4f}" for r in roles),
                 *(f"{s[r]['ece']['mean']:.4f} ± {s[r]['ece']['std']:.4f}" for r in roles)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    fixed = ", ".join(f"{r} = {s[r]['recipe']}" for r in roles if r != "chosen")
    counts = ", ".join(f"{n}× {name}" for name, n in sorted(result["chosen_counts"].items(), key=lambda x: -x[1]))
    return "\n".join([*lines, f"fixed recipes: {fixed}", f"inner CV chose: {counts}"])


def machine_state() -> dict[str, Any]:
    """The command line and the machine's load, for the results file."""
    from benchmarks._machine import uptime

    return {"command": " ".join([Path(sys.executable).name, *sys.argv]), "uptime": uptime(),
            "load_average": list(os.getloadavg())}


def write(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
