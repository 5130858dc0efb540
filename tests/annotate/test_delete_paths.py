"""Deleting a project, or many of its prompts, stays fast and leaves nothing behind
(issue #19). PostgreSQL checks each foreign key when its parent row goes, once per
deleted row (at COMMIT: Django's constraints are deferred); a check with no index to
serve it scans the whole child table, so deleting n prompts cost n scans. That
stopped a 1M-label project's drop for minutes."""

from __future__ import annotations

import re

import pytest
from django.apps import apps
from django.db import connection, models, transaction
from django.contrib.admin import site

from annotate import queue, slots
from annotate.admin import ProjectAdmin
from annotate.models import (
    Comparison, ExportJob, ImportJob, Judgment, LabelSource, Project, Prompt, QueueSlot, RankingSlot, Ranking, Rating,
    RatingSlot, Response, TaskKind,
)
from models_svc.models import ModelVersion, RewardSettings, TrainingRun
from quality.models import NoiseAudit, PairScore, QualityReport, ReviewItem

from tests.factories import annotators, fill

pytestmark = [pytest.mark.services, pytest.mark.django_db]

PROJECT_APPS = ("annotate", "rubrics", "quality", "models_svc")

# Foreign keys allowed to have no index their check can use, each with why: only
# where the parent's rows are never deleted many at a time, so the check runs once
# per delete, not once per row. None today: every key has one (the slot tables'
# copies of their unit's project and prompt are not keys in the database: 0015).
WITHOUT_INDEX_ALLOWED: dict[str, str] = {}

_FOREIGN_KEYS = """
SELECT c.conname, c.conrelid::regclass::text, c.confrelid::regclass::text,
       (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, n)
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum)
FROM pg_constraint c
WHERE c.contype = 'f' AND c.conrelid::regclass::text ~ %s
ORDER BY 2, 1
"""

_INDEX_COLUMNS = """
SELECT array_agg(a.attname::text ORDER BY k.n) FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(attnum, n)
JOIN pg_attribute a ON a.attnum = k.attnum
WHERE i.indexrelid = %s::regclass AND a.attrelid = i.indrelid
"""


def _index_for_check(cursor, table: str, columns: list[str]) -> str | None:
    """The index PostgreSQL's check of a deleted parent row would use, if any: the
    planner's generic plan (the check is a saved plan) of the check's own query with
    sequential scans priced out, accepted only if the index leads with the key's
    columns (a btree can also be scanned whole on a later column, which is no better)
    and its predicate, if partial, is implied by ``column = $1`` (else not chosen)."""
    where = " AND ".join(f'$%d OPERATOR(pg_catalog.=) "{c}"' % (i + 1) for i, c in enumerate(columns))
    cursor.execute(f"PREPARE fk_check AS SELECT 1 FROM ONLY {table} x WHERE {where} FOR KEY SHARE OF x")
    try:
        cursor.execute(f"EXPLAIN EXECUTE fk_check({', '.join('1' for _ in columns)})")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    finally:
        cursor.execute("DEALLOCATE fk_check")
    used = re.search(r"(?:Index Scan|Index Only Scan|Bitmap Index Scan) (?:using|on) (\S+)", plan)
    if used is None:
        return None
    cursor.execute(_INDEX_COLUMNS, [used.group(1)])
    leading = (cursor.fetchone()[0] or [])[: len(columns)]
    return used.group(1) if sorted(leading) == sorted(columns) else None


def test_every_foreign_key_has_an_index_its_delete_check_can_use(postgres):
    missing = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(_FOREIGN_KEYS, [rf"^({'|'.join(PROJECT_APPS)})_"])
        keys = cursor.fetchall()
        for name, table, parent, columns in keys:
            key = f"{table}.{','.join(columns)}"
            if key not in WITHOUT_INDEX_ALLOWED and _index_for_check(cursor, table, columns) is None:
                missing.append(f"{key} → {parent} ({name})")
    assert len(keys) > 50  # the query sees the project's keys at all
    assert missing == [], "keys whose check scans the whole table per deleted parent row:\n" + "\n".join(missing)


def test_the_catalog_check_tells_a_usable_index_from_a_partial_or_later_column_one(postgres):
    """The check above is only as good as its reading of plans: a full index or one
    partial on ``IS NOT NULL`` serves, a later column or another predicate does not."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute("CREATE TEMP TABLE fk_probe (a int, b int, c int, d int) ON COMMIT DROP")
        cursor.execute("CREATE INDEX ON fk_probe (a, b)")
        cursor.execute("CREATE INDEX ON fk_probe (c) WHERE c IS NOT NULL")
        cursor.execute("CREATE INDEX ON fk_probe (d) WHERE a > 0")
        assert _index_for_check(cursor, "fk_probe", ["a"]) is not None
        assert _index_for_check(cursor, "fk_probe", ["c"]) is not None
        assert _index_for_check(cursor, "fk_probe", ["b"]) is None
        assert _index_for_check(cursor, "fk_probe", ["d"]) is None


# --- deleting through the product: the admin (the only delete path it offers) ---------
# A project through the admin's own delete (the ORM's cascade: ProjectAdmin.delete_model),
# not its confirmation page, which lists every row to be deleted with a query per
# label (Judgment.__str__ reads the annotator): minutes at thousands of labels.


def _rows() -> dict[str, int]:
    """Rows in every table of the project's apps."""
    return {m._meta.label: m.objects.count() for app in PROJECT_APPS for m in apps.get_app_config(app).get_models()}


