"""The task queue: leases, exact overlap, gold, submit and skip (DESIGN §2, §9).

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

Submits are idempotent: the assignment row is locked, a second submit of the same
assignment (double click, retry) returns the label already stored, and the
(comparison|response|prompt, annotator) unique constraints back that up.
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

from rubrics.models import Criterion
from rubrics.schema import AnswerError, scale_of

from .models import (
    Assignment,
    Comparison,
    Judgment,
    Project,
    Prompt,
    Ranking,
    Rating,
    Response,
    TaskKind,
)

QUEUE_KINDS = (TaskKind.PAIRWISE, TaskKind.RATING, TaskKind.RANKING)
FLAGS = ("unsafe", "unanswerable", "broken")
MAX_RATIONALE = 20_000
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


def _recount_slots(project: Project, kind: str, unit_id: int) -> None:
    """Lock the unit and set its counter from the truth: overlap − live assignments."""
    unit = UNITS[kind]
    obj = unit.model.objects.select_for_update().filter(pk=unit_id).first()
    if obj is None:
        return
    live = Assignment.objects.filter(
        **{unit.fk: unit_id}, kind=kind, state__in=Assignment.LIVE_STATES
    ).count()
    unit.model.objects.filter(pk=unit_id).update(**{unit.slots: max(0, project.overlap - live)})


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
            unit.model.objects.filter(**scope).update(
                **{unit.slots: project.overlap - Coalesce(Subquery(live), 0)}
            )
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
        strategy, probability, window = _selection(project, kind, gold, qs)
        qs = qs.select_for_update(skip_locked=True, of=("self",))
        for obj in qs[window]:
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


def _selection(project: Project, kind: str, gold: bool, qs) -> tuple[str, float | None, slice]:
    """How this lease picks among the candidates: by priority (the strategy in
    force), or, with probability ε, a uniform draw (exploration). Returns the
    strategy to record, the probability that the handed-out task was the one
    chosen (for importance weights later), and which slice of the ordered
    candidates to try. Costs one COUNT only when ε > 0."""
    if kind != TaskKind.PAIRWISE or gold:
        return ("gold" if gold else project.selection_strategy), None, slice(0, 8)
    epsilon = _exploration_rate(project)
    if epsilon <= 0:
        return project.selection_strategy, 1.0, slice(0, 8)
    n = qs.count()
    if n == 0:
        return project.selection_strategy, None, slice(0, 8)
    if random.random() < epsilon:
        offset = random.randrange(n)
        return "explore", epsilon / n, slice(offset, offset + 8)
    return project.selection_strategy, (1 - epsilon) + epsilon / n, slice(0, 8)


def _exploration_rate(project: Project) -> float:
    from models_svc.models import RewardSettings

    rate = RewardSettings.objects.filter(project=project).values_list("exploration_rate", flat=True).first()
    return float(rate or 0.0)


def assignment_for(*, annotator, assignment_id: int) -> Assignment | None:
    """The assignment if it belongs to this annotator, else None (callers answer 404)."""
    return (
        Assignment.objects.select_related("project", "comparison", "response", "prompt", "rubric_version")
        .filter(pk=assignment_id, annotator=annotator)
        .first()
    )


# --- submit and skip ------------------------------------------------------------------


def _lock_for_submit(assignment: Assignment, user) -> Assignment:
    locked = (
        Assignment.objects.select_for_update(of=("self",))
        .select_related("project", "comparison", "response", "prompt")
        .get(pk=assignment.pk)
    )
    if locked.annotator_id != user.pk:
        raise TaskError("this task is not yours", code="forbidden")
    return locked


def _existing_label(assignment: Assignment):
    model = {TaskKind.PAIRWISE: Judgment, TaskKind.RATING: Rating, TaskKind.RANKING: Ranking}[assignment.kind]
    return model.objects.filter(assignment=assignment).first()


def _claim_slot_for_late_submit(assignment: Assignment) -> None:
    """An expired lease gave its slot back; take one again or refuse clearly."""
    if not _is_gold(assignment):
        unit = UNITS[assignment.kind]
        if not unit.model.objects.filter(pk=_unit_id(assignment), **{f"{unit.slots}__gt": 0}).update(
            **{unit.slots: F(unit.slots) - 1}
        ):
            raise TaskError(
                "Your lease on this task expired and other annotators have since completed it, so this answer "
                "was not stored. Nothing else was lost; the next task is ready.",
                code="expired",
            )
    assignment.state = Assignment.State.ACTIVE  # about to become SUBMITTED


def _begin_submit(assignment: Assignment, user, kind: str):
    """Lock, check ownership, state and kind. Returns (assignment, the label already
    stored for it or None)."""
    a = _lock_for_submit(assignment, user)
    if a.state == Assignment.State.SUBMITTED:
        return a, _existing_label(a)
    if a.kind != kind:
        raise TaskError(f"not a {kind} task", code="kind")
    if a.state == Assignment.State.SKIPPED:
        raise TaskError("this task was skipped; it cannot be submitted", code="skipped")
    if a.state == Assignment.State.EXPIRED:
        _claim_slot_for_late_submit(a)
    return a, None


def _store(model, a: Assignment, user, *, time_on_task_ms, idempotency_key, **fields):
    """Insert the label and close the assignment. A unique-constraint hit is the
    same request replayed on another connection (return the stored label) or a
    real conflict."""
    try:
        with transaction.atomic():
            label = model.objects.create(
                annotator=user,
                rubric_version_id=a.rubric_version_id,
                assignment=a,
                time_on_task_ms=_clean_time(time_on_task_ms),
                idempotency_key=idempotency_key or None,
                **fields,
            )
    except IntegrityError:
        return _replay_or_conflict(model, idempotency_key, a)
    _finish(a)
    return label


def _finish(a: Assignment) -> None:
    Assignment.objects.filter(pk=a.pk).update(state=Assignment.State.SUBMITTED, finished_at=timezone.now())


def _criteria(a: Assignment, scales: tuple[str, ...]) -> list[Criterion]:
    if a.rubric_version_id is None:
        return []
    return list(Criterion.objects.filter(version_id=a.rubric_version_id, scale__in=scales).order_by("position", "id"))


def _clean_rationale(rationale: str | None, required: bool, errors: dict[str, str]) -> str:
    text = (rationale or "").strip()
    if len(text) > MAX_RATIONALE:
        errors["rationale"] = f"at most {MAX_RATIONALE} characters"
    if required and not text:
        errors["rationale"] = "this rubric asks for a rationale"
    return text


def _clean_spans(a: Assignment, spans: Any, texts: dict[int, str], errors: dict[str, str]) -> list[dict[str, Any]]:
    """Spans are character offsets into a response's text, tagged with an error type
    of one of the rubric's span criteria."""
    if not spans:
        return []
    types = {
        e["key"] for c in _criteria(a, ("spans",)) for e in (c.config.get("error_types") or [])
    }
    if not isinstance(spans, list):
        errors["spans"] = "expected a list"
        return []
    clean = []
    for i, s in enumerate(spans):
        where = f"spans[{i}]"
        if not isinstance(s, dict):
            errors[where] = "expected an object"
            continue
        rid, start, end, tag = s.get("response"), s.get("start"), s.get("end"), s.get("type")
        if rid not in texts:
            errors[where] = "response is not part of this task"
        elif not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(texts[rid])):
            errors[where] = f"start/end must satisfy 0 ≤ start < end ≤ {len(texts[rid])}"
        elif tag not in types:
            errors[where] = f"unknown error type {tag!r}"
        else:
            clean.append({"response": rid, "start": start, "end": end, "type": tag, "text": texts[rid][start:end]})
    return clean


