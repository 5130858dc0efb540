"""Submitting and skipping a leased task, for the web pages and the REST API alike
(``task_submit`` is the one entry both call).

Submits are idempotent: the assignment row is locked, a second submit of the same
assignment (double click, retry) returns the label already stored, and the
(comparison|response|prompt, annotator) unique constraints back that up. Every
answer is checked against the rubric version the task was shown with; each
criterion's scale (``rubrics.schema``) says what an answer may be.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from rubrics.models import Criterion
from rubrics.presenters import version_criteria
from rubrics.schema import AnswerError, scale_of

from . import counters
from .compiled import CompiledInsert, CompiledQuery, first_of
from .models import Assignment, Comparison, Judgment, Ranking, Rating, Response, TaskKind
from .queue import UNITS, TaskError, _is_gold, _release_slot, _unit_id, served_change
from .services import annotator_gold_check

FLAGS = ("unsafe", "unanswerable", "broken")
MAX_RATIONALE = 20_000


def task_submit(*, assignment: Assignment, user, answer: dict[str, Any]):
    """Store ``answer`` for the assignment's kind; the form and the API both come
    here. ``answer`` holds the kind's fields (pairwise: preference, both_bad,
    criteria, flags, spans; rating: scores, spans; ranking: groups) and the common
    ones (rationale, time_on_task_ms, idempotency_key); others are ignored.

    Only ``assignment.pk`` is read before the row is locked (the kind comes from
    the locked row), so a caller holding just the id passes ``Assignment(pk=id)``
    and saves a query; another user's or a missing assignment is refused as
    ``forbidden``. ``label.assignment`` is the locked row (read again only when
    a replay on another connection returns the stored label)."""
    common = {"rationale": answer.get("rationale") or "", "time_on_task_ms": answer.get("time_on_task_ms"),
              "idempotency_key": answer.get("idempotency_key") or None}

    def body(a: Assignment):
        if a.kind == TaskKind.PAIRWISE:
            return _judgment(a, user, preference=answer.get("preference"), both_bad=bool(answer.get("both_bad")),
                             criteria=answer.get("criteria") or {}, flags=answer.get("flags") or [],
                             spans=answer.get("spans") or [], **common)
        if a.kind == TaskKind.RATING:
            return _rating(a, user, scores=answer.get("scores") or {}, spans=answer.get("spans") or [], **common)
        return _ranking(a, user, groups=answer.get("groups") or [], **common)
    return _submitting(assignment, user, None, common["idempotency_key"], body)


# --- the steps every submit takes ---------------------------------------------------


def _locking(*, pk: int):
    return first_of(
        Assignment.objects.select_for_update(of=("self",))
        # everything a submit reads, in the one locking query
        .select_related("project", "comparison__response_a", "comparison__response_b", "response", "prompt",
                        "rubric_version")
        .filter(pk=pk))


# compiled once per connection (annotate.compiled): every submit takes this lock
_LOCK = CompiledQuery(_locking, pk=int)


def _lock_for_submit(assignment: Assignment, user) -> Assignment:
    locked = _LOCK.first(pk=assignment.pk)
    if locked is None or locked.annotator_id != user.pk:
        raise TaskError("this task is not yours", code="forbidden")
    return locked


LABEL_MODELS = {TaskKind.PAIRWISE: Judgment, TaskKind.RATING: Rating, TaskKind.RANKING: Ranking}


def _existing_label(assignment: Assignment):
    label = LABEL_MODELS[assignment.kind].objects.filter(assignment=assignment).first()
    if label is not None:
        label.assignment = assignment
    return label


def _claim_slot_for_late_submit(assignment: Assignment) -> None:
    """An expired lease gave its slot back; take one again or refuse clearly."""
    if not _is_gold(assignment):
        unit = UNITS[assignment.kind]
        if not unit.state.objects.filter(pk=_unit_id(assignment), **{f"{unit.slots}__gt": 0}).update(
            **{unit.slots: F(unit.slots) - 1}
        ):
            raise TaskError(
                "Your lease on this task expired and other annotators have since completed it, so this answer "
                "was not stored. Nothing else was lost; the next task is ready.",
                code="expired",
            )
        # no longer an expired lease: it is about to count as a label instead
        counters.annotator_tally(project_id=assignment.project_id, annotator_id=assignment.annotator_id,
                                 kind=assignment.kind, expired=-1)
    served_change(project_id=assignment.project_id, user_id=assignment.annotator_id, by=1)
    assignment.state = Assignment.State.ACTIVE  # about to become SUBMITTED


def _begin_submit(assignment: Assignment, user, kind: str | None):
    """Lock, check ownership, state and kind (any kind when None). Returns
    (assignment, the label already stored for it or None)."""
    a = _lock_for_submit(assignment, user)
    if a.state == Assignment.State.SUBMITTED:
        return a, _existing_label(a)
    if kind is not None and a.kind != kind:
        raise TaskError(f"not a {kind} task", code="kind")
    if a.state == Assignment.State.SKIPPED:
        raise TaskError("this task was skipped; it cannot be submitted", code="skipped")
    if a.state == Assignment.State.EXPIRED:
        _claim_slot_for_late_submit(a)
    return a, None


def _submitting(assignment: Assignment, user, kind: str | None, idempotency_key: str | None, body):
    """Lock the assignment and run the kind's ``body(locked)`` in one transaction. A
    unique-constraint hit rolls all of it back (no savepoint on the way: one query
    fewer per submit) and is the same request replayed on another connection
    (return the stored label) or a real conflict."""
    locked = None
    try:
        with transaction.atomic():
            locked, existing = _begin_submit(assignment, user, kind)
            return existing if existing is not None else body(locked)
    except IntegrityError:
        return _replay_or_conflict(LABEL_MODELS[locked.kind], idempotency_key, locked)


# the label's INSERT, folded into the statement that closes the lease (PostgreSQL)
_INSERTS = {model: CompiledInsert(model) for model in (Judgment, Rating, Ranking)}


def _store(model, a: Assignment, user, *, time_on_task_ms, idempotency_key, **fields):
    """Insert the label, close the assignment and count the label in the
    annotator's tallies (annotate.counters); a gold answer counts apart from the
    labels progress counts (it is scored apart), in the page's totals only. On
    PostgreSQL the three are one statement."""
    ms = _clean_time(time_on_task_ms)
    label = model(
        annotator=user,
        rubric_version_id=a.rubric_version_id,
        assignment=a,
        time_on_task_ms=ms,
        idempotency_key=idempotency_key or None,
        **fields,
    )
    now = timezone.now()
    tally = {"project_id": a.project_id, "annotator_id": user.pk, "kind": a.kind}
    if _is_gold(a):  # a pairwise answer on a gold pair: scored, not progress
        tally.update(gold=1, gold_answered=1, gold_correct=int(fields["choice"] == a.comparison.gold_choice))
    else:
        tally.update(labels=1, time_ms=ms)
    insert = _INSERTS[model]
    if connection.vendor == "postgresql" and (sql := insert.sql(label)) is not None:
        with connection.cursor() as cursor:
            cursor.execute(*counters.submit_tally_sql(a.pk, now, label=sql, **tally))
            insert.saved(label, cursor.fetchone()[0])
        return label
    label.save(force_insert=True)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(*counters.submit_tally_sql(a.pk, now, **tally))
    else:
        Assignment.objects.filter(pk=a.pk).update(state=Assignment.State.SUBMITTED, finished_at=now)
        counters.annotator_tally(**tally)
    return label


def _criteria(a: Assignment, scales: tuple[str, ...]) -> list[Criterion]:
    """The version's criteria of these scales (a published version's read once per process)."""
    if a.rubric_version_id is None:
        return []
    return [c for c in version_criteria(a.rubric_version) if c.scale in scales]


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


def _preference(preference: Any, both_bad: bool, swapped: bool, ask_overall: bool,
                errors: dict[str, str]) -> tuple[str, int | None]:
    """(choice, strength) in canonical terms from the shown-terms preference."""
    Choice = Comparison.Choice
    if both_bad:
        return Choice.BOTH_BAD, None
    if preference is None:
        if ask_overall:
            errors["preference"] = "choose which response is better (or tie, or both bad)"
        return Choice.TIE, 0
    if not isinstance(preference, int) or not -3 <= preference <= 3:
        errors["preference"] = "must be a whole number from -3 to 3"
        return Choice.TIE, 0
    strength = -preference if swapped else preference
    return (Choice.A if strength < 0 else Choice.B if strength > 0 else Choice.TIE), strength


def _criterion_answers(crit_rows: list[Criterion], given: dict[str, Any], field: str, missing: str,
                       errors: dict[str, str], turn=None) -> tuple[dict[str, Any], bool]:
    """Each criterion's answer cleaned by its scale (``rubrics.schema``), errors under
    ``field.key``; answers for criteria not in the version are refused. Returns the
    clean answers (passed through ``turn`` when given) and whether any answered
    criterion asks for a rationale."""
    clean: dict[str, Any] = {}
    needs_rationale = False
    for crit in crit_rows:
        value = given.get(crit.key, "")
        if value == "" or (value is None and crit.scale == "pairwise"):
            errors[f"{field}.{crit.key}"] = missing.format(name=crit.name)
            continue
        try:
            value = scale_of(crit.as_spec()).clean_answer(value)
        except AnswerError as exc:
            errors[f"{field}.{crit.key}"] = str(exc)
            continue
        clean[crit.key] = turn(value) if turn else value
        needs_rationale |= crit.requires_rationale
    stray = sorted(set(given) - {c.key for c in crit_rows})
    if stray:
        errors[field] = f"not in this rubric version: {', '.join(stray)}"
    return clean, needs_rationale


def _clean_flags(flags: list[str] | None, errors: dict[str, str]) -> list[str]:
    bad = sorted(set(flags or []) - set(FLAGS))
    if bad:
        errors["flags"] = f"unknown flags: {', '.join(bad)}"
    return sorted(set(flags or []))


# --- one submit per kind ----------------------------------------------------------------


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

    return _submitting(assignment, user, TaskKind.PAIRWISE, idempotency_key, lambda a: _judgment(
        a, user, preference=preference, both_bad=both_bad, criteria=criteria, rationale=rationale, flags=flags,
        spans=spans, time_on_task_ms=time_on_task_ms, idempotency_key=idempotency_key))


def _judgment(a: Assignment, user, *, preference, both_bad, criteria, rationale, flags, spans, time_on_task_ms,
              idempotency_key) -> Judgment:
    c = a.comparison
    swapped = a.shown_left_id != c.response_a_id  # answers come in shown terms
    errors: dict[str, str] = {}
    version = a.rubric_version
    ask_overall = version is None or version.ask_overall_preference
    choice, strength = _preference(preference, both_bad, swapped, ask_overall, errors)
    clean_criteria, needs_rationale = _criterion_answers(
        _criteria(a, ("pairwise",)), criteria or {}, "criteria", "answer {name}", errors,
        turn=Comparison.Choice.flip if swapped else None,
    )
    text = _clean_rationale(rationale, needs_rationale, errors)
    clean_flags = _clean_flags(flags, errors)
    texts = {c.response_a_id: c.response_a.text, c.response_b_id: c.response_b.text}
    clean_spans = _clean_spans(a, spans, texts, errors)
    if errors:
        raise TaskError("the answer is incomplete or invalid", errors)
    label = _store(
        Judgment, a, user, time_on_task_ms=time_on_task_ms, idempotency_key=idempotency_key,
        comparison=c, choice=choice, strength=strength, criteria=clean_criteria, rationale=text,
        spans=clean_spans, flags=clean_flags, shown_left_id=a.shown_left_id, source="human",
    )
    if c.is_gold:
        annotator_gold_check(project=a.project, user=user)
    return label


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

    return _submitting(assignment, user, TaskKind.RATING, idempotency_key, lambda a: _rating(
        a, user, scores=scores, rationale=rationale, spans=spans, time_on_task_ms=time_on_task_ms,
        idempotency_key=idempotency_key))


def _rating(a: Assignment, user, *, scores, rationale, spans, time_on_task_ms, idempotency_key) -> Rating:
    errors: dict[str, str] = {}
    clean, needs_rationale = _criterion_answers(
        _criteria(a, ("likert", "binary", "severity")), scores or {}, "scores", "rate {name}", errors,
    )
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

    return _submitting(assignment, user, TaskKind.RANKING, idempotency_key, lambda a: _ranking(
        a, user, groups=groups, rationale=rationale, time_on_task_ms=time_on_task_ms, idempotency_key=idempotency_key))


def _ranking(a: Assignment, user, *, groups, rationale, time_on_task_ms, idempotency_key) -> Ranking:
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
            served_change(project_id=a.project_id, user_id=user.pk, by=-1)
        if not _is_gold(a):
            # a skipped expired lease is counted as skipped, no longer as expired
            counters.annotator_tally(project_id=a.project_id, annotator_id=user.pk, kind=a.kind, skipped=1,
                                     expired=-1 if a.state == Assignment.State.EXPIRED else 0)
        a.refresh_from_db()
        return a
