"""Read-only reports over derived labels."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from annotate.models import Judgment, LabelSource

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
    from .services import derivation_user

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
        comparison_id__in=list(derived), source__in=[LabelSource.HUMAN, LabelSource.IMPORTED]
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