def judgment_submit(
    *,
    assignment: Assignment,
    user,
    preference: int | None,
    both_bad: bool = False,
    criteria: dict[str, str] | None = None,
    rationale: str = "",
    flags: list[str] | None = None,
    spans: list[dict[str, Any]] | None = None,
    time_on_task_ms: int | None = None,
    idempotency_key: str | None = None,
) -> Judgment:
    """Store a pairwise answer given in *shown* terms: ``preference`` −3 (left much
    better) … 0 (tie) … +3 (right much better); per-criterion answers ``A`` (left),
    ``B`` (right), ``tie`` or ``na``. Stored canonically (see annotate.models)."""
    with transaction.atomic():
        a, existing = _begin_submit(assignment, user, TaskKind.PAIRWISE)
        if existing is not None:
            return existing
        c = a.comparison
        swapped = a.shown_left_id != c.response_a_id  # answers come in shown terms
        errors: dict[str, str] = {}
        version = a.rubric_version
        ask_overall = version is None or version.ask_overall_preference
        if both_bad:
            choice, strength = Comparison.Choice.BOTH_BAD, None
        elif preference is None:
            if ask_overall:
                errors["preference"] = "choose which response is better (or tie, or both bad)"
            choice, strength = Comparison.Choice.TIE, 0
        elif not isinstance(preference, int) or not -3 <= preference <= 3:
            errors["preference"] = "must be a whole number from -3 to 3"
            choice, strength = Comparison.Choice.TIE, 0
        else:
            strength = -preference if swapped else preference
            choice = Comparison.Choice.A if strength < 0 else Comparison.Choice.B if strength > 0 else Comparison.Choice.TIE
        crit_rows = _criteria(a, ("pairwise",))
        given = criteria or {}
        clean_criteria: dict[str, str] = {}
        needs_rationale = False
        for crit in crit_rows:
            value = given.get(crit.key)
            if value in (None, ""):
                errors[f"criteria.{crit.key}"] = f"answer {crit.name}"
                continue
            try:
                value = scale_of(crit.as_spec()).clean_answer(value)
            except AnswerError as exc:
                errors[f"criteria.{crit.key}"] = str(exc)
                continue
            clean_criteria[crit.key] = Comparison.Choice.flip(value) if swapped else value
            needs_rationale |= crit.requires_rationale
        stray = sorted(set(given) - {c.key for c in crit_rows})
        if stray:
            errors["criteria"] = f"not in this rubric version: {', '.join(stray)}"
        text = _clean_rationale(rationale, needs_rationale, errors)
        bad_flags = sorted(set(flags or []) - set(FLAGS))
        if bad_flags:
            errors["flags"] = f"unknown flags: {', '.join(bad_flags)}"
        texts = {c.response_a_id: c.response_a.text, c.response_b_id: c.response_b.text}
        clean_spans = _clean_spans(a, spans, texts, errors)
        if errors:
            raise TaskError("the answer is incomplete or invalid", errors)
        return _store(
            Judgment, a, user, time_on_task_ms=time_on_task_ms, idempotency_key=idempotency_key,
            comparison=c, choice=choice, strength=strength, criteria=clean_criteria, rationale=text,
            spans=clean_spans, flags=sorted(set(flags or [])), shown_left_id=a.shown_left_id, source="human",
        )


