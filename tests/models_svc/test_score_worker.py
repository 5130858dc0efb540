"""A synchronous score (``POST …/score/`` without ``background``) is run by a Celery
worker on the ``score`` queue while the request waits, bounded by
``PREFLAB_SCORE_WAIT_S``: the web process never loads torch or a model. No answer in
time is a 504 telling the caller to use a background job, and the withdrawn task is
dropped by a worker that comes later instead of scoring for nobody."""

from __future__ import annotations

import json
import time

import pytest
import redis
from celery import Celery
from celery.result import AsyncResult

from annotate.jobs import task_call
from annotate.models import Role
from annotate.services import membership_set
from models_svc import tasks
from models_svc.models import ModelVersion, TrainingRun
from models_svc.services import scoring

from tests.conftest import celery_worker, point_celery_at

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
URL = "/api/v1/projects/helpfulness/score/"
BODY = {"items": [{"prompt": "q", "responses": ["a", "bb"]}]}


@pytest.fixture
def rclient(client, project, owner):
    membership_set(project=project, user=owner, role=Role.RESEARCHER)
    client.force_login(owner)
    return client


@pytest.fixture
def unloadable_model(project):
    """An active version whose artifact does not exist: any attempt to score it fails."""
    run = TrainingRun.objects.create(project=project, status=TrainingRun.Status.SUCCEEDED, config={})
    return ModelVersion.objects.create(project=project, run=run, number=1, artifact_path="/nowhere",
                                       state=ModelVersion.State.ACTIVE)


def test_the_synchronous_score_task_goes_to_the_score_queue(settings):
    from preflab.celery import app

    assert settings.SCORE_QUEUE == "score"
    assert app.amqp.router.route({}, tasks.score_now.name)["queue"].name == "score"
    assert app.amqp.router.route({}, tasks.train_reward_model.name)["queue"].name == "celery"


def test_no_answer_in_time_is_504_and_the_withdrawn_task_is_dropped_by_a_later_worker(
        rclient, unloadable_model, app_on_test_redis, settings, tmp_path):
    settings.SCORE_WAIT_S = 1
    queue = redis.Redis.from_url(app_on_test_redis)
    start = time.monotonic()
    resp = rclient.post(URL, BODY, content_type="application/json")
    took = time.monotonic() - start
    assert resp.status_code == 504, resp.content
    assert resp.json() == {"detail": "the scoring worker gave no answer within 1 s (PREFLAB_SCORE_WAIT_S), so the "
                                     "request was withdrawn; send the batch with \"background\": true to score it as "
                                     "a job, and read the result from its url"}
    assert took < 5, f"took {took:.1f}s"
    # the task waits on the score queue (no worker consumes it), with its expiry
    (message,) = [json.loads(m) for m in queue.lrange("score", 0, -1)]
    assert message["headers"]["task"] == "models_svc.tasks.score_now" and message["headers"]["expires"]
    task_id = message["headers"]["id"]

    client = Celery(broker=app_on_test_redis, backend=app_on_test_redis, set_as_current=False)
    with celery_worker(app_on_test_redis, tmp_path):
        deadline = time.monotonic() + 60
        while AsyncResult(task_id, app=client).state != "REVOKED":
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.3)
        assert queue.llen("score") == 0
    log = (tmp_path / "worker.log").read_text()
    # dropped unrun (its message had expired): scoring /nowhere would have failed the task instead
    assert f"Discarding revoked task: models_svc.tasks.score_now[{task_id}]" in log
    assert "raised unexpected" not in log


def test_an_error_in_the_worker_reaches_the_caller(worker, app_on_test_redis, project):
    """The service's LookupError comes back through the result store (the API's 409)."""
    with pytest.raises(LookupError, match="the model version was deleted before it could score"):
        task_call(task=tasks.score_now, args=(987654, BODY["items"]), wait_s=60, timeout_detail="unused")


def test_the_embedded_default_broker_and_result_files_carry_a_synchronous_call(project, tmp_path, settings):
    """scripts/dev.sh's set-up (no Redis): the filesystem broker, results in files."""
    from preflab.celery import ping

    data = tmp_path / "worker-data"
    folders = {name: data / "broker" / name for name in ("queue", "processed", "control")}
    for folder in [*folders.values(), data / "results"]:
        folder.mkdir(parents=True)
    saved = point_celery_at(None, broker_url="filesystem://", result_backend=f"file://{data / 'results'}",
                            broker_transport_options={
                                **settings.CELERY_BROKER_TRANSPORT_OPTIONS, "data_folder_in": str(folders["queue"]),
                                "data_folder_out": str(folders["queue"]), "processed_folder": str(folders["processed"]),
                                "control_folder": str(folders["control"])})
    try:
        with celery_worker(None, tmp_path) as proc:
            answer = task_call(task=ping, args=("over files",), wait_s=60, timeout_detail="unused")
            assert (answer["value"], answer["pid"]) == ("over files", proc.pid)
            with pytest.raises(LookupError, match="the model version was deleted"):  # the score queue, files too
                task_call(task=tasks.score_now, args=(987654, BODY["items"]), wait_s=60, timeout_detail="unused")
    finally:
        point_celery_at(None, saved)
    assert list((data / "results").iterdir()) == []  # each answer was removed once read


def test_a_score_with_a_worker_answers_from_the_worker(rclient, worker, app_on_test_redis, project, tiny):
    from tests.factories import fast_training, labelled_for_training
    from models_svc.services import lifecycle

    labelled_for_training(project, tiny, prompts=3)
    run = lifecycle.training_run_execute(run_id=lifecycle.training_run_enqueue(
        project=project, objective="bt", overrides=fast_training()).pk)
    lifecycle.model_version_promote(version=run.version)
    scoring._LOADED.clear()
    resp = rclient.post(URL, BODY, content_type="application/json")
    assert resp.status_code == 200, resp.content
    assert scoring._LOADED == {}  # not scored in this process
    expected = scoring.rewards_score(project=project, items=[
        {"conversation": [{"role": "user", "content": "q"}], "responses": ["a", "bb"]}])
    got = resp.json()
    assert (got["model_version"], got["criteria"]) == (expected["model_version"], expected["criteria"])
    assert [len(item) for item in got["results"]] == [2]
    assert [s["reward"] for s in got["results"][0]] == pytest.approx(
        [s["reward"] for s in expected["results"][0]], abs=1e-5)
