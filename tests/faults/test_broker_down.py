"""Redis (the job queue) stopped while researchers retrain, import and export:
every request answers within seconds without a 500, the job ends failed with a
message the user sees, nothing stays queued, and once Redis is back a new run is
accepted. ``/healthz`` says the queue is down without telling outsiders where it is."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from annotate.jobs import QUEUE_UNREACHABLE
from annotate.models import Comparison, ExportJob, ImportJob, Judgment
from annotate.services import project_create
from models_svc.models import ModelVersion, TrainingRun

from tests.conftest import make_user
from tests.factories import fill

pytestmark = pytest.mark.django_db(transaction=True)  # on_commit hooks run, as in production
FAST = 5.0  # seconds: the longest a request may take with the queue down


@pytest.fixture
def researcher():
    return make_user("rita-faults")


@pytest.fixture
def project(researcher):
    p = project_create(name="Faults", slug="faults", created_by=researcher)
    fill(p, prompts=3, responses=3)
    rater = make_user("rater-faults")
    for c in Comparison.objects.filter(project=p):
        Judgment.objects.create(comparison=c, annotator=rater, choice="A", strength=-2, source="imported")
    return p


def _timed(fn):
    start = time.monotonic()
    resp = fn()
    return resp, time.monotonic() - start


def test_retrain_with_redis_down_fails_the_run_with_a_message_and_is_accepted_once_back(client, private_redis,
                                                                                          researcher, project):
    client.force_login(researcher)
    private_redis.stop()
    resp, took = _timed(lambda: client.post("/api/v1/projects/faults/models/runs/", {"mode": "head"}))
    assert took < FAST, f"took {took:.1f}s"
    assert resp.status_code == 503 and resp.json() == {"detail": QUEUE_UNREACHABLE}
    run = TrainingRun.objects.get()
    assert (run.status, run.error) == (TrainingRun.Status.FAILED, QUEUE_UNREACHABLE)

    page = "/p/faults/models/"
    resp, took = _timed(lambda: client.post("/p/faults/models/retrain/", HTTP_REFERER=f"http://testserver{page}"))
    assert took < FAST and resp.status_code == 302 and resp["Location"] == f"http://testserver{page}"
    html = client.get(page).content.decode()
    assert f"Not queued: {QUEUE_UNREACHABLE}." in html
    # no page to go back to (no Referer): a 503 that says why, not a 500
    resp = client.post("/p/faults/models/retrain/")
    assert (resp.status_code, resp.content.decode()) == (503, f"Not queued: {QUEUE_UNREACHABLE}.")
    assert not TrainingRun.objects.filter(status__in=TrainingRun.ACTIVE_STATES).exists()

    private_redis.start()
    resp = client.post("/api/v1/projects/faults/models/runs/", {"mode": "head"})
    assert resp.status_code == 202, resp.content
    assert TrainingRun.objects.get(pk=resp.json()["id"]).status == TrainingRun.Status.QUEUED
    assert private_redis.queued() == 1  # the task really is in the queue


def test_import_with_redis_down_fails_the_job_with_a_message(client, private_redis, researcher, project):
    client.force_login(researcher)
    private_redis.stop()
    upload = io.BytesIO(b'{"prompt": "q", "responses": ["a", "b"]}\n')
    upload.name = "x.jsonl"
    resp, took = _timed(lambda: client.post("/api/v1/projects/faults/imports/", {"format": "jsonl", "file": upload}))
    assert took < FAST and resp.status_code == 503
    assert resp.json() == {"detail": QUEUE_UNREACHABLE}
    job = ImportJob.objects.get()
    assert (job.status, job.error) == (ImportJob.Status.FAILED, QUEUE_UNREACHABLE)
    assert job.file_path and not Path(job.file_path).exists()  # the upload is not kept
    # the project page lists it with the message
    assert QUEUE_UNREACHABLE in client.get("/p/faults/").content.decode()
    # the upload page: back to the form, with the message shown
    upload.seek(0)
    page = "/p/faults/import/"
    resp, took = _timed(lambda: client.post(page, {"format": "jsonl", "file": upload},
                                            HTTP_REFERER=f"http://testserver{page}"))
    assert took < FAST and resp.status_code == 302 and resp["Location"] == f"http://testserver{page}"
    assert f"Not queued: {QUEUE_UNREACHABLE}." in client.get(page).content.decode()
    assert ImportJob.objects.filter(status=ImportJob.Status.FAILED, error=QUEUE_UNREACHABLE).count() == 2


def test_export_with_redis_down_fails_the_job_with_a_message(client, private_redis, researcher, project):
    client.force_login(researcher)
    private_redis.stop()
    resp, took = _timed(lambda: client.post("/api/v1/projects/faults/exports/", {"format": "raw"}))
    assert took < FAST and resp.status_code == 503
    job = ExportJob.objects.get()
    assert (job.status, job.error) == (ExportJob.Status.FAILED, QUEUE_UNREACHABLE)
    page = "/p/faults/exports/"
    resp, took = _timed(lambda: client.post(page, {"format": "raw", "file_format": "jsonl", "aggregate": "all"},
                                            HTTP_REFERER=f"http://testserver{page}"))
    assert took < FAST and resp.status_code == 302
    html = client.get(page).content.decode()
    assert f"Not queued: {QUEUE_UNREACHABLE}." in html
    assert ExportJob.objects.filter(status=ExportJob.Status.FAILED).count() == 2


def test_a_synchronous_score_with_redis_down_answers_503_at_once(client, private_redis, researcher, project):
    """The score's worker is reached through the queue: down, the request says so within seconds."""
    run = TrainingRun.objects.create(project=project, status=TrainingRun.Status.SUCCEEDED, config={})
    ModelVersion.objects.create(project=project, run=run, number=1, artifact_path="/nowhere",
                                state=ModelVersion.State.ACTIVE)
    client.force_login(researcher)
    private_redis.stop()
    resp, took = _timed(lambda: client.post("/api/v1/projects/faults/score/", {"prompt": "q", "responses": ["a"]},
                                            content_type="application/json"))
    assert took < FAST, f"took {took:.1f}s"
    assert resp.status_code == 503 and resp.json() == {"detail": QUEUE_UNREACHABLE}
    private_redis.start()
    assert private_redis.queued("score") == 0  # nothing was queued to run later


def test_healthz_reports_the_broker_without_telling_outsiders_where_it_is(client, private_redis, researcher):
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok", "broker": "ok"}
    private_redis.stop()
    resp, took = _timed(lambda: client.get("/healthz"))
    assert took < FAST and resp.status_code == 200
    assert resp.json() == {"status": "degraded", "database": "ok", "broker": "unreachable"}
    assert str(private_redis.port) not in resp.content.decode()
    client.force_login(researcher)
    assert "details" not in client.get("/healthz").json()
    client.force_login(make_user("stella-faults", staff=True))
    details = client.get("/healthz").json()["details"]
    assert str(private_redis.port) in details["broker"]