def _clean_time(ms: Any) -> int | None:
    if isinstance(ms, int) and 0 <= ms < 24 * 3600 * 1000:
        return ms
    return None


def _replay_or_conflict(model, key: str | None, a: Assignment):
    """The insert hit a unique constraint: the same request replayed on another
    connection returns the stored label; anything else is a real conflict."""
    if key:
        same = model.objects.filter(idempotency_key=key).first()
        if same is not None and same.assignment_id == a.pk:
            return same
        if same is not None:
            raise TaskError("this idempotency key was already used for another task", code="conflict")
    raise TaskError("you have already labelled this item", code="conflict")


def rating_submit(
    *,
    assignment: Assignment,
    user,
    scores: dict[str, Any],
    rationale: str = "",
    spans: list[dict[str, Any]] | None = None,
    time_on_task_ms: int | None = None,
    idempotency_key: str | None = None,
) -> Rating:
    """Scores per criterion: Likert integers in range, binary true/false, severity
    none/minor/moderate/severe, or None for N/A where the criterion allows it."""
    with transaction.atomic():
        a, existing = _begin_submit(assignment, user, TaskKind.RATING)
        if existing is not None:
            return existing
        errors: dict[str, str] = {}
        clean: dict[str, Any] = {}
        needs_rationale = False
        crit_rows = _criteria(a, ("likert", "binary", "severity"))
        scores = scores or {}
        for crit in crit_rows:
            field = f"scores.{crit.key}"
            if crit.key not in scores or scores[crit.key] in ("",):
                errors[field] = f"rate {crit.name}"
                continue
            try:
                clean[crit.key] = scale_of(crit.as_spec()).clean_answer(scores[crit.key])
            except AnswerError as exc:
                errors[field] = str(exc)
                continue
            needs_rationale |= crit.requires_rationale
        stray = sorted(set(scores) - {c.key for c in crit_rows})
        if stray:
            errors["scores"] = f"not in this rubric version: {', '.join(stray)}"
        text = _clean_rationale(rationale, needs_rationale, errors)
        clean_spans = _clean_spans(a, spans, {a.response_id: a.response.text}, errors)
        if errors:
            raise TaskError("the answer is incomplete or invalid", errors)
        return _store(
            Rating, a, user, time_on_task_ms=time_on_task_ms, idempotency_key=idempotency_key,
            response=a.response, scores=clean, rationale=text, spans=clean_spans,
        )


