"""Redis lost while a synchronous score waits for its worker (``annotate.jobs.task_call``):
the task was queued, then the broker and result store went away. The request answers
503 with a message saying to try again or use ``"background": true`` well before its
wait ends, not a 500; no row is left behind; the task is revoked where the broker
still answers (and its message expires with the wait anyway); the wait is logged;
and once Redis is back the next synchronous call gets its answer."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time

import pytest
import redis

from annotate.jobs import QUEUE_UNREACHABLE, task_call
from models_svc.models import ModelVersion, ScoringJob, TrainingRun

from tests.conftest import celery_worker, make_user, point_celery_at
from tests.faults.conftest import PrivateRedis

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/projects/lost/score/"
LOST = ("the job queue was lost while this request waited for the scoring worker, so the request was withdrawn; "
        "try again later, or send the batch with \"background\": true to score it as a job")
WAIT_S = 30  # the request's wait: an answer well inside it shows the loss was noticed, not waited out


@pytest.fixture
def researcher():
    return make_user("rita-lost")


@pytest.fixture
def scored_project(researcher, settings):
    from annotate.services import project_create

    settings.SCORE_WAIT_S = WAIT_S
    p = project_create(name="Lost", slug="lost", created_by=researcher)
    run = TrainingRun.objects.create(project=p, status=TrainingRun.Status.SUCCEEDED, config={})
    ModelVersion.objects.create(project=p, run=run, number=1, artifact_path="/nowhere", state=ModelVersion.State.ACTIVE)
    return p


def _stop_once_queued(broker_url: str, then_stop: PrivateRedis) -> threading.Thread:
    """Stop ``then_stop`` as soon as the score task sits in the broker's ``score`` queue
    (the request is then waiting for its answer: no worker consumes the queue)."""
    def watch():
        queue = redis.Redis.from_url(broker_url)
        deadline = time.monotonic() + 20
        while not queue.llen("score") and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # the request is inside result.get() by now
        then_stop.stop()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _post(client, **body):
    client.raise_request_exception = False  # the old code's 500 is an answer to assert on, not a raise
    start = time.monotonic()
    resp = client.post(URL, {"prompt": "q", "responses": ["a"], **body}, content_type="application/json")
    return resp, time.monotonic() - start


def test_redis_lost_while_a_score_waits_answers_503_and_the_next_call_works_once_it_is_back(
        client, private_redis, researcher, scored_project, caplog, tmp_path):
    client.force_login(researcher)
    watcher = _stop_once_queued(private_redis.url, then_stop=private_redis)
    with caplog.at_level(logging.WARNING, logger="annotate.jobs"):
        resp, took = _post(client)
    watcher.join(timeout=30)
    assert resp.status_code == 503, resp.content
    assert resp.json() == {"detail": LOST}
    assert took < WAIT_S / 2, f"took {took:.1f}s: the loss was waited out, not noticed"
    assert not ScoringJob.objects.exists()  # nothing written that could stay running
    (record,) = [r for r in caplog.records if "lost while waiting" in r.getMessage()]
    assert "models_svc.tasks.score_now" in record.getMessage() and record.exc_info

    # Redis back (empty: it kept nothing): this process waits for answers again.
    from preflab.celery import ping

    private_redis.start()
    assert private_redis.queued("score") == 0
    with celery_worker(private_redis.url, tmp_path):
        answer = task_call(task=ping, args=("back",), wait_s=60, timeout_detail="unused")
    assert answer["value"] == "back"


def test_result_store_lost_while_a_score_waits_answers_503_and_revokes_the_task(
        client, private_redis, researcher, scored_project, caplog, tmp_path):
    """The broker (here the private Redis) stays up and only the result store goes: the
    queued task is revoked (workers hear it on the broker) and its message expires."""
    results = PrivateRedis(tmp_path / "results")
    (tmp_path / "results").mkdir()
    results.start()
    saved = point_celery_at(None, broker_url=private_redis.url, result_backend=results.url,
                            task_always_eager=False)
    broadcasts = redis.Redis.from_url(private_redis.url).pubsub()
    broadcasts.psubscribe("*pidbox*")  # the control channel a revoke is broadcast on
    try:
        client.force_login(researcher)
        watcher = _stop_once_queued(private_redis.url, then_stop=results)
        with caplog.at_level(logging.WARNING, logger="annotate.jobs"):
            resp, took = _post(client)
        watcher.join(timeout=30)
    finally:
        results.stop()
        point_celery_at(None, saved)
    assert resp.status_code == 503 and resp.json() == {"detail": LOST}
    assert took < WAIT_S / 2, f"took {took:.1f}s"
    (message,) = [json.loads(m) for m in redis.Redis.from_url(private_redis.url).lrange("score", 0, -1)]
    task_id = message["headers"]["id"]
    assert message["headers"]["expires"]  # a worker that comes later drops it unrun
    revokes = []
    deadline = time.monotonic() + 5
    while not revokes and time.monotonic() < deadline:
        got = broadcasts.get_message(timeout=0.2)
        if got and got["type"] == "pmessage":
            envelope = json.loads(got["data"])
            body = envelope["body"]
            if envelope.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body).decode()
            command = json.loads(body)
            revokes += [command] if command.get("method") == "revoke" else []
    broadcasts.close()
    assert [c["arguments"]["task_id"] for c in revokes] == [task_id], "no revoke for the task on the broker"
    assert not ScoringJob.objects.exists()


def test_broker_lost_while_a_score_waits_answers_503_at_the_end_of_the_wait(
        client, private_redis, researcher, scored_project, settings, caplog, tmp_path):
    """A broker apart from the result store: its loss is not seen while the answer is
    awaited, but the revoke at the time-out cannot reach it, so the caller is told the
    queue is lost (503), not to send a background job that would not be queued either."""
    settings.SCORE_WAIT_S = 3
    results = PrivateRedis(tmp_path / "results")
    (tmp_path / "results").mkdir()
    results.start()
    saved = point_celery_at(None, broker_url=private_redis.url, result_backend=results.url,
                            task_always_eager=False)
    try:
        client.force_login(researcher)
        watcher = _stop_once_queued(private_redis.url, then_stop=private_redis)
        with caplog.at_level(logging.WARNING, logger="annotate.jobs"):
            resp, took = _post(client)
        watcher.join(timeout=30)
    finally:
        results.stop()
        point_celery_at(None, saved)
    assert resp.status_code == 503 and resp.json() == {"detail": LOST}
    assert took < 3 + 10, f"took {took:.1f}s"
    assert [r for r in caplog.records if r.getMessage().startswith("could not revoke")]
    assert not ScoringJob.objects.exists()


def test_a_background_score_with_redis_down_fails_its_job_with_a_message(client, private_redis, researcher,
                                                                          scored_project):
    client.force_login(researcher)
    private_redis.stop()
    resp, took = _post(client, background=True)
    assert took < 5, f"took {took:.1f}s"
    assert resp.status_code == 503 and resp.json() == {"detail": QUEUE_UNREACHABLE}
    job = ScoringJob.objects.get()
    assert (job.status, job.error) == (ScoringJob.Status.FAILED, QUEUE_UNREACHABLE)  # not left queued
    private_redis.start()
    assert private_redis.queued() == 0
