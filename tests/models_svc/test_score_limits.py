"""The scoring API caps what one request scores (issue 18, point 8): items,
responses in all, and characters per text; over a cap → 413 naming the limit and
its setting, before any model is loaded."""

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

    monkeypatch.setattr(scoring, "rewards_score", no_scoring)
    return client


def _items(n_items: int, n_responses: int, text: str = "an answer") -> dict:
    return {"items": [{"prompt": f"q{i}", "responses": [text] * n_responses} for i in range(n_items)]}


def test_the_probes_64_by_64_batch_is_refused_with_the_limits(rclient):
    resp = rclient.post(URL, _items(64, 64), content_type="application/json")
    assert resp.status_code == 413
    assert resp.json() == {"detail": "64 items with 4096 responses in one request; the limits are 64 items "
                                     "(PREFLAB_SCORE_MAX_ITEMS) and 256 responses (PREFLAB_SCORE_MAX_RESPONSES) "
                                     "per request: split the batch"}


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
