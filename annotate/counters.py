"""Maintained tallies (DESIGN §2, issue 19): what the progress page, "remaining"
and the progress fragment read, in constant time whatever the pool or the
history.

Each tally lives on one annotator's row (``AnnotatorCount``: project × annotator ×
kind) and is bumped in the transaction that writes the label, skip or expiry, so
concurrent annotators never wait on a shared row; project figures sum those rows
(one per annotator and kind, however many labels). ``UnitCount`` holds the task
counts, written when units are created. ``counters_reconcile`` recomputes both
from the raw rows (a Celery task, a management command and every import's end
run it); anything written past the services (a shell, a fixture) is counted
after the next reconcile.

The project page's label totals (``project_figures``) are the same figures as
``rubrics.models.label_counts(projects=[project])``, the one definition of them,
read from these rows: every writer of a label of any source (a submit, gold
included; a rule's derivation; an adjudication; an import, through its reconcile)
adds to its owner's row in its own transaction.
"""

from __future__ import annotations

from collections import defaultdict

from django.db import connection, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from .models import (
    AnnotatorCount,
    Assignment,
    Comparison,
    Judgment,
    LabelSource,
    Project,
    Prompt,
    Ranking,
    Rating,
    Response,
    TaskKind,
    UnitCount,
)

KINDS = (TaskKind.PAIRWISE, TaskKind.RATING, TaskKind.RANKING)


# The label relations ``rubrics.models.label_counts`` keys its figures by, per kind.
LABEL_NAMES = {TaskKind.PAIRWISE: "judgments", TaskKind.RATING: "ratings", TaskKind.RANKING: "rankings"}
# Where each label of a tally row counts: one column per source, people's labels on
# gold units apart (gold answers are scored apart from progress).
LABEL_COLUMNS = ("labels", "imported", "gold", "derived", "adjudicated", "model")
# The gold score beside them: people's own answers (source human) on gold pairs, and
# how many matched the pair's expected answer.
GOLD_SCORE_COLUMNS = ("gold_answered", "gold_correct")
_NAMED_SOURCES = (LabelSource.HUMAN, LabelSource.IMPORTED, LabelSource.DERIVED, LabelSource.ADJUDICATED)


def _labels_scope(kind: str, project_id: int) -> tuple[type, dict, Q | None]:
    """Each kind's label table, its filter to the project, and which of its labels
    are on gold units (None: the kind has no gold units)."""
    return {
        TaskKind.PAIRWISE: (Judgment, {"comparison__project_id": project_id}, Q(comparison__is_gold=True)),
        TaskKind.RATING: (Rating, {"response__prompt__project_id": project_id}, None),
        TaskKind.RANKING: (Ranking, {"prompt__project_id": project_id}, None),
    }[kind]


def _upsert_sql() -> str:
    # One statement whatever the row's state: insert the first tally, add to it after.
    # ``today`` restarts when the stored day is not today's.
    return (
        "INSERT INTO annotate_annotatorcount (project_id, annotator_id, kind, labels, imported, skipped, expired, "
        "day, today, time_ms, timed, changed_at, gold, derived, adjudicated, model, gold_answered, gold_correct) "
        "VALUES (%s, %s, %s, %s, 0, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (project_id, annotator_id, kind) DO UPDATE SET "
        "labels = annotate_annotatorcount.labels + EXCLUDED.labels, "
        "gold = annotate_annotatorcount.gold + EXCLUDED.gold, "
        "derived = annotate_annotatorcount.derived + EXCLUDED.derived, "
        "adjudicated = annotate_annotatorcount.adjudicated + EXCLUDED.adjudicated, "
        "model = annotate_annotatorcount.model + EXCLUDED.model, "
        "gold_answered = annotate_annotatorcount.gold_answered + EXCLUDED.gold_answered, "
        "gold_correct = annotate_annotatorcount.gold_correct + EXCLUDED.gold_correct, "
        "skipped = annotate_annotatorcount.skipped + EXCLUDED.skipped, "
        "expired = annotate_annotatorcount.expired + EXCLUDED.expired, "
        "today = CASE WHEN annotate_annotatorcount.day = EXCLUDED.day "
        "THEN annotate_annotatorcount.today + EXCLUDED.today ELSE EXCLUDED.today END, "
        "day = EXCLUDED.day, "
        "time_ms = annotate_annotatorcount.time_ms + EXCLUDED.time_ms, "
        "timed = annotate_annotatorcount.timed + EXCLUDED.timed, changed_at = EXCLUDED.changed_at"
    )


