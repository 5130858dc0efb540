"""The task queue: leases, exact overlap and gold (DESIGN §2, §9); submitting and
skipping a leased task is ``annotate.submit``.

One service, used by the web pages and the REST API alike.

A *task* is a unit of one kind: a Comparison (pairwise), a Response (rating) or a
Prompt (ranking). Each unit in the queue has a slot row (``QueueSlot``,
``RatingSlot``, ``RankingSlot``: narrow tables keyed by the unit's id, so leases
update them HOT; kept in step with the units by ``annotate.slots``) whose
``open_slots`` is ``overlap − submitted − live leases``. Taking a lease decrements
it with a conditional UPDATE (``… WHERE open_slots > 0``) inside the transaction
that inserts the assignment, so the slot row arbitrates every race: on PostgreSQL
candidates are read with ``SELECT … FOR UPDATE SKIP LOCKED`` so concurrent
annotators never queue behind each other, and overlap can never overshoot. Giving
a slot back (skip, expiry) locks the row and recounts instead of incrementing, so
the counter always returns to the truth.

One annotator's leases are serialised by a lock on their ``Membership`` row,
which also carries ``served_count`` (their live tasks, what the cap counts), so a
burst of requests from one person never holds two leases of a kind or passes the
cap; different annotators never wait on each other's rows. Overdue leases are
expired by a beat sweep, and by a lease that finds nothing else to hand out.

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

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Subquery
from django.db.models.functions import Greatest
from django.utils import timezone

from . import counters
from .compiled import CompiledQuery, first_of
from .models import (
    AnnotatorCount,
    Assignment,
    Comparison,
    Judgment,
    Membership,
    Project,
    QueueSlot,
    Ranking,
    RankingSlot,
    Rating,
    RatingSlot,
    Response,
    TaskKind,
)
from .slots import QUEUE_KINDS, UNITS, Unit, queue_slots_rebuild, slots_recount

LEASE_RETRIES = 50


class TaskError(Exception):
    """A submit that cannot be stored; ``errors`` maps a field to its message."""

    def __init__(self, message: str, errors: dict[str, str] | None = None, *, code: str = "invalid"):
        super().__init__(message)
        self.errors = errors or {}
        self.code = code


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
        labelled = Judgment.objects.filter(comparison=OuterRef("pk"), annotator=annotator)
        if gold:  # few, and outside the slot accounting: in the order they were made
            qs = Comparison.objects.filter(project=project, is_gold=True).order_by("id")
        else:  # QueueSlot rows (pk = the comparison's id), on queueslot_open_idx
            qs = QueueSlot.objects.filter(project=project, is_open=True).order_by("-priority", "pk")
        return qs.filter(~Exists(seen), ~Exists(labelled))
    # slot rows (pk = the unit's id), on their kind's open index
    if kind == TaskKind.RATING:
        labelled = Rating.objects.filter(response=OuterRef("pk"), annotator=annotator)
        return (
            RatingSlot.objects.filter(project=project, is_open=True)
            .filter(~Exists(seen), ~Exists(labelled))
            .order_by("prompt_id", "pk")
        )
    labelled = Ranking.objects.filter(prompt=OuterRef("pk"), annotator=annotator)
    many = Response.objects.filter(prompt=OuterRef("pk")).values("prompt").annotate(n=Count("id")).values("n")
    return (
        RankingSlot.objects.filter(project=project, is_open=True)
        .annotate(n_responses=Subquery(many))
        .filter(n_responses__gte=2)
        .filter(~Exists(seen), ~Exists(labelled))
        .order_by("pk")
    )


def annotator_progress(*, project: Project, annotator) -> dict[str, Any]:
    """Done today, done in total and remaining for one annotator, per kind and
    overall, from the maintained tallies (constant in the pool and the history).

    "Remaining" per kind is what is left for them and still wanted: the tasks they
    have not labelled, skipped or leased, but no more than the labels the pool
    still lacks (overlap × tasks − labels − leases out), and within their cap."""
    tallies = counters.project_tallies(project=project)
    mine = {r["kind"]: r for r in tallies["rows"] if r["annotator__username"] == annotator.get_username()}
    live = counters.live_leases(project=project)
    my_live = counters.live_leases(project=project, annotator=annotator)
    by_kind = {k: r["labels"] for k, r in mine.items() if r["labels"]}
    remaining = {}
    for kind in project.task_kinds:
        if kind not in UNITS:
            continue
        units = tallies["units"].get(kind, 0)
        t = tallies["kinds"].get(kind) or {"labels": 0, "imported": 0}
        m = mine.get(kind) or {"labels": 0, "imported": 0, "skipped": 0}
        for_me = units - m["labels"] - m["imported"] - m["skipped"] - my_live.get(kind, 0)
        lacking = units * project.overlap - t["labels"] - t["imported"] - live.get(kind, 0)
        remaining[kind] = max(0, min(for_me, lacking))
    total = sum(by_kind.values())
    left = sum(remaining.values())
    cap = project.max_tasks_per_annotator
    if cap is not None:
        served = Membership.objects.filter(project=project, user=annotator).values_list("served_count", flat=True)
        left = max(0, min(left, cap - (served.first() or 0)))
    today_n = sum(r["today"] for r in mine.values())
    return {"today": today_n, "total": total, "remaining": left, "by_kind": by_kind, "remaining_by_kind": remaining}


def gold_scores(*, project: Project) -> list[dict[str, Any]]:
    """Per annotator: gold tasks answered and how many matched the expected answer,
    from the maintained tallies (annotate.counters; constant in the labels)."""
    rows = (
        AnnotatorCount.objects.filter(project=project, kind=TaskKind.PAIRWISE, gold_answered__gt=0)
        .values("annotator_id", "annotator__username", answered=F("gold_answered"), correct=F("gold_correct"))
        .order_by("annotator__username")
    )
    return [
        {**r, "accuracy": (r["correct"] / r["answered"]) if r["answered"] else None} for r in rows
    ]


# --- leases -------------------------------------------------------------------------


def assignments_expire(*, project: Project | None = None, now=None, limit: int = 1000) -> int:
    """Turn overdue leases into EXPIRED and give their slots back; returns how many."""
    now = now or timezone.now()
    qs = Assignment.objects.filter(state=Assignment.State.ACTIVE, expires_at__lt=now)
    if project is not None:
        qs = qs.filter(project=project)
    expired = 0
    for pk in qs.values_list("pk", flat=True)[:limit]:
        with transaction.atomic():
            # conditional: a submit that won the race keeps its assignment
            if not Assignment.objects.filter(pk=pk, state=Assignment.State.ACTIVE, expires_at__lt=now).update(
                state=Assignment.State.EXPIRED
            ):
                continue
            _after_expiry(Assignment.objects.select_related("comparison", "project").get(pk=pk))
            expired += 1
    return expired


def assignments_end(*, project: Project, annotator) -> int:
    """End ``annotator``'s live leases in ``project`` now (they left the project)
    and give the slots back (and the served count and tallies follow, as for an
    expiry); submitted work is untouched. Returns how many ended."""
    ended = 0
    for pk in Assignment.objects.filter(project=project, annotator=annotator, state=Assignment.State.ACTIVE
                                        ).values_list("pk", flat=True):
        with transaction.atomic():
            if not Assignment.objects.filter(pk=pk, state=Assignment.State.ACTIVE).update(
                    state=Assignment.State.EXPIRED):
                continue  # submitted meanwhile: that label stands
            _after_expiry(Assignment.objects.select_related("comparison", "project").get(pk=pk))
            ended += 1
    return ended


def _after_expiry(assignment: Assignment) -> None:
    """An ACTIVE lease just became EXPIRED: its slot, the member's served count and
    the tally follow."""
    _release_slot(assignment)
    served_change(project_id=assignment.project_id, user_id=assignment.annotator_id, by=-1)
    if not _is_gold(assignment):
        counters.annotator_tally(project_id=assignment.project_id, annotator_id=assignment.annotator_id,
                                 kind=assignment.kind, expired=1)


def served_change(*, project_id: int, user_id: int, by: int) -> None:
    """Move a member's count of live tasks (the cap's figure) by ``by``, never below 0."""
    Membership.objects.filter(project_id=project_id, user_id=user_id).update(
        served_count=Greatest(F("served_count") + by, 0))


def _release_slot(assignment: Assignment) -> None:
    if _is_gold(assignment):
        return
    slots_recount(project=assignment.project, kind=assignment.kind, unit_id=_unit_id(assignment))


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


def _member_lock(*, project_id: int, user_id: int):
    return first_of(Membership.objects.select_for_update(of=("self",)).filter(project=project_id, user=user_id)
                    .only("pk", "paused_at", "paused_reason", "served_count"))


# compiled once per connection (annotate.compiled): every lease takes this lock
_MEMBER_LOCK = CompiledQuery(_member_lock, project_id=int, user_id=int)


def assignment_lease(*, project: Project, annotator, kind: str = TaskKind.PAIRWISE) -> Assignment | None:
    """The annotator's next task of ``kind``: their unfinished lease if they have one
    (work is never lost by reloading), else a new lease; None when nothing is left
    for them (all labelled, or their cap reached).

    Everything is decided under a lock on the annotator's membership row, so one
    annotator's concurrent requests (tabs, retries, scripts) run one after the
    other: the pause, the unfinished lease and the cap (``served_count``, kept
    under the same lock) are read where they cannot change. On PostgreSQL a new
    lease is two statements whatever the pool or the annotator's history: the
    lock, and one statement that picks, claims a slot, counts it and inserts the
    assignment unless an unfinished one exists (then a third fetches that)."""
    if kind not in QUEUE_KINDS or kind not in project.task_kinds:
        raise TaskError(f"this project has no {kind} tasks", {"kind": "not enabled in this project"}, code="kind")
    # PostgreSQL leases in one statement, except where ε-exploration needs the
    # candidates around the handed-out one to log its probability (_take_orm)
    one_statement = connection.vendor == "postgresql" and not (
        kind == TaskKind.PAIRWISE and project.exploration_rate > 0)
    for attempt in range(LEASE_RETRIES):
        try:
            with transaction.atomic():
                member = _MEMBER_LOCK.first(project_id=project.pk, user_id=annotator.pk)
                if member is not None and member.paused_at is not None:
                    raise TaskError("you are paused in this project",
                                    {"reason": member.paused_reason or "a researcher paused you"}, code="paused")
                served = member.served_count if member is not None else _served(project, annotator)
                cap = project.max_tasks_per_annotator
                room = cap is None or served < cap
                # PostgreSQL checks for an unfinished lease inside the lease statement
                current = None if one_statement else _unfinished(project, annotator, kind)
                if current is None and room:
                    lease = _lease(project, annotator, kind, served, member, one_statement)
                    if lease is not None:
                        return lease
                    if one_statement:
                        current = _unfinished(project, annotator, kind)
                if current is not None:
                    if current.expires_at > timezone.now():
                        return current
                    # overdue and not yet swept: expire it (it neither blocks the cap
                    # nor counts as a second lease) and decide again
                    Assignment.objects.filter(pk=current.pk).update(state=Assignment.State.EXPIRED)
                    current.project = project
                    _after_expiry(current)
                    continue
                if not room:
                    return None
        except IntegrityError:
            # only a staff user without a membership row has no lock to queue on: the
            # same user leased in another tab at the same moment; use that lease
            return assignment_active(project=project, annotator=annotator, kind=kind)
        # Nothing picked: overdue leases may hold the slots, or SKIP LOCKED passed
        # over rows others are leasing right now. "None left" is only true when no
        # candidate exists even counting those.
        if assignments_expire(project=project, limit=100):
            continue
        if not _candidates(project, kind, annotator).exists():
            return None
        time.sleep(min(0.002 * (attempt + 1), 0.05))
    return None


def _unfinished(project: Project, annotator, kind: str) -> Assignment | None:
    return (Assignment.objects.filter(project=project, annotator=annotator, kind=kind, state=Assignment.State.ACTIVE)
            .select_related("comparison", "response", "prompt").order_by("leased_at").first())


def _served(project: Project, annotator) -> int:
    """A staff user leasing without a membership row: counted, off the hot path."""
    return Assignment.objects.filter(project=project, annotator=annotator, state__in=Assignment.LIVE_STATES).count()


def _lease(project: Project, annotator, kind: str, served: int, member: Membership | None,
           one_statement: bool) -> Assignment | None:
    order = [False]
    if kind == TaskKind.PAIRWISE and project.gold_rate > 0:
        order = [True, False] if _wants_gold(project, annotator, served) else [False]
    for gold in order:
        # one_statement: nothing is explored, so _selection never counts the candidates
        qs = None if one_statement else _candidates(project, kind, annotator, gold=gold)
        strategy, draw, window = _selection(project, kind, gold, qs)
        row = {"project_id": project.pk, "kind": kind, "annotator_id": annotator.pk,
               "rubric_version_id": project.rubric_version_id, "strategy": strategy}
        if one_statement:
            # only where nothing is explored: a greedy lease hands out what it reaches
            row["selection_probability"] = 1.0 if draw is not None else None
            lease = _take_pg(window, gold, row, project, member)
        else:
            lease = _take_orm(qs, window, draw, gold, row, project, member)
        if lease is not None:
            return lease
    return None


_UNIT_COLUMNS = {  # what the assignment copies from its unit
    TaskKind.PAIRWISE: ("prompt_id", "response_a_id", "response_b_id"),
    TaskKind.RATING: ("prompt_id",),
    TaskKind.RANKING: (),
}


_PICKS: dict[tuple[str, bool, int], CompiledQuery] = {}


def _pick(kind: str, gold: bool, start: int) -> CompiledQuery:
    """The first free candidate's id, locked (FOR UPDATE SKIP LOCKED): the ORM's
    query from ``_candidates``, compiled once per connection and shape."""
    key = (kind, gold, start)
    if key not in _PICKS:
        def build(*, project_id: int, annotator_id: int):
            qs = _candidates(Project(pk=project_id), kind, annotator_id, gold=gold)
            return qs.values("pk")[start:start + 1].select_for_update(skip_locked=True, of=("self",))
        _PICKS[key] = CompiledQuery(build, project_id=int, annotator_id=int)
    return _PICKS[key]


def _take_pg(window: slice, gold: bool, row: dict, project: Project, member) -> Assignment | None:
    """One statement: pick the first free candidate (FOR UPDATE SKIP LOCKED), take a
    slot unless it is gold (the ``> 0`` guard arbitrates against anyone who
    committed after our snapshot), add one to the member's served count and insert
    the assignment, returning it. No row comes back when the slot was gone."""
    kind = row["kind"]
    unit = UNITS[kind]
    table = unit.model._meta.db_table
    pick_sql, pick_params = _pick(kind, gold, window.start).sql(project_id=project.pk, annotator_id=row["annotator_id"])
    cols = ", ".join(["u.id AS unit_id", *(f"u.{c}" for c in _UNIT_COLUMNS[kind])])
    if gold:
        taken = f"SELECT {cols} FROM {table} u JOIN picked ON u.id = picked.id"
    else:  # the slot row and its unit share the picked id; the unit's columns come from the unit's
        state, key = unit.state._meta.db_table, unit.state._meta.pk.column
        taken = (f"UPDATE {state} s SET open_slots = s.open_slots - 1 FROM picked, {table} u "
                 f"WHERE s.{key} = picked.id AND u.id = picked.id AND s.open_slots > 0 RETURNING {cols}")
    served = ""
    served_params: list = []
    if member is not None:
        served = (", served AS (UPDATE annotate_membership SET served_count = served_count + 1 "
                  "WHERE id = %s AND EXISTS (SELECT 1 FROM taken))")
        served_params = [member.pk]
    now = timezone.now()
    values = {**row, "state": Assignment.State.ACTIVE, "leased_at": now,
              "expires_at": now + timedelta(seconds=project.lease_ttl_seconds), "skip_reason": ""}
    unit_values = {unit.fk + "_id": "taken.unit_id"}
    if kind == TaskKind.PAIRWISE:
        unit_values["prompt_id"] = "taken.prompt_id"
        left = random.choice(["taken.response_a_id", "taken.response_b_id"])
        unit_values["shown_left_id"] = left
    elif kind == TaskKind.RATING:
        unit_values["prompt_id"] = "taken.prompt_id"
    names = [*values, *unit_values]
    exprs = ["%s"] * len(values) + list(unit_values.values())
    fields = [f for f in Assignment._meta.concrete_fields]
    # no pick at all while this annotator holds an unfinished lease of the kind (an
    # uncorrelated test PostgreSQL evaluates once, before locking any row)
    guard = ("SELECT * FROM ({}) p WHERE NOT EXISTS (SELECT 1 FROM annotate_assignment a WHERE a.project_id = %s "
             "AND a.annotator_id = %s AND a.kind = %s AND a.state = 'active')")
    pick_sql = guard.format(pick_sql)
    pick_params = (*pick_params, row["project_id"], row["annotator_id"], kind)
    sql = (f"WITH picked(id) AS ({pick_sql}), taken AS ({taken}){served} "
           f"INSERT INTO annotate_assignment ({', '.join(names)}) SELECT {', '.join(exprs)} FROM taken "
           f"RETURNING {', '.join(f.column for f in fields)}")
    with connection.cursor() as cursor:
        cursor.execute(sql, [*pick_params, *served_params, *values.values()])
        got = cursor.fetchone()
    if got is None:
        return None
    lease = Assignment.from_db(connection.alias, [f.attname for f in fields], got)
    lease.project = project  # the caller's, so showing the task does not read it again
    return lease


def _take_orm(qs, window: slice, draw: "_Draw | None", gold: bool, row: dict, project: Project,
              member) -> Assignment | None:
    """The same steps as separate statements: for databases without data-modifying
    CTEs (SQLite in development and tests, which serialises writers anyway), and for
    an exploring project, whose lease must know which candidates before the one it
    hands out were taken to log that one's true probability (``handout_probability``)."""
    unit = UNITS[row["kind"]]
    if not gold:
        qs = qs.select_related(unit.fk)
    rows = list(qs.select_for_update(skip_locked=True, of=("self",))[window])
    start = draw.offset - window.start if draw is not None else 0
    for i in range(start, len(rows)):
        obj = rows[i]
        if not gold and not unit.state.objects.filter(pk=obj.pk, open_slots__gt=0).update(
            open_slots=F("open_slots") - 1
        ):
            continue  # taken by someone who committed after our snapshot
        if not gold:
            obj = getattr(obj, unit.fk)  # a slot row: hand out its unit
        now = timezone.now()
        fields: dict[str, Any] = {unit.fk: obj}
        if row["kind"] == TaskKind.PAIRWISE:
            fields["prompt_id"] = obj.prompt_id
            fields["shown_left_id"] = random.choice([obj.response_a_id, obj.response_b_id])
        elif row["kind"] == TaskKind.RATING:
            fields["prompt_id"] = obj.prompt_id
        probability = None
        if draw is not None:
            taken = _taken_run(unit, rows, i, start)
            probability = handout_probability(epsilon=draw.epsilon, n=draw.n, position=window.start + i,
                                              taken_before=taken)
        if member is not None:
            Membership.objects.filter(pk=member.pk).update(served_count=F("served_count") + 1)
        return Assignment.objects.create(
            **row, selection_probability=probability, state=Assignment.State.ACTIVE, leased_at=now,
            expires_at=now + timedelta(seconds=project.lease_ttl_seconds), **fields,
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


def _taken_run(unit: Unit, rows: list, i: int, start: int) -> int:
    """How many candidates right before ``rows[i]`` (at most WINDOW − 1) could not
    be handed out. Those from ``start`` on were tried and found taken; earlier ones
    (an exploring lease's look-back) are checked without taking them."""
    run = i - start
    back = [rows[j].pk for j in range(start - 1, max(-1, i - WINDOW), -1)]  # nearest first
    if back:  # one query for the whole look-back, not one per candidate
        free = set(unit.state.objects.filter(pk__in=back, open_slots__gt=0).values_list("pk", flat=True))
        run += next((k for k, pk in enumerate(back) if pk in free), len(back))
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
