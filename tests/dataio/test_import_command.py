"""``manage.py import_data``: --create-project makes the project in the same
all-or-nothing unit as its rows (issue #18 point 10), with a researcher who can
open it (issue #17)."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from annotate.models import ImportJob, Membership, Project, Prompt, Role

from tests.conftest import make_user
from tests.dataio.imports._helpers import write_jsonl

pytestmark = pytest.mark.django_db

GOOD = {"prompt": "Q?", "responses": ["a", "b"]}


def _run(*args) -> str:
    out = io.StringIO()
    call_command("import_data", *args, stdout=out)
    return out.getvalue()


def test_a_failed_import_with_create_project_leaves_no_project(tmp_path):
    make_user("owner")
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD, GOOD, {"prompt": "Q2?", "responses": "not a list"}])
    with pytest.raises(CommandError, match="line 3.*project 'fresh' was not created"):
        _run("fresh", str(path), "--format", "jsonl", "--create-project", "--owner", "owner")
    assert not Project.objects.filter(slug="fresh").exists()
    assert not Membership.objects.exists() and not Prompt.objects.exists() and not ImportJob.objects.exists()


def test_create_project_makes_the_owner_a_researcher_who_can_open_it(tmp_path):
    owner = make_user("owner")
    path = write_jsonl(tmp_path / "good.jsonl", [GOOD])
    out = _run("fresh", str(path), "--format", "jsonl", "--create-project", "--owner", "owner")
    project = Project.objects.get(slug="fresh")
    assert "with owner as researcher" in out and "Imported 1 records" in out
    assert Membership.objects.get(project=project, user=owner).role == Role.RESEARCHER
    client = Client()
    client.force_login(owner)
    page = client.get(reverse("project-detail", args=["fresh"]))
    assert page.status_code == 200 and 'href="/p/fresh/import/"' in page.content.decode()


def test_an_unknown_owner_creates_nothing(tmp_path):
    path = write_jsonl(tmp_path / "good.jsonl", [GOOD])
    with pytest.raises(CommandError, match="--owner 'ghost': no such user"):
        _run("fresh", str(path), "--format", "jsonl", "--create-project", "--owner", "ghost")
    assert not Project.objects.exists()


def test_without_owner_the_only_superuser_becomes_researcher_else_nobody_and_it_says_so(tmp_path):
    path = write_jsonl(tmp_path / "good.jsonl", [GOOD])
    admin = get_user_model().objects.create_superuser("root", password="pw-for-tests-only")
    out = _run("one", str(path), "--format", "jsonl", "--create-project")
    assert "root, the only superuser, becomes the researcher" in out
    assert Membership.objects.get(project__slug="one", user=admin).role == Role.RESEARCHER
    get_user_model().objects.create_superuser("root2", password="pw-for-tests-only")
    out = _run("two", str(path), "--format", "jsonl", "--create-project")
    assert "the project has no members, so only staff see it" in out
    assert not Membership.objects.filter(project__slug="two").exists()


def test_create_project_refuses_background(tmp_path):
    path = write_jsonl(tmp_path / "good.jsonl", [GOOD])
    with pytest.raises(CommandError, match="together or not at all"):
        _run("fresh", str(path), "--format", "jsonl", "--create-project", "--background")
    assert not Project.objects.exists()
