"""POST/PATCH /api/v1/projects/… and /members/: the services behind the pages,
with refusals that name the field and change nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from annotate import queue
from annotate.models import Assignment, Judgment, Membership, Project, Role
from rubrics import services as rubric_services
from tests.conftest import make_user
from tests.factories import fill

pytestmark = pytest.mark.django_db


def _as(client, user):
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=user).key}"
    return client


def test_researcher_creates_a_project_and_becomes_its_researcher(client, owner, project):
    version = rubric_services.rubric_version_publish(
        version=rubric_services.rubric_create_from_template(template="hh", slug="hh", name="HH"))
    resp = _as(client, owner).post("/api/v1/projects/", {
        "name": "Summaries", "slug": "summaries", "task_kinds": ["pairwise", "ranking"], "overlap": 3,
        "lease_ttl_seconds": 600, "gold_rate": 0.05, "license": "cc-by-4.0", "guidelines": "Be *fair*.",
        "rubric_version": {"rubric": "hh", "number": version.number}}, content_type="application/json")
    assert resp.status_code == 201, resp.json()
    body = resp.json()
    assert (body["slug"], body["overlap"], body["role"], body["rubric_version"]) == (
        "summaries", 3, "researcher", {"rubric": "hh", "number": version.number})
    created = Project.objects.get(slug="summaries")
    assert created.rubric_version == version and created.task_kinds == ["pairwise", "ranking"]
    assert Membership.objects.get(project=created, user=owner).role == Role.RESEARCHER


def test_create_refusals_name_their_fields(client, owner, project):
    api = _as(client, owner)
    resp = api.post("/api/v1/projects/", {"name": "X", "slug": project.slug, "overlap": 0, "gold_rate": 1.5,
                                          "task_kinds": ["pairwise", "telepathy"]}, content_type="application/json")
    assert resp.status_code == 400
    errors = resp.json()
    assert {"overlap", "gold_rate", "task_kinds"} <= set(errors), errors
    draft = rubric_services.rubric_create_from_template(template="hh", slug="draft", name="Draft")
    resp = api.post("/api/v1/projects/", {"name": "Y", "slug": "y", "rubric_version": {"rubric": "draft", "number": draft.number}},
                    content_type="application/json")
    assert resp.status_code == 400 and "not published" in resp.json()["rubric_version"][0]
    resp = api.post("/api/v1/projects/", {"name": "Z", "slug": project.slug}, content_type="application/json")
    assert resp.status_code == 400 and "slug" in resp.json()
    assert Project.objects.count() == 1


def test_annotator_may_not_create_a_project(client, annotator, project):
    resp = _as(client, annotator).post("/api/v1/projects/", {"name": "Mine", "slug": "mine"}, content_type="application/json")
    assert resp.status_code == 403 and "researchers" in resp.json()["detail"]
    assert not Project.objects.filter(slug="mine").exists()


def test_patch_changes_settings_and_refuses_what_breaks_work(client, owner, annotator, project):
    api = _as(client, owner)
    resp = api.patch(f"/api/v1/projects/{project.slug}/", {"overlap": 2, "lease_ttl_seconds": 120},
                     content_type="application/json")
    assert resp.status_code == 200 and resp.json()["overlap"] == 2
    project.refresh_from_db()
    fill(project, prompts=1, responses=2)
    for user in (annotator, make_user("second")):
        Membership.objects.get_or_create(project=project, user=user, defaults={"role": Role.ANNOTATOR})
        a = queue.assignment_lease(project=project, annotator=user)
        Assignment.objects.filter(pk=a.pk).update(state=Assignment.State.SUBMITTED)
    resp = api.patch(f"/api/v1/projects/{project.slug}/", {"overlap": 1, "name": "Renamed"}, content_type="application/json")
    assert resp.status_code == 400 and "cannot go below 2" in resp.json()["overlap"][0]
    resp = api.patch(f"/api/v1/projects/{project.slug}/", {"slug": "moved"}, content_type="application/json")
    assert resp.status_code == 400 and "slug" in resp.json()
    project.refresh_from_db()
    assert (project.slug, project.overlap, project.name, project.lease_ttl_seconds) == ("helpfulness", 2, "Helpfulness", 120)


def test_patch_and_members_are_for_researchers(client, annotator, outsider, project):
    api = _as(client, annotator)
    assert api.patch(f"/api/v1/projects/{project.slug}/", {"overlap": 5}, content_type="application/json").status_code == 403
    assert api.get(f"/api/v1/projects/{project.slug}/members/").status_code == 403
    assert api.post(f"/api/v1/projects/{project.slug}/members/", {"username": "x", "create": "password"},
                    content_type="application/json").status_code == 403
    client.defaults.pop("HTTP_AUTHORIZATION")
    api = _as(client, outsider)
    missing = api.get("/api/v1/projects/no-such/members/")
    hidden = api.get(f"/api/v1/projects/{project.slug}/members/")
    # identical bodies are the access helpers' business (tests/annotate/test_access.py)
    assert hidden.status_code == missing.status_code == 404 and project.name not in hidden.content.decode()
    project.refresh_from_db()
    assert project.overlap == 1 and not get_user_model().objects.filter(username="x").exists()


def test_members_api_adds_creates_sets_roles_and_removes(client, owner, annotator, project):
    api = _as(client, owner)
    make_user("kim")
    resp = api.post(f"/api/v1/projects/{project.slug}/members/", {"username": "kim"}, content_type="application/json")
    assert resp.status_code == 201 and resp.json()["role"] == "annotator"
    resp = api.post(f"/api/v1/projects/{project.slug}/members/", {"username": "ghost"}, content_type="application/json")
    assert resp.status_code == 400 and "no active account" in resp.json()["username"][0]
    resp = api.post(f"/api/v1/projects/{project.slug}/members/", {"username": "newbie", "create": "password"},
                    content_type="application/json")
    assert resp.status_code == 201
    assert get_user_model().objects.get(username="newbie").check_password(resp.json()["password"])
    resp = api.post(f"/api/v1/projects/{project.slug}/members/", {"username": "invitee", "create": "invite"},
                    content_type="application/json")
    assert resp.status_code == 201 and "/invite/" in resp.json()["invite_url"] and "password" not in resp.json()
    resp = api.patch(f"/api/v1/projects/{project.slug}/members/kim/", {"role": "researcher"}, content_type="application/json")
    assert resp.status_code == 200 and resp.json()["role"] == "researcher"
    resp = api.patch(f"/api/v1/projects/{project.slug}/members/kim/", {"role": "boss"}, content_type="application/json")
    assert resp.status_code == 400 and "role" in resp.json()

    fill(project, prompts=1, responses=2)
    lease = queue.assignment_lease(project=project, annotator=annotator)
    Judgment.objects.create(comparison=lease.comparison, annotator=annotator, choice="B", strength=2)
    resp = api.delete(f"/api/v1/projects/{project.slug}/members/{annotator.username}/")
    assert resp.json() == {"username": annotator.username, "removed": True, "leases_ended": 1}
    assert Assignment.objects.get(pk=lease.pk).state == Assignment.State.EXPIRED
    assert Judgment.objects.filter(annotator=annotator).exists()
    listed = api.get(f"/api/v1/projects/{project.slug}/members/").json()
    assert sorted(m["username"] for m in listed) == ["invitee", "kim", "newbie", owner.username]
    assert api.delete(f"/api/v1/projects/{project.slug}/members/{annotator.username}/").status_code == 404
