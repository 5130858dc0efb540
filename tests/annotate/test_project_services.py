"""Creating and configuring projects and managing members (annotate.services):
what is refused names the field and changes nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from annotate import queue, services
from annotate.models import Assignment, Comparison, Judgment, Membership, Project, QueueSlot, Role
from rubrics import services as rubric_services
from tests.conftest import make_user
from tests.factories import annotators, fill

pytestmark = pytest.mark.django_db


def _published(slug="hh"):
    version = rubric_services.rubric_create_from_template(template="hh", slug=slug, name=f"HH {slug}")
    return rubric_services.rubric_version_publish(version=version)


def test_creator_becomes_the_projects_researcher_and_the_rubric_is_pinned(owner):
    version = _published()
    project = services.project_create(name="Summaries", slug="summaries", created_by=owner, rubric_version=version,
                                      task_kinds=["pairwise", "rating"], overlap=3, gold_rate=0.1, license="cc-by-4.0")
    assert Membership.objects.get(project=project, user=owner).role == Role.RESEARCHER
    project.refresh_from_db()
    assert (project.rubric_version, project.overlap, project.task_kinds, project.license) == (
        version, 3, ["pairwise", "rating"], "cc-by-4.0")


def test_staff_creator_is_a_member_too(admin_user):
    project = services.project_create(name="Staff's", slug="staffs", created_by=admin_user)
    assert Membership.objects.filter(project=project, user=admin_user, role=Role.RESEARCHER).exists()


def test_create_refuses_a_draft_rubric_and_bad_settings_naming_the_field(owner):
    draft = rubric_services.rubric_create_from_template(template="hh", slug="draft", name="Draft")
    with pytest.raises(ValidationError) as exc:
        services.project_create(name="X", slug="x", created_by=owner, rubric_version=draft)
    assert "rubric_version" in exc.value.message_dict and "not published" in exc.value.message_dict["rubric_version"][0]
    with pytest.raises(ValidationError) as exc:
        services.project_create(name="Y", slug="y", created_by=owner, overlap=0, gold_rate=2, task_kinds=[])
    assert {"overlap", "gold_rate", "task_kinds"} <= set(exc.value.message_dict)
    assert not Project.objects.exists() and not Membership.objects.exists()


def test_lowering_overlap_below_the_labels_a_task_has_is_refused(project, annotator):
    project = services.project_update(project=project, overlap=2)
    fill(project, prompts=1, responses=2)
    second = annotators(project, 1)[0]
    for user in (annotator, second):
        a = queue.assignment_lease(project=project, annotator=user)
        Assignment.objects.filter(pk=a.pk).update(state=Assignment.State.SUBMITTED)
    with pytest.raises(ValidationError) as exc:
        services.project_update(project=project, overlap=1, name="Renamed")
    assert "overlap" in exc.value.message_dict and "cannot go below 2" in exc.value.message_dict["overlap"][0]
    project.refresh_from_db()
    assert (project.overlap, project.name) == (2, "Helpfulness")


def test_raising_overlap_reopens_slots(project, annotator):
    fill(project, prompts=1, responses=2)
    queue.assignment_lease(project=project, annotator=annotator)
    assert QueueSlot.objects.get().open_slots == 0
    services.project_update(project=project, overlap=3)
    assert QueueSlot.objects.get().open_slots == 2


def test_removing_a_kind_while_it_is_leased_is_refused(project, annotator):
    project = services.project_update(project=project, task_kinds=["pairwise", "rating"])
    fill(project, prompts=1, responses=2)
    queue.assignment_lease(project=project, annotator=annotator, kind="rating")
    with pytest.raises(ValidationError) as exc:
        services.project_update(project=project, task_kinds=["pairwise"])
    assert "rating tasks are being labelled" in exc.value.message_dict["task_kinds"][0]
    project.refresh_from_db()
    assert project.task_kinds == ["pairwise", "rating"]


def test_update_refuses_the_slug_and_pins_through_the_pin_service(project):
    with pytest.raises(ValidationError) as exc:
        services.project_update(project=project, slug="elsewhere")
    assert "slug" in exc.value.message_dict
    version = _published()
    services.project_update(project=project, rubric_version=version)
    project.refresh_from_db()
    assert project.rubric_version == version
    services.project_update(project=project, rubric_version=None)
    project.refresh_from_db()
    assert project.rubric_version is None


def test_removing_a_member_ends_their_leases_and_keeps_their_labels(project, annotator):
    fill(project, prompts=2, responses=2)
    done = queue.assignment_lease(project=project, annotator=annotator)
    Judgment.objects.create(comparison=done.comparison, annotator=annotator, choice="A", strength=-1, assignment=done)
    Assignment.objects.filter(pk=done.pk).update(state=Assignment.State.SUBMITTED)
    live = queue.assignment_lease(project=project, annotator=annotator)
    assert QueueSlot.objects.get(pk=live.comparison_id).open_slots == 0

    ended = services.membership_remove(project=project, user=annotator)

    assert ended == 1
    assert not Membership.objects.filter(project=project, user=annotator).exists()
    assert Assignment.objects.get(pk=live.pk).state == Assignment.State.EXPIRED
    assert QueueSlot.objects.get(pk=live.comparison_id).open_slots == 1  # back in the queue
    assert Judgment.objects.filter(annotator=annotator).count() == 1


def test_the_last_researcher_can_be_neither_removed_nor_demoted(project, owner):
    with pytest.raises(ValidationError) as exc:
        services.membership_remove(project=project, user=owner)
    assert "only researcher" in exc.value.message_dict["username"][0]
    with pytest.raises(ValidationError) as exc:
        services.membership_set(project=project, user=owner, role=Role.ANNOTATOR)
    assert "only researcher" in exc.value.message_dict["role"][0]
    assert Membership.objects.get(project=project, user=owner).role == Role.RESEARCHER


def test_add_existing_account_by_username(project):
    kim = make_user("kim")
    services.membership_add(project=project, username="kim", role=Role.ANNOTATOR)
    assert Membership.objects.get(project=project, user=kim).role == Role.ANNOTATOR
    with pytest.raises(ValidationError) as exc:
        services.membership_add(project=project, username="nobody", role=Role.ANNOTATOR)
    assert "no active account 'nobody'" in exc.value.message_dict["username"][0]
    with pytest.raises(ValidationError) as exc:
        services.membership_add(project=project, username="kim", role=Role.RESEARCHER)
    assert "already a member" in exc.value.message_dict["username"][0]


def test_account_with_one_time_password_can_log_in(project):
    membership, password = services.member_account_create(project=project, username="newbie", role=Role.ANNOTATOR)
    user = get_user_model().objects.get(username="newbie")
    assert membership.role == Role.ANNOTATOR and user.check_password(password) and len(password) >= 12
    assert password not in user.password  # stored hashed


def test_invited_account_has_no_password_and_a_token_that_works_once(project):
    from django.contrib.auth.tokens import default_token_generator

    _, token = services.member_account_create(project=project, username="invitee", role=Role.ANNOTATOR, invite=True)
    user = get_user_model().objects.get(username="invitee")
    assert not user.has_usable_password()
    assert default_token_generator.check_token(user, token)
    user.set_password("chosen-by-them-123")
    user.save()
    assert not default_token_generator.check_token(user, token)


def test_account_creation_refuses_taken_and_invalid_usernames(project, annotator):
    with pytest.raises(ValidationError) as exc:
        services.member_account_create(project=project, username=annotator.username.upper())
    assert "taken" in exc.value.message_dict["username"][0]
    with pytest.raises(ValidationError) as exc:
        services.member_account_create(project=project, username="no spaces!")
    assert "username" in exc.value.message_dict
    assert not get_user_model().objects.filter(username="no spaces!").exists()


def test_create_project_command_makes_the_owner_researcher_and_names_bad_options(owner):
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("create_project", "cmd-made", "--owner", owner.username, "--task-kinds", "pairwise,rating",
                 "--overlap", "2", stdout=out)
    project = Project.objects.get(slug="cmd-made")
    assert (project.task_kinds, project.overlap) == (["pairwise", "rating"], 2)
    assert Membership.objects.get(project=project, user=owner).role == Role.RESEARCHER
    with pytest.raises(CommandError, match="overlap: .*task_kinds: unknown task kinds: nope|task_kinds.*overlap"):
        call_command("create_project", "bad", "--owner", owner.username, "--task-kinds", "nope", "--overlap", "0")
    with pytest.raises(CommandError, match="--owner: no user 'ghost'"):
        call_command("create_project", "bad", "--owner", "ghost")
    assert not Project.objects.filter(slug="bad").exists()
