"""A real Celery worker process over Redis: a ping round trip, and an import run by
the worker against the same database the test sees."""

from __future__ import annotations

import json

import pytest

from annotate.models import ImportJob, Judgment
from dataio.imports import services as imports

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_ping_round_trip_through_a_real_worker(worker):
    client, proc = worker
    result = client.send_task("preflab.ping", kwargs={"value": "hello"})
    answer = result.get(timeout=60)
    assert answer["value"] == "hello"
    assert answer["pid"] == proc.pid  # answered by the worker process, not this one


def test_import_job_runs_in_the_worker(worker, project, tmp_path):
    client, proc = worker
    path = tmp_path / "labels.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": f"p{i}", "prompt": f"Question {i}", "responses": ["short", "long answer"],
                        "labels": [{"annotator": "wen", "a": 0, "b": 1, "choice": "B", "strength": 1}]}) + "\n"
            for i in range(30)
        )
    )
    job = imports.import_job_create(project=project, format="jsonl", source_path=path)
    status = client.send_task("dataio.tasks.run_import", args=[job.pk]).get(timeout=90)
    assert status == "succeeded"
    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED and job.counts["judgments_created"] == 30
    assert Judgment.objects.filter(comparison__project=project, choice="B").count() == 30


@pytest.mark.parametrize("worker", ["prefork"], indirect=True)
def test_prefork_child_runs_one_database_task_after_another(worker, project, tmp_path):
    """Compose's worker forks its child after importing the app: the child opens its
    own connections (on PostgreSQL a pool of its own) and keeps working after each
    task hands its connection back."""
    client, proc = worker
    answer = client.send_task("preflab.ping").get(timeout=60)
    assert answer["pid"] != proc.pid  # a forked child ran it
    for n in (1, 2):
        path = tmp_path / f"labels{n}.jsonl"
        path.write_text(json.dumps({"id": f"p{n}", "prompt": f"Question {n}", "responses": ["short", "long answer"],
                                    "labels": [{"annotator": "wen", "a": 0, "b": 1, "choice": "A"}]}) + "\n")
        job = imports.import_job_create(project=project, format="jsonl", source_path=path)
        assert client.send_task("dataio.tasks.run_import", args=[job.pk]).get(timeout=90) == "succeeded"
    assert Judgment.objects.filter(comparison__project=project, choice="A").count() == 2
