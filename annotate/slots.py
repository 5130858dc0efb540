"""Which units are in the queue and how many labels each still takes: the slot
rows of ``annotate.models_queue`` (one per unit in the queue, keyed by its id),
kept in step with the units.

Two writes, and every path that changes a unit's place in the queue goes through
one of them:

- ``queue_slots_open``: new units (generation, imports, the admin's add) enter the
  queue with ``overlap`` open slots; nobody can have leased them yet, so nothing
  is read, and an import writes the rows with its own bulk writer (COPY).
- ``queue_slots_rebuild``: units that changed (a comparison marked or unmarked
  gold, the overlap, units written past the services) get or lose their row and
  their count recomputed from the leases; for the whole project or a few units.

Deleting a unit deletes its row (the slot's foreign key cascades), and with it
any lease on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, Greatest

from . import counters
from .models import Assignment, Comparison, Project, Prompt, QueueSlot, RankingSlot, RatingSlot, Response, TaskKind

QUEUE_KINDS = (TaskKind.PAIRWISE, TaskKind.RATING, TaskKind.RANKING)
BATCH = 2000


@dataclass(frozen=True)
class Unit:
    """How one task kind maps onto its unit table and its slot table."""

    model: type
    fk: str  # the Assignment field pointing at the unit, and the slot's key field
    state: type  # the slot table (its key is the unit's id)
    project: str  # the unit's path to its project
    out: Q | None = None  # units that exist but are not in the queue (gold comparisons)
    slots: str = "open_slots"  # the count's field: one name for every kind now, kept for the submit path


UNITS = {
    TaskKind.PAIRWISE: Unit(Comparison, "comparison", QueueSlot, "project", Q(is_gold=True)),
    TaskKind.RATING: Unit(Response, "response", RatingSlot, "prompt__project"),
    TaskKind.RANKING: Unit(Prompt, "prompt", RankingSlot, "project"),
}


# A slot row's columns, in the order ``_rows`` gives them (the generated is_open is never written).
FIELDS = {
    TaskKind.PAIRWISE: ["comparison_id", "project_id", "priority", "open_slots"],
    TaskKind.RATING: ["response_id", "project_id", "prompt_id", "open_slots"],
    TaskKind.RANKING: ["prompt_id", "project_id", "open_slots"],
}


def _rows(kind: str, project_id: int, units: Iterable[tuple[int, int]], open_slots: int) -> list[tuple]:
    """Plain tuples, not model instances: an import writes a million of them."""
    if kind == TaskKind.PAIRWISE:
        return [(unit_id, project_id, 0.0, open_slots) for unit_id, _ in units]
    if kind == TaskKind.RATING:
        return [(unit_id, project_id, prompt_id, open_slots) for unit_id, prompt_id in units]
    return [(unit_id, project_id, open_slots) for unit_id, _ in units]


def _bulk_create(model: type, fields: list[str], rows: list[tuple]) -> None:
    model.objects.bulk_create([model(**dict(zip(fields, row))) for row in rows], batch_size=BATCH)


def queue_slots_open(*, project: Project, kind: str, units: Iterable[tuple[int, int]],
                     append: Callable[[type, list[str], list[tuple]], None] = _bulk_create) -> None:
    """Put units just created into the queue: one slot row each, ``overlap`` open.
    ``units`` are (unit id, its prompt's id) pairs; gold comparisons are left out
    by the caller (none is created gold except by hand). ``append(model, fields,
    rows)`` writes the rows (an import passes its bulk writer's)."""
    rows = _rows(kind, project.pk, units, project.overlap)
    if rows:
        append(UNITS[kind].state, FIELDS[kind], rows)


def queue_slots_rebuild(*, project: Project, kinds: Iterable[str] = QUEUE_KINDS,
                        unit_ids: Iterable[int] | None = None) -> dict[str, int]:
    """Make the queue agree with the units of ``kinds`` (all of the project's, or
    only ``unit_ids``): a slot row for each unit in the queue and none for the
    others (gold), each holding overlap (+ extra labels asked for a comparison) −
    live leases. Rows are locked first, so no lease runs meanwhile; a count is
    written only where it changed (each write leaves a dead row version). The
    project's unit counts follow when units entered or left the queue. Returns
    how many rows were added, removed and recounted."""
    ids = None if unit_ids is None else list(unit_ids)
    done = {"added": 0, "removed": 0, "recounted": 0}
    for kind in kinds:
        unit = UNITS[kind]
        slots = unit.state.objects.filter(project=project)
        units = unit.model.objects.filter(**{unit.project: project})
        if ids is not None:
            slots, units = slots.filter(pk__in=ids), units.filter(pk__in=ids)
        with transaction.atomic():
            list(slots.select_for_update(of=("self",)).values_list("pk", flat=True))
            if unit.out is not None:
                out = unit.model.objects.filter(unit.out)
                done["removed"] += slots.filter(pk__in=out.values("pk")).delete()[0]
                units = units.exclude(unit.out)
            missing = units.filter(~Exists(unit.state.objects.filter(pk=OuterRef("pk"))))
            prompt = "id" if kind == TaskKind.RANKING else "prompt_id"
            new = _rows(kind, project.pk, missing.values_list("pk", prompt), 0)
            _bulk_create(unit.state, FIELDS[kind], new)  # counted below, with the others
            done["added"] += len(new)
            done["recounted"] += _recount_all(project, kind, slots)
    if done["added"] or done["removed"]:
        counters.units_recount(project=project)
    return done


def _recount_all(project: Project, kind: str, slots) -> int:
    unit = UNITS[kind]
    live = (
        Assignment.objects.filter(**{unit.fk: OuterRef("pk")}, kind=kind, state__in=Assignment.LIVE_STATES)
        .values(unit.fk)
        .annotate(n=Count("id"))
        .values("n")
    )
    wanted: Any = project.overlap
    if kind == TaskKind.PAIRWISE:
        wanted += Subquery(Comparison.objects.filter(pk=OuterRef("pk")).values("extra_labels"))
    count = Greatest(wanted - Coalesce(Subquery(live), 0), 0)
    return slots.exclude(open_slots=count).update(open_slots=count)


def slots_recount(*, project: Project, kind: str, unit_id: int) -> None:
    """One unit's count after a lease on it ended (skip, expiry): locked and set
    from the truth rather than incremented, so it always returns to the truth.
    Written only when it changed. A unit outside the queue (gold) has no row."""
    unit = UNITS[kind]
    locked = unit.state.objects.select_for_update(of=("self",)).filter(pk=unit_id)
    if kind == TaskKind.PAIRWISE:
        locked = locked.annotate(extra=F("comparison__extra_labels"))
    obj = locked.first()
    if obj is None:
        return
    live = Assignment.objects.filter(**{unit.fk: unit_id}, kind=kind, state__in=Assignment.LIVE_STATES).count()
    open_slots = max(0, project.overlap + getattr(obj, "extra", 0) - live)
    if obj.open_slots != open_slots:
        unit.state.objects.filter(pk=unit_id).update(open_slots=open_slots)