def tally_params(*, project_id: int, annotator_id: int, kind: str, labels: int = 0, skipped: int = 0,
                 expired: int = 0, time_ms: int | None = None, gold: int = 0, derived: int = 0,
                 adjudicated: int = 0, model: int = 0, gold_answered: int = 0, gold_correct: int = 0) -> list:
    now = timezone.now()
    return [project_id, annotator_id, kind, labels, skipped, expired, timezone.localdate(now), labels,
            time_ms or 0, 1 if time_ms is not None else 0, now, gold, derived, adjudicated, model,
            gold_answered, gold_correct]


def annotator_tally(**kw) -> None:
    """Add to one annotator's tallies (one statement; call inside the transaction
    that made the change). Keywords as ``tally_params``."""
    with connection.cursor() as cursor:
        cursor.execute(_upsert_sql(), tally_params(**kw))


def submit_tally_sql(assignment_id: int, finished_at, *, label: tuple[str, list] | None = None,
                     **kw) -> tuple[str, list]:
    """PostgreSQL: close the assignment and add the label to the tallies in one
    statement (a data-modifying CTE), the last of a submit's queries. With
    ``label`` (an INSERT … RETURNING id and its parameters, ``CompiledInsert``) the
    label is stored by the same statement, which then returns its id."""
    closed = ("closed AS (UPDATE annotate_assignment SET state = 'submitted', finished_at = %s "
              "WHERE id = %s RETURNING id) ")
    if label is None:
        return "WITH " + closed + _upsert_sql(), [finished_at, assignment_id, *tally_params(**kw)]
    insert, params = label
    return (f"WITH label AS ({insert}), {closed}{_upsert_sql()} RETURNING (SELECT id FROM label)",
            [*params, finished_at, assignment_id, *tally_params(**kw)])


# --- reads -------------------------------------------------------------------------------


def project_tallies(*, project: Project) -> dict:
    """Per kind: units, labels, imported, skipped, expired, today; per annotator
    and kind the same rows, and ``version``: the latest change (for ETags)."""
    today = timezone.localdate()
    rows = list(
        AnnotatorCount.objects.filter(project=project)
        .values("annotator__username", "kind", "labels", "imported", "skipped", "expired", "day", "today",
                "time_ms", "timed", "changed_at")
    )
    units = dict(UnitCount.objects.filter(project=project).values_list("kind", "units"))
    per_kind: dict[str, dict] = defaultdict(lambda: {"labels": 0, "imported": 0, "skipped": 0, "expired": 0,
                                                     "today": 0})
    for r in rows:
        r["today"] = r["today"] if r["day"] == today else 0
        k = per_kind[r["kind"]]
        for f in ("labels", "imported", "skipped", "expired", "today"):
            k[f] += r[f]
    return {"units": units, "kinds": per_kind, "rows": rows}


def annotator_tallies(*, project: Project, annotator) -> dict[str, dict]:
    today = timezone.localdate()
    out = {}
    for r in AnnotatorCount.objects.filter(project=project, annotator=annotator).values(
            "kind", "labels", "imported", "skipped", "expired", "day", "today"):
        r["today"] = r["today"] if r["day"] == today else 0
        out[r["kind"]] = r
    return out


def live_leases(*, project: Project, annotator=None) -> dict[str, int]:
    """Unexpired non-gold leases per kind (of one annotator when given): read
    through the (state, expires_at) index, so bounded by the leases out now."""
    qs = Assignment.objects.filter(project=project, state=Assignment.State.ACTIVE, expires_at__gt=timezone.now())
    if annotator is not None:
        qs = qs.filter(annotator=annotator)
    return dict(qs.exclude(comparison__is_gold=True).values("kind").annotate(n=Count("id")).values_list("kind", "n"))


def units_for(*, project: Project) -> dict[str, int]:
    return dict(UnitCount.objects.filter(project=project).values_list("kind", "units"))


