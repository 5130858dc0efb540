"""The queue through the REST API and the pages: same service, same access rules."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotate.models import Assignment, Judgment

from tests.factories import annotators, fill, make_gold

pytestmark = pytest.mark.django_db


def _api(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def test_next_submit_and_replay_through_the_api(project, annotator):
    fill(project, prompts=2)
    api = _api(annotator)
    task = api.post("/api/v1/projects/helpfulness/tasks/next/", {"kind": "pairwise"}, format="json").json()
    assert task["kind"] == "pairwise" and [r["label"] for r in task["responses"]] == ["A", "B"]
    assert task["conversation"][0]["content"].startswith("Question")
    body = {"preference": -3, "rationale": "A is right", "idempotency_key": "abc", "time_on_task_ms": 4200}
    first = api.post(f"/api/v1/tasks/{task['assignment']}/submit/", body, format="json")
    again = api.post(f"/api/v1/tasks/{task['assignment']}/submit/", body, format="json")
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    j = Judgment.objects.get()
    left = task["responses"][0]["id"]
    assert j.shown_left_id == left and j.time_on_task_ms == 4200
    assert j.strength == (-3 if left == j.comparison.response_a_id else 3)


def test_invalid_submit_names_the_field_and_stores_nothing(project, annotator):
    fill(project, prompts=1)
    api = _api(annotator)
    task = api.post("/api/v1/projects/helpfulness/tasks/next/", {}, format="json").json()
    resp = api.post(f"/api/v1/tasks/{task['assignment']}/submit/", {"flags": ["on-fire"]}, format="json")
    assert resp.status_code == 400
    assert set(resp.json()["errors"]) == {"preference", "flags"}
    assert Judgment.objects.count() == 0
    assert Assignment.objects.get().state == "active"


def test_no_task_left_answers_204(project, annotator):
    api = _api(annotator)
    assert api.post("/api/v1/projects/helpfulness/tasks/next/", {}, format="json").status_code == 204


def test_annotator_cannot_fetch_or_submit_another_annotators_task(project):
    fill(project, prompts=2)
    alice, bob = annotators(project, 2)
    task = _api(alice).post("/api/v1/projects/helpfulness/tasks/next/", {}, format="json").json()
    aid = task["assignment"]
    assert _api(bob).get(f"/api/v1/tasks/{aid}/").status_code == 404
    assert _api(bob).post(f"/api/v1/tasks/{aid}/submit/", {"preference": 1}, format="json").status_code == 404
    assert _api(bob).post(f"/api/v1/tasks/{aid}/skip/", {"reason": "x"}, format="json").status_code == 404
    web = Client()
    web.force_login(bob)
    resp = web.post(f"/p/helpfulness/tasks/{aid}/submit/", {"preference": "1"})
    assert resp.status_code == 404
    assert Judgment.objects.count() == 0 and Assignment.objects.get(pk=aid).state == "active"


def test_outsider_cannot_take_tasks(project, outsider):
    fill(project, prompts=1)
    assert _api(outsider).post("/api/v1/projects/helpfulness/tasks/next/", {}, format="json").status_code == 404
    web = Client()
    web.force_login(outsider)
    assert web.get("/p/helpfulness/work/pairwise/").status_code == 404
    assert not Assignment.objects.exists()


def test_annotator_never_sees_gold_or_other_labels_on_the_page(project):
    fill(project, prompts=1)
    make_gold(project, 1, choice="B")
    project.gold_rate = 1.0
    project.save()
    alice, bob = annotators(project, 2)
    # alice answers the gold task with a rationale bob must never see
    task = _api(alice).post("/api/v1/projects/helpfulness/tasks/next/", {}, format="json").json()
    _api(alice).post(f"/api/v1/tasks/{task['assignment']}/submit/", {"preference": 2, "rationale": "ALICE-SECRET"}, format="json")
    web = Client()
    web.force_login(bob)
    html = web.get("/p/helpfulness/work/pairwise/").content.decode()
    assert "Response A" in html  # bob got the same (gold) task
    for leak in ("ALICE-SECRET", "gold", "Gold", "alice"):
        assert leak not in html.replace("hx-", ""), leak
    api_task = _api(bob).get(f"/api/v1/tasks/{Assignment.objects.get(annotator=bob).pk}/").json()
    assert "gold" not in repr(api_task).lower() and "source" not in repr(api_task)


def test_annotator_cannot_open_the_progress_page_but_a_researcher_can(project, annotator, owner):
    fill(project, prompts=1)
    web = Client()
    web.force_login(annotator)
    refused = web.get("/p/helpfulness/progress/")
    assert refused.status_code == 403 and "researchers may open this page" in refused.content.decode()
    web.force_login(owner)
    html = web.get("/p/helpfulness/progress/").content.decode()
    assert 'data-kind="pairwise"' in html


def test_web_submit_swaps_in_the_next_task_and_progress_shows_it(project, annotator, owner):
    fill(project, prompts=2)
    web = Client()
    web.force_login(annotator)
    page = web.get("/p/helpfulness/work/pairwise/").content.decode()
    first = Assignment.objects.get(annotator=annotator)
    assert f'data-assignment="{first.pk}"' in page
    resp = web.post(f"/p/helpfulness/tasks/{first.pk}/submit/", {"preference": "0", "idempotency_key": "k1"}, HTTP_HX_REQUEST="true")
    html = resp.content.decode()
    assert "<html" not in html  # a partial, not a page
    second = Assignment.objects.filter(annotator=annotator, state="active").get()
    assert f'data-assignment="{second.pk}"' in html and second.pk != first.pk
    assert Judgment.objects.get().choice == "tie"
    web.force_login(owner)
    prog = web.get("/p/helpfulness/progress/", HTTP_HX_REQUEST="true").content.decode()
    assert f'<tr data-annotator="{annotator.username}"><td>{annotator.username}</td><td class="pairwise">1</td>' in prog


def test_openapi_schema_lists_the_queue_endpoints(annotator):
    client = APIClient()
    client.force_authenticate(annotator)
    resp = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert resp.status_code == 200
    schema = resp.json() if resp["Content-Type"].startswith("application/vnd.oai.openapi+json") else None
    text = resp.content.decode()
    for path in ("/api/v1/projects/{slug}/tasks/next/", "/api/v1/tasks/{assignment_id}/submit/", "/api/v1/tasks/{assignment_id}/skip/"):
        assert path in text
    assert schema is None or "SubmitRequest" in schema["components"]["schemas"]


def test_tagged_spans_are_shown_back_to_their_annotator_only(project, annotator):
    from annotate import queue, submit
    from annotate.models import TaskKind

    from tests.factories import pin_rubric

    project.task_kinds = ["pairwise", "rating"]
    project.save()
    pin_rubric(project, criteria=[{"key": "errs", "name": "Errors", "scale": "spans",
                                   "error_types": [{"key": "factual", "name": "Factual"}]}])
    fill(project, prompts=1, responses=2)
    a = queue.assignment_lease(project=project, annotator=annotator, kind=TaskKind.RATING)
    submit.rating_submit(assignment=a, user=annotator, scores={},
                        spans=[{"response": a.response_id, "start": 7, "end": 8, "type": "factual"}])
    web = Client()
    web.force_login(annotator)
    html = web.get("/p/helpfulness/mine/").content.decode()
    text = a.response.text
    assert f'{text[:7]}<mark data-type="factual" title="factual">{text[7:8]}</mark>{text[8:]}' in html
    (other,) = annotators(project, 1, prefix="other")
    web.force_login(other)
    assert "<mark" not in web.get("/p/helpfulness/mine/").content.decode()
