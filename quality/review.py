"""The review / adjudication queue (DESIGN §6): comparisons whose labels deserve a
researcher's look, and what the researcher decides about each.

``review_queue_refresh`` collects flagged comparisons into ``ReviewItem`` rows.
A comparison is flagged for any of these reasons, and its *evidence* (the queue's
order, highest first) is the sum of its reasons' parts, so a position in the
queue can always be explained from the figures on the page:

================  ==========================================  ==========================
reason            when                                        evidence part
================  ==========================================  ==========================
likely_flipped    the noise audit's ensemble sits against a   the audit's z = −μ/σ of the
                  person's label (z > ``noise.FLIP_Z``)         most contradicted label
ambiguous_pair    the audit finds |μ| and σ both small        ``AMBIGUOUS_WEIGHT``
low_agreement     ≥ 2 human labels, most common answer's      ``LOW_AGREEMENT_WEIGHT`` ×
                  share below ``LOW_AGREEMENT_SHARE``         (1 − share)
annotator_flag    a human label carries flags                 ``ANNOTATOR_FLAG_WEIGHT`` ×
                                                              labels with flags
================  ==========================================  ==========================

With the defaults a split 1–1 vote (share ½) weighs 1.5, three different answers
(share ⅓) 2.0, one flagged label 1.0: about as much as a label one to two ensemble
spreads against the model. Only human and imported labels count (derived and
adjudicated ones never do).

Refreshing is an upsert: open items get their figures updated, decided items
(adjudicated, ambiguous, more labels) keep their status whatever the flags say
now, and open items no longer flagged are removed.

A decision is the item's latest: ``review_item_adjudicate`` stores the final label
as a ``Judgment`` of source ``adjudicated``, owned by a system account (one per
comparison, replaced by a later adjudication); asking for more labels or marking
the item ambiguous withdraws an earlier adjudicated label.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from annotate import counters
from annotate.models import HUMAN_SOURCES, Comparison, Judgment, LabelSource, Project, QueueSlot, TaskKind
from annotate.presenters import annotator_pseudonym
from annotate.services import system_account

from .audit import pair_flags
from .models import ReviewItem

LOW_AGREEMENT_SHARE = 2 / 3  # flagged below this share of labels giving the most common answer
LOW_AGREEMENT_WEIGHT = 3.0  # evidence per unit of disagreement (1 − share)
AMBIGUOUS_WEIGHT = 1.0  # an ambiguous pair counts as one ensemble spread
ANNOTATOR_FLAG_WEIGHT = 1.0  # per label that an annotator flagged
MAX_EXTRA_LABELS = 20
NOTE_MAX = 2000
ADJUDICATOR_USERNAME = "preflab-adjudication"
REASON_HELP = {
    "likely_flipped": "the reward-model ensemble contradicts a label",
    "ambiguous_pair": "the ensemble finds the two responses about equal",
    "low_agreement": "annotators disagree",
    "annotator_flag": "an annotator flagged the task",
}
Status = ReviewItem.Status
DECIDED = (Status.ADJUDICATED, Status.MORE_LABELS, Status.AMBIGUOUS)


class ReviewError(ValueError):
    """A decision that cannot be stored; ``errors`` maps a form field to its message."""

    def __init__(self, message: str, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.errors = errors or {}


def adjudicator_user():
    """The inactive system account that owns adjudicated labels (like
    ``annotate.derived.derivation_user``): one account keeps the (comparison,
    annotator) uniqueness at one adjudication per comparison and keeps it apart
    from every person's labels. Who decided is in the label's metadata."""
    return system_account(ADJUDICATOR_USERNAME)


# --- collecting the queue ---------------------------------------------------------------


def _flag(flags: dict[int, dict], comparison_id: int) -> dict:
    return flags.setdefault(comparison_id, {"reasons": [], "evidence": 0.0, "mu": None, "sigma": None,
                                            "agreement": None})


def _low_agreement(project: Project, flags: dict[int, dict]) -> None:
    tallies: dict[int, list[int]] = defaultdict(list)
    rows = (Judgment.objects.filter(comparison__project=project, source__in=HUMAN_SOURCES)
            .values("comparison_id", "choice").annotate(n=Count("id")).values_list("comparison_id", "n"))
    for comparison_id, n in rows.iterator(chunk_size=5000):
        tallies[comparison_id].append(n)
    for comparison_id, counts in tallies.items():
        total = sum(counts)
        share = max(counts) / total
        if total >= 2 and share < LOW_AGREEMENT_SHARE:
            flag = _flag(flags, comparison_id)
            flag["reasons"].append("low_agreement")
            flag["agreement"] = share
            flag["evidence"] += LOW_AGREEMENT_WEIGHT * (1 - share)


def _annotator_flags(project: Project, flags: dict[int, dict]) -> None:
    rows = (Judgment.objects.filter(comparison__project=project, source__in=HUMAN_SOURCES).exclude(flags=[])
            .values("comparison_id").annotate(n=Count("id")).values_list("comparison_id", "n"))
    for comparison_id, n in rows:
        flag = _flag(flags, comparison_id)
        flag["reasons"].append("annotator_flag")
        flag["evidence"] += ANNOTATOR_FLAG_WEIGHT * n


def flagged_comparisons(*, project: Project) -> dict[int, dict]:
    """comparison id → {"reasons", "evidence", "mu", "sigma", "agreement"} for every
    comparison that deserves a look now (see the module docstring)."""
    flags: dict[int, dict] = {}
    for comparison_id, audit in pair_flags(project=project).items():
        flag = _flag(flags, comparison_id)
        flag.update(mu=audit["mu"], sigma=audit["sigma"])
        for reason in audit["reasons"]:
            flag["reasons"].append(reason)
            flag["evidence"] += audit["evidence"] if reason == "likely_flipped" else AMBIGUOUS_WEIGHT
    _low_agreement(project, flags)
    _annotator_flags(project, flags)
    return flags


@transaction.atomic
def review_queue_refresh(*, project: Project) -> dict[str, int]:
    """Upsert the project's review items from the flags now; returns counts:
    flagged, created, updated (open items), kept (decided items, status unchanged;
    their figures are updated when still flagged), removed (open, no longer
    flagged)."""
    Project.objects.select_for_update().get(pk=project.pk)  # one refresh at a time per project
    flags = flagged_comparisons(project=project)
    existing = {item.comparison_id: item for item in ReviewItem.objects.filter(project=project)}
    counts = {"flagged": len(flags), "created": 0, "updated": 0, "kept": 0, "removed": 0}
    changed, new, now = [], [], timezone.now()
    for comparison_id, flag in flags.items():
        fields = {"reasons": flag["reasons"], "evidence": round(flag["evidence"], 6), "mu": flag["mu"],
                  "sigma": flag["sigma"], "agreement": flag["agreement"]}
        item = existing.get(comparison_id)
        if item is None:
            new.append(ReviewItem(project=project, comparison_id=comparison_id, **fields))
            continue
        for name, value in {**fields, "updated_at": now}.items():
            setattr(item, name, value)
        changed.append(item)
        counts["updated" if item.status == Status.OPEN else "kept"] += 1
    ReviewItem.objects.bulk_create(new, batch_size=1000)
    ReviewItem.objects.bulk_update(changed, ["reasons", "evidence", "mu", "sigma", "agreement", "updated_at"],
                                   batch_size=1000)
    gone = [item.pk for cid, item in existing.items() if cid not in flags and item.status == Status.OPEN]
    ReviewItem.objects.filter(pk__in=gone).delete()
    counts["created"], counts["removed"] = len(new), len(gone)
    counts["kept"] += sum(1 for cid, item in existing.items() if cid not in flags and item.status != Status.OPEN)
    return counts


# --- reading ------------------------------------------------------------------------------


def status_counts(*, project: Project) -> dict[str, int]:
    """Items per status (every status present, zero or not), for the queue's filter."""
    found = dict(ReviewItem.objects.filter(project=project).values("status").annotate(n=Count("id"))
                 .values_list("status", "n"))
    return {status: found.get(status, 0) for status in Status.values}


