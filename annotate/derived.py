"""Pairwise labels derived from ratings by the pinned rubric's aggregation, and the
report comparing them with people's labels (DESIGN §3). The formulas are pure and
live with the rubric (``rubrics.derive``); storing their decisions as judgments
is a project write, so it lives here, above rubrics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.db import transaction

from rubrics import derive
from rubrics.models import RubricVersion

from . import counters
from .models import HUMAN_SOURCES, Comparison, Judgment, LabelSource, Rating, TaskKind
from .jobs import job_enqueue
from .services import system_account

def derivation_user(rule: str):
    """The system account that owns judgments derived by ``rule`` (one per rule)."""
    return system_account(f"preflab-derived-{rule.replace('_', '-')}")


@transaction.atomic
def derived_judgments_refresh(*, project, rule: str | None = None, version: RubricVersion | None = None) -> dict[str, int]:
    """Derive a pairwise judgment for every comparison whose two responses both have
    ratings, from the mean rating per criterion, by ``rule`` (default: the version's
    aggregation). Replaces this rule's earlier derived judgments in the project;
    never touches human, imported or model labels.

    Ratings count when they were made under any version of the same rubric: criteria
    are matched by key, and a value outside the current scale is ignored."""
    version = version or project.rubric_version
    if version is None:
        raise ValueError("the project has no rubric version pinned")
    rule = rule or version.aggregation
    if rule not in derive.RULES:
        raise ValueError(f"unknown aggregation {rule!r}; choose one of {', '.join(derive.RULES)}")
    rules = derive.rules_from_specs(c.as_spec() for c in version.criteria.all())
    if not rules:
        raise ValueError(f"{version} has no rated criteria (Likert, binary, severity, spans) to derive from")
    user = derivation_user(rule)

    per_response: dict[int, list] = {}
    ratings = Rating.objects.filter(
        response__prompt__project=project,
        source__in=HUMAN_SOURCES,
        rubric_version__rubric_id=version.rubric_id,
    ).values_list("response_id", "scores", "spans")
    for response_id, scores, spans in ratings.iterator(chunk_size=2000):
        per_response.setdefault(response_id, []).append((scores, spans))
    means = {rid: derive.mean_scores(rows, rules) for rid, rows in per_response.items()}

    _, gone = Judgment.objects.filter(comparison__project=project, annotator=user, source=LabelSource.DERIVED).delete()
    made = []
    counts = {"A": 0, "B": 0, "tie": 0}
    pairs = Comparison.objects.filter(project=project, response_a_id__in=means, response_b_id__in=means)
    for cid, ra, rb in pairs.values_list("id", "response_a_id", "response_b_id").iterator(chunk_size=2000):
        decision = derive.derive(rule, means[ra], means[rb], rules)
        counts[decision.choice] += 1
        made.append(Judgment(
            comparison_id=cid, annotator=user, rubric_version=version, choice=decision.choice,
            strength=0 if decision.choice == "tie" else None, source=LabelSource.DERIVED,
            derivation_rule=rule,
            metadata={"decided_by": decision.decided_by, "rubric_version": version.number,
                      "scores": [decision.score_a, decision.score_b] if decision.score_a is not None else None},
        ))
    Judgment.objects.bulk_create(made, batch_size=1000)
    # the rule's account's row, in this transaction: the project page's totals
    counters.annotator_tally(project_id=project.pk, annotator_id=user.pk, kind=TaskKind.PAIRWISE,
                             derived=len(made) - gone.get(Judgment._meta.label, 0))
    return {"derived": len(made), "responses_rated": len(means), **counts}


def derived_judgments_enqueue(*, project, rule: str) -> None:
    """Derive in a worker once the request's transaction commits (the web request
    never loops over every comparison)."""
    from . import tasks

    if project.rubric_version is None:
        raise ValueError("Pin a published rubric version on the project first.")
    if rule not in derive.RULES:
        raise ValueError(f"unknown aggregation {rule!r}; choose one of {', '.join(derive.RULES)}")
    job_enqueue(task=tasks.derive_judgments, args=(project.pk, rule))


# --- the report ------------------------------------------------------------------------

DERIVED_CHOICES = ("A", "B", "tie")
HUMAN_CHOICES = ("A", "B", "tie", "both_bad")


@dataclass
class DerivationReport:
    rule: str
    derived: int = 0
    derived_counts: dict[str, int] = field(default_factory=dict)
    decided_by: list[tuple[str, int]] = field(default_factory=list)
    compared_pairs: int = 0
    human_labels: int = 0
    # confusion[derived][human] over every human label of a pair that has a derived one
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    agree: int = 0
    decisive: int = 0  # human labels where both sides said A or B
    decisive_agree: int = 0

    @property
    def agreement(self) -> float | None:
        return self.agree / self.human_labels if self.human_labels else None

    @property
    def decisive_agreement(self) -> float | None:
        return self.decisive_agree / self.decisive if self.decisive else None

    def rows(self) -> list[tuple[str, list[int], int]]:
        return [(d, [self.confusion[d][h] for h in HUMAN_CHOICES], sum(self.confusion[d].values()))
                for d in DERIVED_CHOICES]


def derivation_report(*, project, rule: str) -> DerivationReport:
    """Compare the judgments derived by ``rule`` with the human (and imported)
    pairwise labels on the same comparisons, one human label at a time."""
    report = DerivationReport(rule=rule, confusion={d: {h: 0 for h in HUMAN_CHOICES} for d in DERIVED_CHOICES})
    user = derivation_user(rule)
    derived = dict(
        Judgment.objects.filter(comparison__project=project, annotator=user, source=LabelSource.DERIVED)
        .values_list("comparison_id", "choice")
    )
    report.derived = len(derived)
    report.derived_counts = dict(Counter(derived.values()))
    # A score rule (weighted_sum, conjunctive) has no deciding criterion: its
    # decisions are counted under the rule, and only real ties as ties.
    report.decided_by = Counter(
        key or ("" if choice == "tie" else f"{rule} score")
        for key, choice in Judgment.objects.filter(
            comparison__project=project, annotator=user, source=LabelSource.DERIVED
        ).values_list("metadata__decided_by", "choice")
    ).most_common()
    human = Judgment.objects.filter(
        comparison_id__in=list(derived), source__in=HUMAN_SOURCES
    ).values_list("comparison_id", "choice")
    pairs = set()
    for cid, choice in human.iterator(chunk_size=5000):
        d = derived[cid]
        pairs.add(cid)
        report.human_labels += 1
        report.confusion[d][choice] += 1
        report.agree += d == choice
        if d in ("A", "B") and choice in ("A", "B"):
            report.decisive += 1
            report.decisive_agree += d == choice
    report.compared_pairs = len(pairs)
    return report
