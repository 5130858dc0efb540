"""The project pages: New project, Settings, Members, password and invites.
Non-members get the same 404 as a missing project; an annotator is refused with 403
and nothing changes."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model

from annotate import queue, services
from annotate.models import Assignment, Membership, Project, Role
from tests.conftest import make_user
from tests.factories import fill

pytestmark = pytest.mark.django_db

SETTINGS = {"name": "Summaries", "description": "", "guidelines": "", "task_kinds": ["pairwise"], "overlap": "2",
            "lease_ttl_seconds": "900", "gold_rate": "0", "license": "", "pause_after_gold": "5", "rubric_version": ""}


def test_researcher_creates_a_project_and_runs_it(client, owner, project):
    client.force_login(owner)
    assert 'href="/projects/new/"' in client.get("/").content.decode()
    resp = client.post("/projects/new/", {**SETTINGS, "slug": "summaries", "task_kinds": ["pairwise", "rating"],
                                          "guidelines": "Prefer **faithful** summaries."})
    assert resp.status_code == 302 and resp["Location"] == "/p/summaries/"
    created = Project.objects.get(slug="summaries")
    assert (created.overlap, created.task_kinds, created.created_by) == (2, ["pairwise", "rating"], owner)
    assert Membership.objects.get(project=created, user=owner).role == Role.RESEARCHER
    page = client.get("/p/summaries/").content.decode()
    assert 'href="/p/summaries/settings/"' in page and 'href="/p/summaries/members/"' in page


def test_new_project_errors_name_their_field_and_create_nothing(client, owner, project):
    client.force_login(owner)
    resp = client.post("/projects/new/", {**SETTINGS, "slug": project.slug, "overlap": "0", "task_kinds": []})
    html = resp.content.decode()
    assert resp.status_code == 200
    for field in ("slug", "overlap", "task_kinds"):
        assert re.search(rf'data-field="{field}">.*?<li>', html, re.S), field
    assert "choose at least one task kind" in html and "already exists" in html
    assert Project.objects.count() == 1


def test_annotators_may_not_create_projects_and_are_told_who_may(client, annotator, project):
    client.force_login(annotator)
    assert "/projects/new/" not in client.get("/").content.decode()
    page = client.get("/projects/new/")
    assert page.status_code == 403
    assert "Only staff and researchers of a project may create projects." in page.content.decode()
    resp = client.post("/projects/new/", {**SETTINGS, "slug": "mine"})
    assert resp.status_code == 403
    assert not Project.objects.filter(slug="mine").exists()


def test_settings_refuse_lowering_overlap_below_the_labels_given(client, owner, project, annotator):
    project = services.project_update(project=project, overlap=2)
    fill(project, prompts=1, responses=2)
    for user in (annotator, make_user("second")):
        Membership.objects.get_or_create(project=project, user=user, defaults={"role": Role.ANNOTATOR})
        a = queue.assignment_lease(project=project, annotator=user)
        Assignment.objects.filter(pk=a.pk).update(state=Assignment.State.SUBMITTED)
    client.force_login(owner)
    resp = client.post(f"/p/{project.slug}/settings/", {**SETTINGS, "overlap": "1", "name": "Renamed"})
    assert re.search(r'data-field="overlap">.*cannot go below 2', resp.content.decode(), re.S)
    project.refresh_from_db()
    assert (project.overlap, project.name) == (2, "Helpfulness")
    resp = client.post(f"/p/{project.slug}/settings/", {**SETTINGS, "overlap": "3", "gold_rate": "0.1"})
    assert resp.status_code == 302
    project.refresh_from_db()
    assert (project.overlap, project.gold_rate, project.name) == (3, 0.1, "Summaries")


def test_settings_and_members_are_hidden_from_non_members_and_refused_to_annotators(client, annotator, outsider, project):
    before = list(Membership.objects.order_by("pk").values())
    client.force_login(outsider)
    for url in (f"/p/{project.slug}/settings/", f"/p/{project.slug}/members/", "/p/no-such-project/members/"):
        assert client.get(url).status_code == 404
    client.force_login(annotator)
    assert client.get(f"/p/{project.slug}/members/").status_code == 403
    assert client.post(f"/p/{project.slug}/members/create/", {"username": "sneaky", "role": "researcher",
                                                               "how": "password"}).status_code == 403
    assert client.post(f"/p/{project.slug}/settings/", {**SETTINGS, "overlap": "9"}).status_code == 403
    assert list(Membership.objects.order_by("pk").values()) == before
    assert not get_user_model().objects.filter(username="sneaky").exists()
    project.refresh_from_db()
    assert project.overlap == 1


def test_markdown_preview_renders_sanitised(client, owner):
    client.force_login(owner)
    html = client.post("/markdown/preview/", {"guidelines": "**bold** <script>x()</script>"}).content.decode()
    assert "<strong>bold</strong>" in html and "<script>" not in html


def test_members_page_creates_an_account_with_a_one_time_password_shown_once(client, owner, project):
    client.force_login(owner)
    resp = client.post(f"/p/{project.slug}/members/create/", {"username": "newbie", "role": "annotator", "how": "password"})
    password = re.search(r'id="one-time-password">([^<]+)<', resp.content.decode()).group(1)
    assert get_user_model().objects.get(username="newbie").check_password(password)
    assert password not in client.get(f"/p/{project.slug}/members/").content.decode()
    client.logout()
    assert client.login(username="newbie", password=password)
    assert project.name in client.get("/").content.decode()


def test_invite_link_sets_the_password_once(client, owner, project):
    client.force_login(owner)
    resp = client.post(f"/p/{project.slug}/members/create/", {"username": "invitee", "role": "annotator", "how": "invite"})
    url = re.search(r'id="invite-url" class="wrap">http://testserver([^<]+)<', resp.content.decode()).group(1)
    client.logout()
    form_url = client.get(url)["Location"]  # Django moves the token into the session first
    assert "Welcome, invitee" in client.get(form_url).content.decode()
    resp = client.post(form_url, {"new_password1": "Chosen-by-them-42", "new_password2": "Chosen-by-them-42"})
    assert resp.status_code == 302
    assert client.login(username="invitee", password="Chosen-by-them-42")
    client.logout()
    assert "no longer works" in client.get(url, follow=True).content.decode()


def test_members_page_adds_sets_roles_and_removes(client, owner, annotator, project):
    kim = make_user("kim")
    client.force_login(owner)
    client.post(f"/p/{project.slug}/members/add/", {"username": "kim", "role": "annotator"})
    assert Membership.objects.get(project=project, user=kim).role == Role.ANNOTATOR
    resp = client.post(f"/p/{project.slug}/members/add/", {"username": "ghost", "role": "annotator"})
    assert resp.status_code == 400 and "no active account" in resp.content.decode()
    client.post(f"/p/{project.slug}/members/{kim.pk}/role/", {"role": "researcher"})
    assert Membership.objects.get(project=project, user=kim).role == Role.RESEARCHER
    client.post(f"/p/{project.slug}/members/{annotator.pk}/remove/")
    assert not Membership.objects.filter(project=project, user=annotator).exists()
    html = client.get(f"/p/{project.slug}/members/").content.decode()
    assert 'data-member="kim"' in html and f'data-member="{annotator.username}"' not in html


def test_removing_the_last_researcher_is_refused_in_words(client, owner, project):
    client.force_login(owner)
    resp = client.post(f"/p/{project.slug}/members/{owner.pk}/remove/", follow=True)
    assert "the project&#x27;s only researcher" in resp.content.decode()
    assert Membership.objects.filter(project=project, user=owner, role=Role.RESEARCHER).exists()


def test_user_changes_their_own_password(client, annotator):
    client.force_login(annotator)
    resp = client.post("/account/password/", {"old_password": "pw-for-tests-only", "new_password1": "A-new-secret-77",
                                               "new_password2": "A-new-secret-77"})
    assert resp.status_code == 302
    annotator.refresh_from_db()
    assert annotator.check_password("A-new-secret-77")


def test_pin_selector_preselects_nothing_when_no_rubric_is_pinned(client, owner, project):
    from rubrics import services as rubric_services

    version = rubric_services.rubric_version_publish(
        version=rubric_services.rubric_create_from_template(template="hh", slug="hh", name="HH"))
    client.force_login(owner)
    select = re.search(r'<select id="pin-version".*?</select>', client.get(f"/p/{project.slug}/").content.decode(), re.S).group(0)
    assert '<option value="" selected disabled>' in select and f'value="{version.pk}" selected' not in select
    services.project_update(project=project, rubric_version=version)
    select = re.search(r'<select id="pin-version".*?</select>', client.get(f"/p/{project.slug}/").content.decode(), re.S).group(0)
    assert f'value="{version.pk}" selected' in select and 'value=""' not in select


def test_counts_use_plural_forms(client, owner, annotator, project):
    from tests.factories import pin_rubric

    fill(project, prompts=1, responses=2)
    client.force_login(owner)
    html = client.get(f"/p/{project.slug}/").content.decode()
    assert "<b>1</b><span>prompt</span>" in html and "<b>2</b><span>responses</span>" in html
    assert "<b>1</b><span>comparison</span>" in html and "<b>0</b><span>judgments</span>" in html
    pin_rubric(project, criteria=[{"key": "correct", "name": "Correctness", "scale": "pairwise"}])
    client.force_login(annotator)
    assert "(1 criterion)" in client.get(f"/p/{project.slug}/work/pairwise/").content.decode()