def open_count(*, project: Project) -> int:
    return ReviewItem.objects.filter(project=project, status=Status.OPEN).count()


def item_labels(*, item: ReviewItem) -> list[dict[str, Any]]:
    """Every label of the item's comparison, oldest first, as the item page shows
    it: pseudonymous annotator (an adjudication names its researcher), choice and
    strength in canonical order, which response was shown left, flags, source."""
    comparison = item.comparison
    salt = item.project.annotator_salt
    side = {comparison.response_a_id: "A", comparison.response_b_id: "B"}
    out = []
    for j in Judgment.objects.filter(comparison=comparison).order_by("created_at", "id"):
        adjudicated = j.source == LabelSource.ADJUDICATED
        out.append({
            "id": j.pk, "annotator": (f"adjudicated by {j.metadata.get('decided_by', '?')}" if adjudicated
                                      else annotator_pseudonym(salt=salt, user_id=j.annotator_id)),
            "choice": j.choice, "strength": j.strength, "rationale": j.rationale,
            "time_on_task_s": None if j.time_on_task_ms is None else j.time_on_task_ms / 1000,
            "shown_left": side.get(j.shown_left_id), "flags": j.flags, "source": j.source,
            "criteria": j.criteria, "adjudicated": adjudicated,
        })
    return out


# --- decisions ----------------------------------------------------------------------------


def _clean_note(note: str) -> str:
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise ReviewError("the note is too long", {"note": f"at most {NOTE_MAX} characters"})
    return note