def ranking_submit(
    *,
    assignment: Assignment,
    user,
    groups: list[list[int]],
    rationale: str = "",
    time_on_task_ms: int | None = None,
    idempotency_key: str | None = None,
) -> Ranking:
    """``groups`` orders response ids best first; ids in one group are tied. All
    responses must be ranked unless the project asks only for the top k."""
    with transaction.atomic():
        a, existing = _begin_submit(assignment, user, TaskKind.RANKING)
        if existing is not None:
            return existing
        errors: dict[str, str] = {}
        ids = set(Response.objects.filter(prompt_id=a.prompt_id).values_list("id", flat=True))
        flat: list[int] = []
        if not isinstance(groups, list) or not all(isinstance(g, list) and g for g in groups):
            errors["groups"] = "expected a list of non-empty lists of response ids"
        else:
            flat = [r for g in groups for r in g]
            if not all(isinstance(r, int) for r in flat) or not set(flat) <= ids:
                errors["groups"] = "contains ids that are not responses of this prompt"
            elif len(flat) != len(set(flat)):
                errors["groups"] = "a response appears twice"
            else:
                k = a.project.ranking_top_k
                need = len(ids) if k is None else min(k, len(ids))
                if len(flat) < need:
                    errors["groups"] = f"rank at least {need} responses" if k else "rank every response"
        text = _clean_rationale(rationale, False, errors)
        if errors:
            raise TaskError("the answer is incomplete or invalid", errors)
        return _store(
            Ranking, a, user, time_on_task_ms=time_on_task_ms, idempotency_key=idempotency_key,
            prompt_id=a.prompt_id, groups=groups, rationale=text,
        )


def assignment_skip(*, assignment: Assignment, user, reason: str) -> Assignment:
    """Give the task back with a reason; the annotator is not offered it again."""
    reason = (reason or "").strip()
    if not reason:
        raise TaskError("say why you skip", {"reason": "required"})
    with transaction.atomic():
        a = _lock_for_submit(assignment, user)
        if a.state == Assignment.State.SKIPPED:
            return a
        if a.state == Assignment.State.SUBMITTED:
            raise TaskError("this task was already submitted", code="conflict")
        was_active = a.state == Assignment.State.ACTIVE
        Assignment.objects.filter(pk=a.pk).update(
            state=Assignment.State.SKIPPED, skip_reason=reason[:2000], finished_at=timezone.now()
        )
        if was_active:
            _release_slot(a)
        a.refresh_from_db()
        return a
