"""The scoring API caps what one request scores (issue 18, point 8): items,
responses in all, and characters per text; over a cap → 413 naming the limit and
its setting, before any model is loaded. Larger batches run as a background job
with a URL for progress, cancel and the result."""

from __future__ import annotations

import pytest

from annotate.models import Role
from annotate.services import membership_set
from models_svc.services import scoring

pytestmark = pytest.mark.django_db
URL = "/api/v1/projects/helpfulness/score/"


@pytest.fixture
def rclient(client, project, owner, monkeypatch):
    membership_set(project=project, user=owner, role=Role.RESEARCHER)
    client.force_login(owner)

    def no_scoring(**kwargs):
        raise AssertionError("a refused request must not reach the model")

    monkeypatch.setattr(scoring, "rewards_score_in_worker", no_scoring)
    return client


def _items(n_items: int, n_responses: int, text: str = "an answer") -> dict:
    return {"items": [{"prompt": f"q{i}", "responses": [text] * n_responses} for i in range(n_items)]}


def test_the_probes_64_by_64_batch_is_refused_with_the_limits(rclient):
    resp = rclient.post(URL, _items(64, 64), content_type="application/json")
    assert resp.status_code == 413
    assert resp.json() == {"detail": "64 items with 4096 responses in one request; the limits are 64 items "
                                     "(PREFLAB_SCORE_MAX_ITEMS) and 256 responses (PREFLAB_SCORE_MAX_RESPONSES) "
                                     "per request: split the batch, or send \"background\": true to score up to "
                                     "20000 responses as a job"}


def test_too_many_items_is_413(rclient):
    resp = rclient.post(URL, _items(65, 1), content_type="application/json")
    assert resp.status_code == 413 and "65 items" in resp.json()["detail"]


def test_a_text_over_the_length_cap_is_413_naming_where(rclient, settings):
    settings.SCORE_MAX_TEXT_CHARS = 100
    body = {"items": [{"prompt": "q", "responses": ["ok"]},
                      {"conversation": [{"role": "user", "content": "q" * 101}], "responses": ["ok"]}]}
    resp = rclient.post(URL, body, content_type="application/json")
    assert resp.status_code == 413
    assert resp.json()["detail"] == ("items[1].conversation[0].content has 101 characters; the limit is 100 per text "
                                     "(PREFLAB_SCORE_MAX_TEXT_CHARS)")
    resp = rclient.post(URL, {"prompt": "q", "responses": ["fine", "x" * 101]}, content_type="application/json")
    assert resp.status_code == 413 and resp.json()["detail"].startswith("items[0].responses[1] has 101 characters")


def test_requests_at_the_caps_go_on_to_the_model(client, project, owner, settings):
    """At the limit the request is scored (here: 409, the project has no model yet)."""
    membership_set(project=project, user=owner, role=Role.RESEARCHER)
    client.force_login(owner)
    settings.SCORE_MAX_RESPONSES, settings.SCORE_MAX_TEXT_CHARS = 4, 10
    assert client.post(URL, _items(2, 2, "x" * 10), content_type="application/json").status_code == 409
    assert client.post(URL, _items(1, 5), content_type="application/json").status_code == 413


# --- large batches as a background job ----------------------------------------------------


class FakeModel:
    """Scores a text by its length; ``on_chunk`` runs after each chunk (to cancel midway)."""

    criteria: list = []

    def __init__(self, on_chunk=None):
        self.on_chunk, self.chunks = on_chunk, 0

    def score_items(self, flat):
        self.chunks += 1
        rows = [{"reward": float(len(text)), "std": 0.0, "conservative": float(len(text)), "criteria": {}}
                for _, text in flat]
        if self.on_chunk:
            self.on_chunk()
        return type("Scores", (), {"rows": lambda self: rows})()


@pytest.fixture
def active_model(project):
    from models_svc.models import ModelVersion, TrainingRun

    run = TrainingRun.objects.create(project=project, status=TrainingRun.Status.SUCCEEDED, config={})
    return ModelVersion.objects.create(project=project, run=run, number=1, artifact_path="/nowhere",
                                       state=ModelVersion.State.ACTIVE)


@pytest.fixture
def jclient(client, project, owner):
    membership_set(project=project, user=owner, role=Role.RESEARCHER)
    client.force_login(owner)
    return client


def test_a_large_batch_runs_as_a_job_with_a_result_url(jclient, active_model, monkeypatch, celery_eager,
                                                       django_capture_on_commit_callbacks):
    fake = FakeModel()
    monkeypatch.setattr(scoring, "load_model", lambda version: fake)
    monkeypatch.setattr(scoring, "JOB_CHUNK", 100)
    body = {**_items(100, 5, "x"), "background": True}
    body["items"][99]["responses"][4] = "longer"
    with django_capture_on_commit_callbacks(execute=True):
        resp = jclient.post(URL, body, content_type="application/json")
    assert resp.status_code == 202, resp.content
    job = resp.json()
    assert job["url"] == f"/api/v1/projects/helpfulness/score/jobs/{job['id']}/" and job["result"] is None
    done = jclient.get(job["url"]).json()
    assert (done["status"], done["progress"], done["model_version"]) == ("succeeded", 1.0, 1)
    assert fake.chunks == 5  # 500 texts in chunks of 100, progress written after each
    assert len(done["result"]["results"]) == 100 and [len(r) for r in done["result"]["results"]] == [5] * 100
    assert done["result"]["results"][99][4]["reward"] == 6.0


def test_cancel_stops_a_running_job_at_its_next_chunk(jclient, active_model, monkeypatch, celery_eager,
                                                      django_capture_on_commit_callbacks):
    from models_svc.models import ScoringJob

    def cancel():
        ScoringJob.objects.update(cancel_requested=True)

    fake = FakeModel(on_chunk=cancel)
    monkeypatch.setattr(scoring, "load_model", lambda version: fake)
    monkeypatch.setattr(scoring, "JOB_CHUNK", 10)
    with django_capture_on_commit_callbacks(execute=True):
        job = jclient.post(URL, {**_items(10, 10), "background": True}, content_type="application/json").json()
    done = jclient.get(job["url"]).json()
    assert (done["status"], done["result"], fake.chunks) == ("cancelled", None, 1)
    assert 0 < done["progress"] < 1


def test_a_queued_job_is_cancelled_at_once(jclient, active_model):
    job = jclient.post(URL, {**_items(1, 2), "background": True}, content_type="application/json").json()
    assert job["status"] == "queued"
    resp = jclient.post(job["cancel_url"])
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"


def test_a_job_has_its_own_cap_and_needs_a_model(jclient, project, settings):
    from models_svc.models import ScoringJob

    settings.SCORE_JOB_MAX_RESPONSES = 10
    resp = jclient.post(URL, {**_items(3, 4), "background": True}, content_type="application/json")
    assert resp.status_code == 413
    assert resp.json()["detail"] == ("12 responses in one batch; the limit is 10 per background job "
                                     "(PREFLAB_SCORE_JOB_MAX_RESPONSES): split the batch")
    resp = jclient.post(URL, {**_items(2, 2), "background": True}, content_type="application/json")
    assert resp.status_code == 409 and not ScoringJob.objects.exists()
