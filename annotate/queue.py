"""The task queue: leases, exact overlap and gold (DESIGN §2, §9); submitting and
skipping a leased task is ``annotate.submit``.

One service, used by the web pages and the REST API alike.

A *task* is a unit of one kind: a Comparison (pairwise), a Response (rating) or a
Prompt (ranking). Each unit carries a slot counter (``open_slots``,
``rating_slots``, ``ranking_slots``) equal to ``overlap − submitted − live
leases``. Taking a lease decrements it with a conditional UPDATE (``… WHERE
slots > 0``) inside the transaction that inserts the assignment, so the unit's row
arbitrates every race: on PostgreSQL candidates are read with ``SELECT … FOR UPDATE
SKIP LOCKED`` so concurrent annotators never queue behind each other, and overlap
can never overshoot. Giving a slot back (skip, expiry) locks the unit and recounts
instead of incrementing, so the counter always returns to the truth.

Gold comparisons sit outside the slot accounting: every annotator sees each gold
task once, mixed in at the project's gold rate, and nothing on the page or in the
API tells them apart. Answers are scored afterwards (``gold_scores``).

"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import (
    Assignment,
    Comparison,
    Judgment,
    Membership,
    Project,
    Prompt,
    Ranking,
    Rating,
    Response,
    TaskKind,
)

QUEUE_KINDS = (TaskKind.PAIRWISE, TaskKind.RATING, TaskKind.RANKING)
LEASE_RETRIES = 50


class TaskError(Exception):
    """A submit that cannot be stored; ``errors`` maps a field to its message."""

    def __init__(self, message: str, errors: dict[str, str] | None = None, *, code: str = "invalid"):
        super().__init__(message)
        self.errors = errors or {}
        self.code = code


@dataclass(frozen=True)
class _Unit:
    """How one task kind maps onto its table and counter."""

    model: type
    slots: str
    fk: str  # the Assignment field pointing at the unit


UNITS = {
    TaskKind.PAIRWISE: _Unit(Comparison, "open_slots", "comparison"),
    TaskKind.RATING: _Unit(Response, "rating_slots", "response"),
    TaskKind.RANKING: _Unit(Prompt, "ranking_slots", "prompt"),
}


def _unit_id(assignment: Assignment) -> int:
    return getattr(assignment, f"{UNITS[assignment.kind].fk}_id")


def _is_gold(assignment: Assignment) -> bool:
    return assignment.kind == TaskKind.PAIRWISE and assignment.comparison.is_gold


# --- reads ------------------------------------------------------------------------


def _candidates(project: Project, kind: str, annotator, *, gold: bool = False):
    unit = UNITS[kind]
    seen = Assignment.objects.filter(
        **{unit.fk: OuterRef("pk")}, annotator=annotator, kind=kind, state__in=[
            Assignment.State.ACTIVE, Assignment.State.SUBMITTED, Assignment.State.SKIPPED,
        ]
    )
    if kind == TaskKind.PAIRWISE:
        qs = Comparison.objects.filter(project=project, is_gold=gold)
        if not gold:
            qs = qs.filter(open_slots__gt=0)
        labelled = Judgment.objects.filter(comparison=OuterRef("pk"), annotator=annotator)
        return qs.filter(~Exists(seen), ~Exists(labelled)).order_by("-priority", "id")
    if kind == TaskKind.RATING:
        labelled = Rating.objects.filter(response=OuterRef("pk"), annotator=annotator)
        return (
            Response.objects.filter(prompt__project=project, rating_slots__gt=0)
            .filter(~Exists(seen), ~Exists(labelled))
            .order_by("prompt_id", "id")
        )
    labelled = Ranking.objects.filter(prompt=OuterRef("pk"), annotator=annotator)
    many = Response.objects.filter(prompt=OuterRef("pk")).values("prompt").annotate(n=Count("id")).values("n")
    return (
        Prompt.objects.filter(project=project, ranking_slots__gt=0)
        .annotate(n_responses=Subquery(many))
        .filter(n_responses__gte=2)
        .filter(~Exists(seen), ~Exists(labelled))
        .order_by("id")
    )


def annotator_progress(*, project: Project, annotator) -> dict[str, Any]:
    """Done today, done in total and remaining for one annotator, per kind and overall."""
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    mine = Assignment.objects.filter(project=project, annotator=annotator, state=Assignment.State.SUBMITTED)
    by_kind = dict(mine.values_list("kind").annotate(n=Count("id")).values_list("kind", "n"))
    today_n = mine.filter(finished_at__gte=today).count()
    remaining = {}
    for kind in project.task_kinds:
        if kind in UNITS:
            remaining[kind] = _candidates(project, kind, annotator).count()
    total = sum(by_kind.values())
    cap = project.max_tasks_per_annotator
    left = sum(remaining.values())
    if cap is not None:
        left = max(0, min(left, cap - total))
    return {"today": today_n, "total": total, "remaining": left, "by_kind": by_kind, "remaining_by_kind": remaining}


def gold_scores(*, project: Project) -> list[dict[str, Any]]:
    """Per annotator: gold tasks answered and how many matched the expected answer."""
    rows = (
        Judgment.objects.filter(comparison__project=project, comparison__is_gold=True, source="human")
        .values("annotator_id", "annotator__username")
        .annotate(
            answered=Count("id"),
            correct=Count("id", filter=Q(choice=F("comparison__gold_choice"))),
        )
        .order_by("annotator__username")
    )
    return [
        {**r, "accuracy": (r["correct"] / r["answered"]) if r["answered"] else None} for r in rows
    ]


# --- leases -------------------------------------------------------------------------


def assignments_expire(*, project: Project | None = None, now=None) -> int:
    """Turn overdue leases into EXPIRED and give their slots back; returns how many."""
    now = now or timezone.now()
    qs = Assignment.objects.filter(state=Assignment.State.ACTIVE, expires_at__lt=now)
    if project is not None:
        qs = qs.filter(project=project)
    expired = 0
    for pk in qs.values_list("pk", flat=True)[:1000]:
        with transaction.atomic():
            # conditional: a submit that won the race keeps its assignment
            if not Assignment.objects.filter(pk=pk, state=Assignment.State.ACTIVE, expires_at__lt=now).update(
                state=Assignment.State.EXPIRED
            ):
                continue
            assignment = Assignment.objects.select_related("comparison", "project").get(pk=pk)
            _release_slot(assignment)
            expired += 1
    return expired


def assignments_end(*, project: Project, annotator) -> int:
    """End ``annotator``'s live leases in ``project`` now (they left the project)
    and give the slots back; submitted work is untouched. Returns how many ended."""
    ended = 0
    for pk in Assignment.objects.filter(project=project, annotator=annotator, state=Assignment.State.ACTIVE
                                        ).values_list("pk", flat=True):
        with transaction.atomic():
            if not Assignment.objects.filter(pk=pk, state=Assignment.State.ACTIVE).update(
                    state=Assignment.State.EXPIRED):
                continue  # submitted meanwhile: that label stands
            _release_slot(Assignment.objects.select_related("comparison", "project").get(pk=pk))
            ended += 1
    return ended


def _recount_slots(project: Project, kind: str, unit_id: int) -> None:
    """Lock the unit and set its counter from the truth: overlap − live assignments."""
    unit = UNITS[kind]
    obj = unit.model.objects.select_for_update().filter(pk=unit_id).first()
    if obj is None:
        return
    live = Assignment.objects.filter(
        **{unit.fk: unit_id}, kind=kind, state__in=Assignment.LIVE_STATES
    ).count()
    wanted = project.overlap + getattr(obj, "extra_labels", 0)
    unit.model.objects.filter(pk=unit_id).update(**{unit.slots: max(0, wanted - live)})


def _release_slot(assignment: Assignment) -> None:
    if _is_gold(assignment):
        return
    _recount_slots(assignment.project, assignment.kind, _unit_id(assignment))


def queue_slots_rebuild(*, project: Project) -> None:
    """Recompute every counter of the project (after the overlap changed)."""
    for kind, unit in UNITS.items():
        with transaction.atomic():
            scope = {"project": project} if kind != TaskKind.RATING else {"prompt__project": project}
            list(unit.model.objects.select_for_update().filter(**scope).values_list("pk", flat=True))
            live = (
                Assignment.objects.filter(**{unit.fk: OuterRef("pk")}, kind=kind, state__in=Assignment.LIVE_STATES)
                .values(unit.fk)
                .annotate(n=Count("id"))
                .values("n")
            )
            wanted = project.overlap + F("extra_labels") if kind == TaskKind.PAIRWISE else project.overlap
            unit.model.objects.filter(**scope).update(**{unit.slots: wanted - Coalesce(Subquery(live), 0)})
            unit.model.objects.filter(**scope, **{f"{unit.slots}__lt": 0}).update(**{unit.slots: 0})


def project_set_overlap(*, project: Project, overlap: int) -> Project:
    if not 1 <= overlap <= 50:
        raise TaskError("overlap must be between 1 and 50", {"overlap": "between 1 and 50"})
    Project.objects.filter(pk=project.pk).update(overlap=overlap)
    project.refresh_from_db()
    queue_slots_rebuild(project=project)
    return project


def _wants_gold(project: Project, annotator, served: int) -> bool:
    """Reproducible per (annotator, position) so a test can count, random enough
    that the annotator cannot predict which tasks are gold."""
    if project.gold_rate <= 0:
        return False
    return random.Random(f"{project.pk}:{annotator.pk}:{served}").random() < project.gold_rate


def assignment_active(*, project: Project, annotator, kind: str) -> Assignment | None:
    return (
        Assignment.objects.filter(
            project=project, annotator=annotator, kind=kind, state=Assignment.State.ACTIVE, expires_at__gt=timezone.now()
        )
        .select_related("comparison", "response", "prompt")
        .order_by("leased_at")
        .first()
    )


def assignment_lease(*, project: Project, annotator, kind: str = TaskKind.PAIRWISE) -> Assignment | None:
    """The annotator's next task of ``kind``: their unfinished lease if they have one
    (work is never lost by reloading), else a new lease; None when nothing is left
    for them (all labelled, or their cap reached)."""
    if kind not in QUEUE_KINDS or kind not in project.task_kinds:
        raise TaskError(f"this project has no {kind} tasks", {"kind": "not enabled in this project"}, code="kind")
    paused = Membership.objects.filter(project=project, user=annotator, paused_at__isnull=False).values_list(
        "paused_reason", flat=True).first()
    if paused is not None:
        raise TaskError("you are paused in this project", {"reason": paused or "a researcher paused you"},
                        code="paused")
    current = assignment_active(project=project, annotator=annotator, kind=kind)
    if current is not None:
        return current
    assignments_expire(project=project)
    served = Assignment.objects.filter(
        project=project, annotator=annotator, state__in=[Assignment.State.SUBMITTED, Assignment.State.ACTIVE]
    ).count()
    if project.max_tasks_per_annotator is not None and served >= project.max_tasks_per_annotator:
        return None
    for attempt in range(LEASE_RETRIES):
        try:
            with transaction.atomic():
                lease = _lease(project, annotator, kind, served)
        except IntegrityError:
            # the same annotator leased in another tab at the same moment: use that lease
            return assignment_active(project=project, annotator=annotator, kind=kind)
        if lease is not None:
            return lease
        # SKIP LOCKED passes over rows other annotators are leasing right now; "none
        # left" is only true when no candidate exists even counting those.
        if not _candidates(project, kind, annotator).exists():
            return None
        time.sleep(min(0.002 * (attempt + 1), 0.05))
    return None


def _lease(project: Project, annotator, kind: str, served: int) -> Assignment | None:
    unit = UNITS[kind]
    order = [False]
    if kind == TaskKind.PAIRWISE and project.gold_rate > 0:
        order = [True, False] if _wants_gold(project, annotator, served) else [False]
    for gold in order:
        qs = _candidates(project, kind, annotator, gold=gold)
        strategy, draw, window = _selection(project, kind, gold, qs)
        qs = qs.select_for_update(skip_locked=True, of=("self",))
        rows = list(qs[window])
        start = draw.offset - window.start if draw is not None else 0
        for i in range(start, len(rows)):
            obj = rows[i]
            if not gold and not unit.model.objects.filter(pk=obj.pk, **{f"{unit.slots}__gt": 0}).update(
                **{unit.slots: F(unit.slots) - 1}
            ):
                continue  # taken by someone who committed after our snapshot
            now = timezone.now()
            fields: dict[str, Any] = {unit.fk: obj}
            if kind == TaskKind.PAIRWISE:
                fields["prompt_id"] = obj.prompt_id
                fields["shown_left_id"] = random.choice([obj.response_a_id, obj.response_b_id])
            elif kind == TaskKind.RATING:
                fields["prompt_id"] = obj.prompt_id
            probability = None
            if draw is not None:
                taken = _taken_run(unit, rows, i, start)
                probability = handout_probability(epsilon=draw.epsilon, n=draw.n, position=window.start + i,
                                                  taken_before=taken)
            return Assignment.objects.create(
                project=project,
                kind=kind,
                annotator=annotator,
                rubric_version_id=project.rubric_version_id,
                state=Assignment.State.ACTIVE,
                leased_at=now,
                expires_at=now + timedelta(seconds=project.lease_ttl_seconds),
                strategy=strategy,
                selection_probability=probability,
                **fields,
            )
    return None


@dataclass(frozen=True)
class _Draw:
    """How a non-gold pairwise lease chose where to start in the ordered candidates:
    ``offset`` 0 for the greedy branch, the uniform draw's offset when exploring."""

    epsilon: float
    n: int
    offset: int