def project_figures(*, project: Project) -> dict:
    """The project page's figures: prompts, responses, comparisons (gold ones
    included) and, per label relation, what ``label_counts(projects=[project])``
    gives (``total`` over every source, and how many were ``derived``), read from
    the tallies in two queries whatever the number of labels."""
    units = {kind: (n, gold) for kind, n, gold in
             UnitCount.objects.filter(project=project).values_list("kind", "units", "gold")}
    total = sum((F(column) for column in LABEL_COLUMNS[1:]), F(LABEL_COLUMNS[0]))
    labels = {kind: (n, derived) for kind, n, derived in
              AnnotatorCount.objects.filter(project=project).values("kind")
              .annotate(n=Sum(total), n_derived=Sum("derived")).order_by().values_list("kind", "n", "n_derived")}
    pairs = units.get(TaskKind.PAIRWISE, (0, 0))
    figures = {
        "prompts": units.get(TaskKind.RANKING, (0, 0))[0],
        "responses": units.get(TaskKind.RATING, (0, 0))[0],
        "comparisons": pairs[0] + pairs[1],
    }
    for kind, name in LABEL_NAMES.items():
        n, derived = labels.get(kind, (0, 0))
        figures[name] = {"total": n, "derived": derived}
    return figures


# --- writes outside the request path --------------------------------------------------------


def _unit_counts(project_id: int) -> dict[str, tuple[int, int]]:
    """Per kind: (units in the queue, gold units beside them)."""
    pairs = Comparison.objects.filter(project_id=project_id).aggregate(
        units=Count("id", filter=Q(is_gold=False)), gold=Count("id", filter=Q(is_gold=True)))
    return {
        TaskKind.PAIRWISE: (pairs["units"], pairs["gold"]),
        TaskKind.RATING: (Response.objects.filter(prompt__project_id=project_id).count(), 0),
        TaskKind.RANKING: (Prompt.objects.filter(project_id=project_id).count(), 0),
    }


def _stored_units(project: Project) -> dict[str, tuple[int, int]]:
    return {kind: (n, gold) for kind, n, gold in
            UnitCount.objects.filter(project=project).values_list("kind", "units", "gold")}


def units_recount(*, project: Project) -> None:
    """After units were created or removed (generation, imports, gold marking)."""
    now = timezone.now()
    have = _stored_units(project)
    for kind, (n, gold) in _unit_counts(project.pk).items():
        if have.get(kind) != (n, gold):  # an unchanged count keeps its row (and changed_at, the ETag's input)
            UnitCount.objects.update_or_create(project=project, kind=kind,
                                               defaults={"units": n, "gold": gold, "changed_at": now})


def _recount_rows(project_id: int) -> dict[tuple[int, str], dict]:
    """Every annotator's tallies recomputed from labels and assignments."""
    today = timezone.localdate()
    start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    rows: dict[tuple[int, str], dict] = defaultdict(lambda: {**dict.fromkeys(LABEL_COLUMNS, 0),
                                                             **dict.fromkeys(GOLD_SCORE_COLUMNS, 0), "skipped": 0,
                                                             "expired": 0, "today": 0, "time_ms": 0, "timed": 0})
    for kind in KINDS:
        model, scope, gold = _labels_scope(kind, project_id)
        not_gold = Q() if gold is None else ~gold
        human = Q(source=LabelSource.HUMAN) & not_gold
        figures = {
            "labels": Count("id", filter=human),
            "imported": Count("id", filter=Q(source=LabelSource.IMPORTED) & not_gold),
            "derived": Count("id", filter=Q(source=LabelSource.DERIVED)),
            "adjudicated": Count("id", filter=Q(source=LabelSource.ADJUDICATED)),
            "model": Count("id", filter=~Q(source__in=_NAMED_SOURCES)),
            "time_ms": Sum("time_on_task_ms", filter=human),
            "timed": Count("time_on_task_ms", filter=human),
        }
        if gold is not None:
            figures["gold"] = Count("id", filter=Q(source__in=(LabelSource.HUMAN, LabelSource.IMPORTED)) & gold)
            figures["gold_answered"] = Count("id", filter=Q(source=LabelSource.HUMAN) & gold)
            figures["gold_correct"] = Count("id", filter=Q(source=LabelSource.HUMAN, choice=F("comparison__gold_choice"))
                                            & gold)
        for r in model.objects.filter(**scope).values("annotator_id").annotate(**figures).order_by():
            r["time_ms"] = r["time_ms"] or 0
            rows[(r.pop("annotator_id"), kind)].update(r)
    # skips, expiries and today's submits come from the leases; gold leases count
    # in none of a kind's figures, as gold labels do not
    leases = Assignment.objects.filter(project_id=project_id).exclude(comparison__is_gold=True)
    for r in (leases.values("annotator_id", "kind")
              .annotate(skipped=Count("id", filter=Q(state=Assignment.State.SKIPPED)),
                        expired=Count("id", filter=Q(state=Assignment.State.EXPIRED)),
                        today=Count("id", filter=Q(state=Assignment.State.SUBMITTED, finished_at__gte=start)))):
        rows[(r["annotator_id"], r["kind"])].update(skipped=r["skipped"], expired=r["expired"], today=r["today"])
    for row in rows.values():
        row["day"] = today
    return rows


