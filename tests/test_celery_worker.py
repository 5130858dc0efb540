"""A real Celery worker process over Redis: a ping round trip, and an import run by
the worker against the same database the test sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection

from annotate import services
from annotate.models import ImportJob, Judgment

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
REPO = Path(__file__).resolve().parent.parent


def _database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
        return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    return f"sqlite:///{s['NAME']}"


@pytest.fixture
def worker(redis_url, tmp_path):
    if connection.vendor == "sqlite" and (":memory:" in connection.settings_dict["NAME"] or "mode=memory" in connection.settings_dict["NAME"]):
        pytest.skip("the worker needs an on-disk test database")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "preflab.settings",
        "SECRET_KEY": "worker-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "PREFLAB_DATA_DIR": str(tmp_path / "worker-data"),
        "PREFLAB_SECURE": "0",
    }
    log = open(tmp_path / "worker.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "preflab", "worker", "--pool", "solo", "--loglevel", "INFO", "-n", "pytest@%h"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    client = Celery(broker=redis_url, backend=redis_url)
    try:
        yield client, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if proc.returncode not in (0, -15, None):
            print((tmp_path / "worker.log").read_text()[-4000:])


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
    job = services.import_job_create(project=project, format="jsonl", source_path=path)
    status = client.send_task("annotate.tasks.run_import", args=[job.pk]).get(timeout=90)
    assert status == "succeeded"
    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED and job.counts["judgments_created"] == 30
    assert Judgment.objects.filter(comparison__project=project, choice="B").count() == 30
