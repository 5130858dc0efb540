"""Pairwise labels derived from ratings by a rubric's aggregation rule (DESIGN §3).

Pure functions over per-response criterion scores; no database. The service
``annotate.derived.derived_judgments_refresh`` feeds them the mean rating of each
response and stores what they decide as judgments with ``source = derived``.

Every criterion score is first *oriented* so that higher is better:

* ``higher_better``: f = v
* ``lower_better``: f = −v
* ``target`` (e.g. verbosity "right length"): f = −|v − target|

Raw values are each scale's ``as_number`` (``rubrics.schema``: Likert levels as
numbers, binary yes = 1 / no = 0, severity none = 0 … severe = 3); spans count the
tagged errors of the criterion's types. Pairwise
criteria are answered per comparison, not per response, so ratings cannot feed
them; they are skipped here.

Rules, for responses i and j:

* ``hierarchical`` (HERON): hard rules first, in priority order: when exactly one
  response violates a hard rule, the other wins. Then principles by priority
  k = 1..K (ties broken by position): prefer i if f_k(i) > f_k(j) + m_k, prefer j
  if f_k(j) > f_k(i) + m_k, else go on to k + 1; all tied → tie. m_k is the
  criterion's margin in the scale's own units (HERON sets it to σ_k · std f_k; a
  researcher can enter that figure).
* ``weighted_sum``: S = Σ_k w_k n_k, where n_k is the oriented score rescaled to
  [0, 1] between the scale's worst and best level, so a binary and a 0–4 criterion
  with equal weights count equally; the larger S wins, equal S → tie.
* ``conjunctive``: S = Σ_k log σ(l_k − ref_k), with l_k the oriented score in level
  steps above the worst level and ref_k the criterion's threshold in the same units
  (default: the middle of the scale). One very poor criterion drags S down however
  good the others are, which a sum does not do.

A criterion missing on either side (not rated, or N/A) is left out of the
comparison for that pair.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from .schema import scale_of

RULES = ("hierarchical", "weighted_sum", "conjunctive")
RATED_SCALES = ("likert", "binary", "severity", "spans")
TIE_EPS = 1e-9


@dataclass(frozen=True)
class Rule:
    """One criterion as the derivation sees it."""

    key: str
    scale: str
    polarity: str = "higher_better"
    kind: str = "principle"
    weight: float = 1.0
    priority: int = 1
    position: int = 0
    margin: float = 0.0
    threshold: float | None = None
    lo: float = 0.0
    hi: float = 1.0
    target: float | None = None
    error_types: frozenset[str] = field(default_factory=frozenset)
    answers: Any = field(default=None, compare=False, repr=False)  # the criterion's scale object

    @classmethod
    def from_spec(cls, spec: dict[str, Any], position: int = 0) -> "Rule":
        answers = scale_of(spec)
        lo, hi = answers.number_range()  # spans: counts are unbounded; see `normalised`
        return cls(
            answers=answers,
            key=spec["key"],
            scale=spec["scale"],
            polarity=spec.get("polarity", "higher_better"),
            kind=spec.get("kind", "principle"),
            weight=float(spec.get("weight", 1.0)),
            priority=int(spec.get("priority", 1)),
            position=position,
            margin=float(spec.get("margin", 0.0)),
            threshold=spec.get("threshold"),
            lo=float(lo),
            hi=float(hi),
            target=spec.get("target"),
            error_types=frozenset(e["key"] for e in spec.get("error_types") or []),
        )

    # -- raw value → number -----------------------------------------------------
    def raw(self, value: Any) -> float | None:
        """The stored rating value as a number, or None when absent/N/A/invalid."""
        return self.answers.as_number(value)

    def orient(self, v: float) -> float:
        if self.polarity == "lower_better" or self.scale in ("severity", "spans"):
            return -v
        if self.polarity == "target":
            return -abs(v - float(self.target if self.target is not None else (self.lo + self.hi) / 2))
        return v

    def _worst_best(self) -> tuple[float, float]:
        if self.scale == "spans":
            return -1.0, 0.0  # one error is as bad as `normalised` lets it look
        ends = [self.orient(self.lo), self.orient(self.hi)]
        if self.polarity == "target" and self.target is not None:
            ends.append(self.orient(float(self.target)))
        return min(ends), max(ends)

    def normalised(self, v: float) -> float:
        """Oriented score rescaled to [0, 1] (worst → 0, best → 1)."""
        if self.scale == "spans":
            return 1.0 / (1.0 + v)
        worst, best = self._worst_best()
        return (self.orient(v) - worst) / (best - worst) if best > worst else 0.0

    def limit(self) -> float:
        """The oriented score below which a hard rule is violated: its threshold (raw
        units, or for a target criterion the allowed distance from the target); with
        no threshold only the worst level (worst half step)."""
        if self.threshold is not None:
            return -abs(float(self.threshold)) if self.polarity == "target" else self.orient(float(self.threshold))
        worst, _ = self._worst_best()
        return worst + 0.5

    def violates(self, v: float) -> bool:
        return self.orient(v) < self.limit()

    def reference(self) -> float:
        """ref_k for the conjunctive rule, in level steps above the worst level."""
        worst, best = self._worst_best()
        if self.threshold is not None and self.scale != "spans":
            return self.limit() - worst
        return (best - worst) / 2


@dataclass(frozen=True)
class Decision:
    choice: str  # "A", "B" or "tie", for (i, j) = (A, B)
    rule: str
    decided_by: str = ""  # the criterion key that decided, "" for a tie or a score rule
    score_a: float | None = None
    score_b: float | None = None


def rules_from_specs(specs: Iterable[dict[str, Any]]) -> list[Rule]:
    return [Rule.from_spec(s, i) for i, s in enumerate(specs) if s["scale"] in RATED_SCALES]


def _both(rule: Rule, a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float] | None:
    va, vb = a.get(rule.key), b.get(rule.key)
    if va is None or vb is None:
        return None
    return float(va), float(vb)


def hierarchical(a: dict[str, float | None], b: dict[str, float | None], rules: list[Rule]) -> Decision:
    """``a``/``b`` map criterion keys to (mean) raw scores; see the module docstring."""
    order = sorted(rules, key=lambda r: (r.priority, r.position))
    for rule in (r for r in order if r.kind == "hard_rule"):
        pair = _both(rule, a, b)
        if pair is None:
            continue
        bad_a, bad_b = rule.violates(pair[0]), rule.violates(pair[1])
        if bad_a != bad_b:
            return Decision("B" if bad_a else "A", "hierarchical", rule.key)
    for rule in (r for r in order if r.kind != "hard_rule"):
        pair = _both(rule, a, b)
        if pair is None:
            continue
        fa, fb = rule.orient(pair[0]), rule.orient(pair[1])
        if fa > fb + rule.margin + TIE_EPS:
            return Decision("A", "hierarchical", rule.key)
        if fb > fa + rule.margin + TIE_EPS:
            return Decision("B", "hierarchical", rule.key)
    return Decision("tie", "hierarchical")


def _decide(name: str, sa: float, sb: float) -> Decision:
    choice = "tie" if abs(sa - sb) <= TIE_EPS else ("A" if sa > sb else "B")
    return Decision(choice, name, "", round(sa, 6), round(sb, 6))


def weighted_sum(a: dict[str, float | None], b: dict[str, float | None], rules: list[Rule]) -> Decision:
    sa = sb = 0.0
    for rule in rules:
        pair = _both(rule, a, b)
        if pair is not None:
            sa += rule.weight * rule.normalised(pair[0])
            sb += rule.weight * rule.normalised(pair[1])
    return _decide("weighted_sum", sa, sb)


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def conjunctive(a: dict[str, float | None], b: dict[str, float | None], rules: list[Rule]) -> Decision:
    sa = sb = 0.0
    for rule in rules:
        pair = _both(rule, a, b)
        if pair is None:
            continue
        worst, _ = rule._worst_best()
        ref = rule.reference()
        la, lb = rule.orient(pair[0]) - worst, rule.orient(pair[1]) - worst
        sa += _log_sigmoid(la - ref)
        sb += _log_sigmoid(lb - ref)
    return _decide("conjunctive", sa, sb)


DERIVE = {"hierarchical": hierarchical, "weighted_sum": weighted_sum, "conjunctive": conjunctive}


def derive(rule_name: str, a: dict[str, float | None], b: dict[str, float | None], rules: list[Rule]) -> Decision:
    if rule_name not in DERIVE:
        raise ValueError(f"unknown aggregation {rule_name!r}; choose one of {', '.join(RULES)}")
    return DERIVE[rule_name](a, b, rules)


def reward_aggregation(rule_name: str, rules: list[Rule]) -> dict[str, Any]:
    """A rubric's aggregation as plain numbers, for a reward model that predicts
    each criterion's rating and must turn them into one overall reward the way
    this module compares rated responses (``models_svc.ml.heads.overall_reward``
    evaluates it; no Django there, so everything is precomputed here).

    Per criterion: the orientation (``sign`` · v, or −|v − target| for a target
    criterion), the oriented ``worst``/``best`` ends for rescaling to [0, 1], the
    scale's ``lo``/``hi`` (predictions are clipped to it), and per rule:

    * ``weighted_sum``: ``weight`` · normalised score, as :func:`weighted_sum`;
    * ``conjunctive``: log σ(oriented − worst − ``reference``), as :func:`conjunctive`;
    * ``hierarchical``: principles count in priority order, each ``weight`` chosen
      so that one level step on it outweighs every later principle's whole range
      (a scalar cannot follow margins: this is HERON with margins under one level);
      a hard rule that the prediction ``violates`` (below ``limit``, oriented) costs
      ``hard_penalty`` = 1, more than all principles together can give.

    Spans criteria are left out (no rating to predict)."""
    if rule_name not in DERIVE:
        raise ValueError(f"unknown aggregation {rule_name!r}; choose one of {', '.join(RULES)}")
    rated = [r for r in rules if r.scale != "spans"]
    order = sorted((r for r in rated if r.kind != "hard_rule"), key=lambda r: (r.priority, r.position))
    # From the last principle up: w_k = steps_k · (1 + Σ_{j>k} w_j), then all over (1 + Σ w) so they sum below 1.
    level_weight: dict[str, float] = {}
    later = 0.0
    for rule in reversed(order):
        worst, best = rule._worst_best()
        level_weight[rule.key] = max(best - worst, 1.0) * (1.0 + later)
        later += level_weight[rule.key]
    criteria = []
    for rule in rated:
        worst, best = rule._worst_best()
        target = rule.target if rule.target is not None else (rule.lo + rule.hi) / 2
        spec: dict[str, Any] = {
            "key": rule.key, "kind": rule.kind, "polarity": rule.polarity, "lo": rule.lo, "hi": rule.hi,
            "sign": -1.0 if rule.polarity == "lower_better" or rule.scale == "severity" else 1.0,
            "target": float(target) if rule.polarity == "target" else None,
            "worst": worst, "best": best, "weight": rule.weight,
        }
        if rule_name == "conjunctive":
            spec["reference"] = rule.reference()
        elif rule_name == "hierarchical":
            if rule.kind == "hard_rule":
                spec["weight"] = 0.0
                spec["limit"] = rule.limit()
            else:
                spec["weight"] = level_weight[rule.key] / (1.0 + later)
        criteria.append(spec)
    return {"rule": rule_name, "hard_penalty": 1.0, "criteria": criteria}


def mean_scores(ratings: Iterable[tuple[dict[str, Any], list[dict[str, Any]]]], rules: list[Rule]) -> dict[str, float | None]:
    """Mean raw score per criterion over several ratings of one response.

    ``ratings`` yields (scores, spans) of each rating; spans criteria count the
    rating's spans whose type belongs to the criterion."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for scores, spans in ratings:
        for rule in rules:
            if rule.scale == "spans":
                value: float | None = float(sum(1 for s in spans or [] if s.get("type") in rule.error_types))
            else:
                value = rule.raw((scores or {}).get(rule.key))
            if value is not None:
                sums[rule.key] = sums.get(rule.key, 0.0) + value
                counts[rule.key] = counts.get(rule.key, 0) + 1
    return {r.key: (sums[r.key] / counts[r.key] if counts.get(r.key) else None) for r in rules}
