"""The maintained tallies (issue 19 point 3): every way a lease ends keeps them
equal to a recount from the raw rows; the reconcile repairs rows written past the
services; the progress fragment answers 304 while nothing changed."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from annotate import counters, queue, submit
from annotate.models import AnnotatorCount, Assignment, Judgment, Membership, TaskKind

from tests.factories import annotators, fill, make_gold

pytestmark = pytest.mark.django_db


def test_submits_skips_expiries_late_submits_and_gold_keep_the_tallies_exact(project):
    project.task_kinds = ["pairwise", "rating"]
    # every lease asks for gold first, so the two gold pairs are surely handed out
    # (a rate below 1 is a draw seeded by the ids, which depend on the tests run before)
    project.gold_rate = 1.0
    project.save()
    fill(project, prompts=6, responses=3)
    make_gold(project, 2)
    counters.units_recount(project=project)  # gold marked by hand, past the services
    ann, slow = annotators(project, 2)
    for i in range(6):
        a = queue.assignment_lease(project=project, annotator=ann)
        if i % 3 == 2:
            submit.assignment_skip(assignment=a, user=ann, reason="cannot judge")
        else:
            submit.judgment_submit(assignment=a, user=ann, preference=1, time_on_task_ms=1000 * (i + 1))
    project.gold_rate = 0
    project.save()
    late = queue.assignment_lease(project=project, annotator=slow)
    Assignment.objects.filter(pk=late.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert queue.assignments_expire(project=project) == 1
    submit.judgment_submit(assignment=late, user=slow, preference=-2)  # accepted: the slot was free again
    r = queue.assignment_lease(project=project, annotator=slow, kind=TaskKind.RATING)
    submit.rating_submit(assignment=r, user=slow, scores={})
    gone = queue.assignment_lease(project=project, annotator=slow, kind=TaskKind.RATING)
    Assignment.objects.filter(pk=gone.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    queue.assignments_expire(project=project)
    submit.assignment_skip(assignment=gone, user=slow, reason="came back too late")  # skipped, not expired

    assert counters.tallies_equal_recount(project=project)
    assert counters.counters_reconcile(project=project) == {"wrong": 0}
    mine = counters.annotator_tallies(project=project, annotator=ann)["pairwise"]
    gold = Assignment.objects.filter(annotator=ann, comparison__is_gold=True)
    assert gold.exists()  # gold leases were handed out, and count in no tally
    assert mine["skipped"] == Assignment.objects.filter(annotator=ann, state="skipped").exclude(
        comparison__is_gold=True).count() >= 1
    assert mine["labels"] == Judgment.objects.filter(annotator=ann, comparison__is_gold=False).count() >= 1
    # the late submit turned the expired lease into a label
    assert counters.annotator_tallies(project=project, annotator=slow)["pairwise"]["expired"] == 0
    assert counters.annotator_tallies(project=project, annotator=slow)["pairwise"]["labels"] == 1


def test_the_reconcile_repairs_drifted_tallies_and_served_counts(project, annotator):
    fill(project, prompts=3)
    a = queue.assignment_lease(project=project, annotator=annotator)
    submit.judgment_submit(assignment=a, user=annotator, preference=0)
    AnnotatorCount.objects.filter(project=project).update(labels=40)
    Membership.objects.filter(project=project, user=annotator).update(served_count=7)
    assert not counters.tallies_equal_recount(project=project)
    out = StringIO()
    call_command("counters_reconcile", project.slug, stdout=out)
    assert out.getvalue().startswith("2 stored figures were wrong")
    assert counters.tallies_equal_recount(project=project)
    assert AnnotatorCount.objects.get(project=project, kind="pairwise").labels == 1
    assert Membership.objects.get(project=project, user=annotator).served_count == 1


def test_the_progress_fragment_answers_304_until_a_label_changes_it(project, annotator, owner):
    fill(project, prompts=2)
    web = Client()
    web.force_login(owner)
    url = f"/p/{project.slug}/progress/"
    first = web.get(url, HTTP_HX_REQUEST="true")
    etag = first["ETag"]
    assert first.status_code == 200 and 'data-kind="pairwise"' in first.content.decode()
    again = web.get(url, HTTP_HX_REQUEST="true", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b""
    a = queue.assignment_lease(project=project, annotator=annotator)
    submit.judgment_submit(assignment=a, user=annotator, preference=1)
    changed = web.get(url, HTTP_HX_REQUEST="true", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert f'<tr data-annotator="{annotator.username}"><td>{annotator.username}</td><td class="pairwise">1</td>' \
        in changed.content.decode()


def test_tallies_equal_a_recount_after_an_import(project, tmp_path):
    import json

    from dataio.imports import services as imports

    rows = [{"id": f"p{i}", "prompt": f"question {i}", "responses": ["a", "b", "c"],
             "labels": [{"annotator": "ext-1", "a": 0, "b": 1, "choice": "A"}]} for i in range(5)]
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    job = imports.import_file(project=project, format="jsonl", path=path)
    assert job.status == "succeeded", job.error
    assert counters.tallies_equal_recount(project=project)
    pairwise = counters.project_tallies(project=project)["kinds"]["pairwise"]
    assert pairwise["imported"] == 5