def _clean_answer(choice: str, strength) -> tuple[str, int | None]:
    """The choice and its strength in canonical order, checked as the Judgment check
    constraint demands: A takes −3…−1, B 1…3, tie 0, both bad none."""
    if choice not in Comparison.Choice.values:
        raise ReviewError("choose an answer", {"choice": "choose A, B, tie or both bad"})
    if strength in (None, ""):
        return choice, None
    try:
        strength = int(strength)
    except (TypeError, ValueError):
        raise ReviewError("the strength is not a number", {"strength": "a whole number from −3 to 3"}) from None
    allowed = {"A": range(-3, 0), "B": range(1, 4), "tie": range(0, 1), "both_bad": range(0)}[choice]
    if strength not in allowed:
        wanted = {"A": "−3 … −1 (A better)", "B": "1 … 3 (B better)", "tie": "0", "both_bad": "none"}[choice]
        raise ReviewError("the strength does not match the answer",
                          {"strength": f"{choice} takes a strength of {wanted}"})
    return choice, strength


def _locked(item: ReviewItem) -> ReviewItem:
    return ReviewItem.objects.select_for_update().select_related("project", "comparison").get(pk=item.pk)


def _decide(item: ReviewItem, user, status: str, note: str, now=None) -> ReviewItem:
    item.status, item.decided_by, item.decided_at, item.note = status, user, now or timezone.now(), note
    item.save(update_fields=["status", "decided_by", "decided_at", "note", "updated_at"])
    return item


def _withdraw_adjudication(item: ReviewItem) -> None:
    labels = Judgment.objects.filter(comparison_id=item.comparison_id, source=LabelSource.ADJUDICATED)
    owners = Counter(labels.values_list("annotator_id", flat=True))
    labels.delete()
    for annotator_id, n in owners.items():  # out of the project page's totals, in this transaction
        counters.annotator_tally(project_id=item.project_id, annotator_id=annotator_id, kind=TaskKind.PAIRWISE,
                                 adjudicated=-n)


@transaction.atomic
def review_item_adjudicate(*, item: ReviewItem, user, choice: str, strength=None, note: str = "") -> Judgment:
    """Store the final label of the item's comparison (choice and strength in
    canonical order) as an ``adjudicated`` Judgment, replacing an earlier one, and
    mark the item adjudicated by ``user``."""
    choice, strength = _clean_answer(choice, strength)
    note = _clean_note(note)
    item = _locked(item)
    now = timezone.now()
    adjudicator = adjudicator_user()
    judgment, created = Judgment.objects.update_or_create(
        comparison_id=item.comparison_id, annotator=adjudicator,
        defaults={
            "choice": choice, "strength": strength, "source": LabelSource.ADJUDICATED, "rationale": note,
            "rubric_version_id": item.project.rubric_version_id, "criteria": {}, "flags": [], "shown_left": None,
            "time_on_task_ms": None,
            "metadata": {"decided_by": user.get_username(), "decided_by_id": user.pk, "decided_at": now.isoformat(),
                         "review_item": item.pk},
        },
    )
    if created:  # a later decision replaces the label: still one in the project page's totals
        counters.annotator_tally(project_id=item.project_id, annotator_id=adjudicator.pk, kind=TaskKind.PAIRWISE,
                                 adjudicated=1)
    _decide(item, user, Status.ADJUDICATED, note, now)
    return judgment


@transaction.atomic
def review_item_request_labels(*, item: ReviewItem, user, extra: int = 1, note: str = "") -> ReviewItem:
    """Want ``extra`` more labels on the comparison than the project's overlap
    (``Comparison.extra_labels``, which every recount of its slots adds), so the
    queue hands it to ``extra`` more annotators who have not labelled it; and mark
    the item."""
    try:
        extra = int(extra)
    except (TypeError, ValueError):
        extra = 0
    if not 1 <= extra <= MAX_EXTRA_LABELS:
        raise ReviewError("ask for more labels", {"extra": f"between 1 and {MAX_EXTRA_LABELS}"})
    note = _clean_note(note)
    item = _locked(item)
    if item.comparison.is_gold:
        raise ReviewError("gold comparisons go to every annotator already",
                          {"extra": "a gold comparison is shown to every annotator already"})
    Comparison.objects.filter(pk=item.comparison_id).update(extra_labels=F("extra_labels") + extra)
    QueueSlot.objects.filter(pk=item.comparison_id).update(open_slots=F("open_slots") + extra)
    _withdraw_adjudication(item)
    return _decide(item, user, Status.MORE_LABELS, note)


@transaction.atomic
def review_item_mark_ambiguous(*, item: ReviewItem, user, note: str = "") -> ReviewItem:
    """The pair has no right answer: mark the item (an earlier adjudication is withdrawn)."""
    note = _clean_note(note)
    item = _locked(item)
    _withdraw_adjudication(item)
    return _decide(item, user, Status.AMBIGUOUS, note)