WINDOW = 8  # candidates one lease tries, in order, before giving up


def _selection(project: Project, kind: str, gold: bool, qs) -> tuple[str, _Draw | None, slice]:
    """How this lease picks among the candidates: by priority (the strategy in
    force), or, with probability ε, a uniform draw (exploration). Returns the
    strategy to record, the draw (None where no probability is logged) and which
    slice of the ordered candidates to fetch: an exploring lease also fetches the
    WINDOW − 1 candidates before its offset, to learn whether a lease starting
    there would have reached the same task. Costs one COUNT only when ε > 0."""
    if kind != TaskKind.PAIRWISE or gold:
        return ("gold" if gold else project.selection_strategy), None, slice(0, WINDOW)
    epsilon = project.exploration_rate
    if epsilon <= 0:
        return project.selection_strategy, _Draw(0.0, 0, 0), slice(0, WINDOW)
    n = qs.count()
    if n == 0:
        return project.selection_strategy, None, slice(0, WINDOW)
    if random.random() < epsilon:
        offset = random.randrange(n)
        return "explore", _Draw(epsilon, n, offset), slice(max(0, offset - WINDOW + 1), offset + WINDOW)
    return project.selection_strategy, _Draw(epsilon, n, 0), slice(0, WINDOW)


def _taken_run(unit: _Unit, rows: list, i: int, start: int) -> int:
    """How many candidates right before ``rows[i]`` (at most WINDOW − 1) could not
    be handed out. Those from ``start`` on were tried and found taken; earlier ones
    (an exploring lease's look-back) are checked without taking them."""
    run = i - start
    for j in range(start - 1, max(-1, i - WINDOW), -1):
        if unit.model.objects.filter(pk=rows[j].pk, **{f"{unit.slots}__gt": 0}).exists():
            break
        run += 1
    return min(run, WINDOW - 1)


def handout_probability(*, epsilon: float, n: int, position: int, taken_before: int) -> float:
    """The probability that a lease hands out the candidate at ``position`` of the
    ``n`` ordered candidates, given that the ``taken_before`` candidates right before
    it could not be handed out.

    A lease hands out the first candidate it can take among WINDOW starting at 0
    (probability 1 − ε) or at a uniform offset (ε / n each). So this candidate is
    reached greedily when everything before it was taken (and it lies within the
    window), and by exploration from its own offset or any offset inside the taken
    run before it. Logged on the assignment, 1 / probability is a valid importance
    weight: summed over handed-out tasks it estimates the pool's size."""
    greedy = position < WINDOW and taken_before >= position
    explore = epsilon * (min(taken_before, WINDOW - 1) + 1) / n if epsilon > 0 else 0.0
    return (1 - epsilon) * greedy + explore


def assignment_for(*, annotator, assignment_id: int) -> Assignment | None:
    """The assignment if it belongs to this annotator, else None (callers answer 404)."""
    return (
        Assignment.objects.select_related("project", "comparison", "response", "prompt", "rubric_version")
        .filter(pk=assignment_id, annotator=annotator)
        .first()
    )