def _orphans() -> dict[str, int]:
    """Rows whose foreign key (a database constraint or not) names a row that is gone."""
    found = {}
    for app in PROJECT_APPS:
        for model in apps.get_app_config(app).get_models():
            for field in model._meta.concrete_fields:
                if isinstance(field, models.ForeignKey):
                    parents = field.related_model._default_manager.values(field.target_field.attname)
                    n = (model._default_manager.exclude(**{f"{field.attname}__isnull": True})
                         .exclude(**{f"{field.attname}__in": parents}).count())
                    if n:
                        found[f"{model._meta.label}.{field.name}"] = n
    return found


def _big(project, prompts: int) -> None:
    """``prompts`` prompts of three responses, every pair, each unit in the queue;
    labels of every kind, leases, and a row in each other app's tables."""
    project.task_kinds = [TaskKind.PAIRWISE, TaskKind.RATING, TaskKind.RANKING]
    project.save(update_fields=["task_kinds"])
    made = Prompt.objects.bulk_create(
        [Prompt(project=project, external_id=f"q{i}", conversation=[{"role": "user", "content": f"Q{i}"}])
         for i in range(prompts)])
    responses = Response.objects.bulk_create(
        [Response(prompt=p, external_id=f"r{k}", text=f"answer {k}") for p in made for k in range(3)])
    by_prompt = [responses[i : i + 3] for i in range(0, len(responses), 3)]
    pairs = Comparison.objects.bulk_create(
        [Comparison(project=project, prompt=p, response_a=a, response_b=b)
         for p, (r0, r1, r2) in zip(made, by_prompt) for a, b in ((r0, r1), (r0, r2), (r1, r2))])
    slots.queue_slots_rebuild(project=project)
    first, second = annotators(project, 2, prefix="big")
    for kind in (TaskKind.PAIRWISE, TaskKind.RATING, TaskKind.RANKING):  # live leases, one of each kind
        assert queue.assignment_lease(project=project, annotator=first, kind=kind) is not None
    lease = queue.assignment_lease(project=project, annotator=first, kind=TaskKind.PAIRWISE)
    Judgment.objects.bulk_create(
        [Judgment(comparison=c, annotator=first, choice="A", source=LabelSource.IMPORTED) for c in pairs[1:]]
        + [Judgment(comparison=c, annotator=second, choice="B", shown_left=c.response_b, source=LabelSource.HUMAN)
           for c in pairs])
    Judgment.objects.filter(comparison=lease.comparison, annotator=second).update(assignment=lease)
    Rating.objects.bulk_create([Rating(response=r, annotator=first, scores={"overall": 4}) for r in responses])
    Ranking.objects.bulk_create([Ranking(prompt=p, annotator=second, groups=[[rs[0].pk], [rs[1].pk]])
                                 for p, rs in zip(made, by_prompt)])
    ImportJob.objects.create(project=project, format="csv", file_path="", status=ImportJob.Status.SUCCEEDED)
    ExportJob.objects.create(project=project, format="trl", file_format="jsonl", snapshot_id="s")
    ReviewItem.objects.create(project=project, comparison=pairs[0])
    audit = NoiseAudit.objects.create(project=project)
    PairScore.objects.bulk_create([PairScore(audit=audit, comparison=c, mu=0.5, sigma=0.1) for c in pairs[:100]])
    QualityReport.objects.create(project=project)
    RewardSettings.objects.create(project=project)
    TrainingRun.objects.create(project=project)
    ModelVersion.objects.create(project=project, run=TrainingRun.objects.create(project=project), number=1,
                                artifact_path="models/v1", state=ModelVersion.State.ACTIVE)


def test_deleting_a_project_of_thousands_of_prompts_leaves_no_row_behind(postgres, project):
    fill(project, prompts=3, responses=3)  # another project's rows stay as they are
    before = _rows()
    big = Project.objects.create(name="Big", slug="big")
    _big(big, prompts=1500)
    assert Judgment.objects.filter(comparison__project=big).count() == 2 * 4500 - 1
    assert Rating.objects.filter(response__prompt__project=big).count() == 4500
    assert _rows()["annotate.RatingSlot"] == before["annotate.RatingSlot"] + 4500

    with transaction.atomic():
        ProjectAdmin(Project, site).delete_model(None, big)
    connection.check_constraints()  # the deferred checks a COMMIT would run (the test's transaction never commits)

    assert _rows() == before  # every row of big, in every table, and none of the others
    assert _orphans() == {}
    assert Project.objects.filter(pk=project.pk).exists()


def test_deleting_many_prompts_in_the_admin_removes_their_slot_rows_and_leaves_no_orphans(postgres, project, superuser_client):
    _big(project, prompts=300)
    doomed = list(Prompt.objects.filter(project=project).order_by("id").values_list("pk", flat=True)[:200])

    response = superuser_client.post("/admin/annotate/prompt/", {
        "action": "delete_selected", "_selected_action": [str(pk) for pk in doomed], "post": "yes"})
    connection.check_constraints()

    assert response.status_code == 302
    assert Prompt.objects.filter(project=project).count() == 100
    assert _orphans() == {}
    assert RatingSlot.objects.filter(project=project).count() == 300  # the 100 prompts left, three responses each
    assert RankingSlot.objects.filter(project=project).count() == 100
    assert QueueSlot.objects.filter(project=project).count() == 300


def test_a_run_that_made_a_version_is_kept_unless_its_project_goes(project):
    from django.db.models import RestrictedError

    run = TrainingRun.objects.create(project=project)
    ModelVersion.objects.create(project=project, run=run, number=1, artifact_path="models/v1")
    with pytest.raises(RestrictedError):
        run.delete()
    project.delete()  # PROTECT refused this: a project with a trained model could not be deleted
    assert not TrainingRun.objects.filter(pk=run.pk).exists()
    assert not ModelVersion.objects.exists()
