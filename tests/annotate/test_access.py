"""Who can see what: members only, by role, on pages and through the API."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from django.utils.html import escape
from rest_framework.authtoken.models import Token

from annotate.access import role_refusal
from annotate.models import ImportJob

pytestmark = pytest.mark.django_db


def test_anonymous_is_sent_to_login(client, project):
    resp = client.get(f"/p/{project.slug}/")
    assert resp.status_code == 302 and resp["Location"].startswith("/login/")


def test_annotator_home_lists_only_own_projects(client, annotator, project, other_project):
    client.force_login(annotator)
    html = client.get("/").content.decode()
    assert project.name in html
    assert other_project.name not in html


def test_annotator_cannot_open_a_project_they_do_not_belong_to(client, annotator, other_project):
    client.force_login(annotator)
    resp = client.get(f"/p/{other_project.slug}/")
    assert resp.status_code == 404
    assert other_project.name not in resp.content.decode()


def test_annotator_cannot_reach_import_page_or_job_list(client, annotator, project):
    client.force_login(annotator)
    # a member: told who may open it, not shown a missing page
    for url in (f"/p/{project.slug}/import/", f"/p/{project.slug}/imports/"):
        resp = client.get(url)
        assert resp.status_code == 403 and escape(role_refusal("researcher")) in resp.content.decode()
    page = client.get(f"/p/{project.slug}/").content.decode()
    assert "Import data" not in page


def test_annotator_cannot_upload_through_the_page(client, annotator, project, tmp_path):
    client.force_login(annotator)
    f = tmp_path / "x.jsonl"
    f.write_text(json.dumps({"prompt": "q", "responses": ["a", "b"]}) + "\n")
    with open(f, "rb") as fh:
        resp = client.post(f"/p/{project.slug}/import/", {"format": "jsonl", "file": fh})
    assert resp.status_code == 403
    assert not ImportJob.objects.exists()


def test_staff_sees_every_project(client, admin_user, project, other_project):
    client.force_login(admin_user)
    html = client.get("/").content.decode()
    assert project.name in html and other_project.name in html


def _api(client, user):
    token = Token.objects.create(user=user)
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {token.key}"
    return client


def test_api_lists_only_member_projects(client, annotator, project, other_project):
    data = _api(client, annotator).get("/api/v1/projects/").json()
    assert [p["slug"] for p in data] == [project.slug]


def test_api_hides_non_member_project(client, annotator, other_project):
    resp = _api(client, annotator).get(f"/api/v1/projects/{other_project.slug}/")
    assert resp.status_code == 404


def test_api_refuses_anonymous(client, project):
    assert client.get("/api/v1/projects/").status_code == 401
    assert client.get(f"/api/v1/projects/{project.slug}/").status_code == 401


def test_api_token_obtained_with_password(client, annotator, project):
    resp = client.post("/api/v1/auth/token/", {"username": annotator.username, "password": "pw-for-tests-only"})
    token = resp.json()["token"]
    data = client.get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Token {token}").json()
    assert [p["slug"] for p in data] == [project.slug]


def test_api_import_is_for_researchers_only(client, annotator, project, tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text(json.dumps({"prompt": "q", "responses": ["a", "b"]}) + "\n")
    with open(f, "rb") as fh:
        resp = _api(client, annotator).post(f"/api/v1/projects/{project.slug}/imports/", {"format": "jsonl", "file": fh})
    assert resp.status_code == 403 and resp.json() == {"detail": role_refusal("researcher")}
    assert not ImportJob.objects.exists()


def test_api_import_by_researcher_is_queued_and_runs(client, owner, project, tmp_path, django_capture_on_commit_callbacks):
    from preflab.celery import app

    f = tmp_path / "x.jsonl"
    f.write_text(
        json.dumps({"id": "q1", "prompt": "q", "responses": ["a", "b"],
                    "labels": [{"annotator": "kim", "a": 0, "b": 1, "choice": "tie", "strength": 0}]}) + "\n"
    )
    app.conf.task_always_eager = True
    try:
        with open(f, "rb") as fh, django_capture_on_commit_callbacks(execute=True):
            resp = _api(client, owner).post(f"/api/v1/projects/{project.slug}/imports/", {"format": "jsonl", "file": fh})
    finally:
        app.conf.task_always_eager = False
    assert resp.status_code == 202
    job_id = resp.json()["id"]
    job = client.get(f"/api/v1/projects/{project.slug}/imports/{job_id}/").json()
    assert job["status"] == "succeeded"
    assert job["counts"]["judgments_created"] == 1


def test_api_import_rejects_unknown_format(client, owner, project, tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text("{}\n")
    with open(f, "rb") as fh:
        resp = _api(client, owner).post(f"/api/v1/projects/{project.slug}/imports/", {"format": "nope", "file": fh})
    assert resp.status_code == 400 and "format" in resp.json()
    assert not ImportJob.objects.exists()


def test_failed_import_shows_line_and_field_on_project_page(client, owner, project, tmp_path, django_capture_on_commit_callbacks):
    from preflab.celery import app

    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"prompt": "q", "responses": ["a"]}) + "\n" + json.dumps({"prompt": "q2"}) + "\n")
    client.force_login(owner)
    app.conf.task_always_eager = True
    try:
        with open(f, "rb") as fh, django_capture_on_commit_callbacks(execute=True):
            client.post(f"/p/{project.slug}/import/", {"format": "jsonl", "file": fh})
    finally:
        app.conf.task_always_eager = False
    html = client.get(f"/p/{project.slug}/").content.decode()
    assert "line 2, field &#x27;responses&#x27;: missing required field" in html
    assert "nothing was imported" in html


def test_healthz_reports_database(client, db):
    data = client.get("/healthz").json()
    assert data["status"] == "ok"


RESEARCHER_PAGES = ("project-settings", "members", "quality-dashboard", "model-page", "exports", "progress")


@pytest.mark.parametrize("name", RESEARCHER_PAGES)
def test_an_annotator_on_a_researcher_page_gets_403_saying_who_may_open_it(client, annotator, project, name):
    client.force_login(annotator)
    resp = client.get(reverse(name, args=[project.slug]))
    assert resp.status_code == 403
    body = resp.content.decode()
    assert 'id="forbidden"' in body and "Only this project&#x27;s researchers may open this page." in body
    assert "Traceback" not in body


@pytest.mark.parametrize("name", RESEARCHER_PAGES)
def test_a_non_member_on_a_researcher_page_gets_exactly_the_missing_page(client, outsider, project, name):
    client.force_login(outsider)
    resp, gone = client.get(reverse(name, args=[project.slug])), client.get(reverse(name, args=["no-such-project"]))
    assert resp.status_code == 404
    assert (resp.content, resp["Content-Type"]) == (gone.content, gone["Content-Type"])
    assert "researchers" not in resp.content.decode()


def test_the_members_api_refuses_an_annotator_with_403_and_a_stranger_with_the_missing_404(client, annotator,
                                                                                             outsider, project):
    url = reverse("api-project-members", args=[project.slug])
    resp = _api(client, annotator).post(url, {"username": outsider.username}, content_type="application/json")
    assert resp.status_code == 403 and resp.json() == {"detail": "Only this project's researchers may open this page."}
    stranger = _api(client, outsider)
    resp, gone = stranger.get(url), stranger.get(reverse("api-project-members", args=["no-such-project"]))
    assert resp.status_code == 404 and resp.content == gone.content
    assert not project.memberships.filter(user=outsider).exists()