def counters_reconcile(*, project: Project) -> dict[str, int]:
    """Recompute the project's tallies, unit counts and members' served counts from
    the raw rows; returns how many stored figures were wrong (0 when all held)."""
    from .models import Membership

    with transaction.atomic():
        # the members' rows are the lease lock: nobody leases or submits here meanwhile
        members = list(Membership.objects.select_for_update().filter(project=project).values_list("pk", "user_id"))
        wrong = 0
        truth = _recount_rows(project.pk)
        stored = {(r.annotator_id, r.kind): r for r in AnnotatorCount.objects.filter(project=project)}
        now = timezone.now()
        fields = (*LABEL_COLUMNS, *GOLD_SCORE_COLUMNS, "skipped", "expired", "today", "time_ms", "timed")
        for key, want in truth.items():
            have = stored.pop(key, None)
            if have is None:
                wrong += 1
                AnnotatorCount.objects.create(project=project, annotator_id=key[0], kind=key[1], changed_at=now, **want)
                continue
            have_today = have.today if have.day == want["day"] else 0
            if any(getattr(have, f) != want[f] for f in fields if f != "today") or have_today != want["today"]:
                wrong += 1
                AnnotatorCount.objects.filter(pk=have.pk).update(changed_at=now, **want)
        for gone in stored.values():
            if any(getattr(gone, f) for f in fields):
                wrong += 1
            gone.delete()
        served = dict(
            Assignment.objects.filter(project=project, state__in=Assignment.LIVE_STATES)
            .values("annotator_id").annotate(n=Count("id")).values_list("annotator_id", "n")
        )
        for pk, user_id in members:
            wrong += Membership.objects.filter(pk=pk).exclude(served_count=served.get(user_id, 0)).update(
                served_count=served.get(user_id, 0))
        units = _unit_counts(project.pk)
        have_units = _stored_units(project)
        wrong += sum(1 for k, n in units.items() if have_units.get(k) != n)
        units_recount(project=project)
    return {"wrong": wrong}


def counters_reconcile_all() -> dict[str, int]:
    wrong = 0
    for project in Project.objects.all():
        wrong += counters_reconcile(project=project)["wrong"]
    return {"wrong": wrong}


def tallies_equal_recount(*, project: Project) -> bool:
    """For tests and the reconcile's log: whether the stored figures match a recount."""
    truth = _recount_rows(project.pk)
    stored = {(r.annotator_id, r.kind): r for r in AnnotatorCount.objects.filter(project=project)}
    fields = (*LABEL_COLUMNS, *GOLD_SCORE_COLUMNS, "skipped", "expired", "time_ms", "timed", "today")
    for key in set(truth) | set(stored):
        # a missing row reads as zeros: a row taken back to nothing (a withdrawn
        # adjudication, a rule that now derives none) is kept by the writers
        want, have = truth.get(key, {}), stored.get(key)
        if any((getattr(have, f) if have else 0) != want.get(f, 0) for f in fields):
            return False
    return _stored_units(project) == _unit_counts(project.pk)

