"""Writes for the annotate app (keyword-only services, DESIGN §10): projects,
members (and pausing them) and candidate pairs. Import jobs are in ``dataio.imports.services``,
export jobs in ``dataio.exports.services``.
"""

from __future__ import annotations

from collections import defaultdict

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from rubrics.models import RubricVersion

from . import counters, slots
from .models import (
    AnnotatorCount, Assignment, Comparison, Membership, Project, Response, Role, TaskKind,
)

BATCH = 2000


# --- projects and members -------------------------------------------------------


# What a researcher sets on a project, in the app, the API and ``manage.py create_project``;
# everything else (strategy, exploration, the model's settings) has its own page.
PROJECT_FIELDS = (
    "name", "description", "guidelines", "task_kinds", "overlap", "lease_ttl_seconds", "gold_rate", "license",
    "max_tasks_per_annotator", "ranking_top_k", "pause_below_gold_accuracy", "pause_after_gold",
)


@transaction.atomic
def project_create(*, name: str, slug: str, created_by=None, rubric_version: RubricVersion | None = None,
                   **fields) -> Project:
    """A new project; its creator becomes its researcher (staff too, so the project
    is theirs to run and lists them as a member). ``rubric_version`` is pinned
    through ``project_pin_rubric`` (published versions only). Invalid fields raise
    ValidationError naming them, and nothing is written."""
    project = Project(name=name, slug=slug, created_by=created_by, **fields)
    project.full_clean()
    project.save()
    if created_by is not None:
        Membership.objects.create(project=project, user=created_by, role=Role.RESEARCHER)
    if rubric_version is not None:
        _pin_or_refuse(project, rubric_version)
    return project


def _pin_or_refuse(project: Project, version: RubricVersion) -> None:
    try:
        project_pin_rubric(project=project, version=version)
    except ValueError as exc:
        raise ValidationError({"rubric_version": str(exc)}) from None


def _most_labels_per_task(project: Project) -> int:
    """The most live labels (submitted or leased) one task of any kind has: overlap
    may not go below it, or those tasks would hold more labels than asked for."""
    most = 0
    for kind, unit in slots.UNITS.items():
        row = (Assignment.objects.filter(project=project, kind=kind, state__in=Assignment.LIVE_STATES)
               .exclude(**{f"{unit.fk}__isnull": True})
               .values(unit.fk).annotate(n=Count("id")).order_by("-n").values_list("n", flat=True).first())
        most = max(most, row or 0)
    return most


@transaction.atomic
def project_update(*, project: Project, rubric_version: RubricVersion | None | object = ..., **fields) -> Project:
    """Change a project's settings (``PROJECT_FIELDS``; the slug never changes, it is
    in every link and API client). Changes that would break work already done are
    refused with a ValidationError naming the field: overlap below the labels a
    task already has, a task kind removed while its tasks are leased. A new overlap
    recounts every task's open slots; ``rubric_version`` goes through the pin
    service (``None`` unpins: new tasks ask for an overall preference only)."""
    unknown = set(fields) - set(PROJECT_FIELDS)
    if unknown:
        raise ValidationError({name: "this setting cannot be changed here" for name in sorted(unknown)})
    project = Project.objects.select_for_update().get(pk=project.pk)
    old_overlap, old_kinds = project.overlap, list(project.task_kinds)
    for name, value in fields.items():
        setattr(project, name, value)
    project.full_clean()
    errors = {}
    if project.overlap < old_overlap:
        most = _most_labels_per_task(project)
        if project.overlap < most:
            errors["overlap"] = (f"a task already has {most} labels or leases; overlap cannot go below {most} "
                                 "(labels already given are never thrown away)")
    removed = [k for k in old_kinds if k not in project.task_kinds]
    leased = list(Assignment.objects.filter(project=project, kind__in=removed, state=Assignment.State.ACTIVE,
                                            expires_at__gt=timezone.now()).values_list("kind", flat=True).distinct())
    if leased:
        errors["task_kinds"] = (f"{', '.join(sorted(leased))} tasks are being labelled right now; "
                                "remove the kind once their leases have ended")
    if errors:
        raise ValidationError(errors)
    project.save()
    if project.overlap != old_overlap:
        slots.queue_slots_rebuild(project=project)
    if rubric_version is not ... and rubric_version != project.rubric_version:
        if rubric_version is None:
            project.rubric_version = None
            project.save(update_fields=["rubric_version"])
        else:
            _pin_or_refuse(project, rubric_version)
    return project


@transaction.atomic
def membership_set(*, project: Project, user, role: str) -> Membership:
    """Add ``user`` to the project with ``role``, or change their role. The last
    researcher keeps their role: a project nobody can run is lost to everyone but staff."""
    if role not in Role.values:
        raise ValidationError({"role": f"role must be one of {', '.join(Role.values)}"})
    current = Membership.objects.select_for_update().filter(project=project, user=user).first()
    if current is not None and current.role == Role.RESEARCHER and role != Role.RESEARCHER:
        _refuse_last_researcher(project, user, "role")
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


def _refuse_last_researcher(project: Project, user, field: str) -> None:
    others = Membership.objects.filter(project=project, role=Role.RESEARCHER).exclude(user=user)
    if not others.exists():
        raise ValidationError({field: f"{user.username} is the project's only researcher; "
                                      "make someone else a researcher first"})


@transaction.atomic
def membership_add(*, project: Project, username: str, role: str) -> Membership:
    """Add an existing account by its username."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise ValidationError({"username": f"there is no active account {username!r}; create one below instead"})
    if Membership.objects.filter(project=project, user=user).exists():
        raise ValidationError({"username": f"{username} is already a member; change their role in the table"})
    return membership_set(project=project, user=user, role=role)


@transaction.atomic
def member_account_create(*, project: Project, username: str, role: str = Role.ANNOTATOR,
                          invite: bool = False) -> tuple[Membership, str]:
    """A new account, member of ``project`` with ``role``. Returns the membership and
    either a one-time password (shown once, never stored in clear) or, with
    ``invite``, an invite token: Django's password-reset token for the account,
    which expires after PASSWORD_RESET_TIMEOUT and stops working once the invitee
    has set their password."""
    import secrets

    from django.contrib.auth import get_user_model
    from django.contrib.auth.tokens import default_token_generator
    from django.contrib.auth.validators import UnicodeUsernameValidator

    User = get_user_model()
    try:
        UnicodeUsernameValidator()(username)
    except ValidationError as exc:
        raise ValidationError({"username": exc.messages}) from None
    if not username or len(username) > 150:
        raise ValidationError({"username": "a username is 1 to 150 characters"})
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": f"the username {username!r} is taken; add that account instead"})
    user = User(username=username)
    if invite:
        user.set_unusable_password()
        user.save()
        secret = default_token_generator.make_token(user)
    else:
        secret = secrets.token_urlsafe(12)
        user.set_password(secret)
        user.save()
    return membership_set(project=project, user=user, role=role), secret


@transaction.atomic
def membership_remove(*, project: Project, user) -> int:
    """Take ``user`` out of the project: their live leases end now (the tasks go back
    to the queue) and their labels stay, with their name on them. Returns how
    many leases ended."""
    from .queue import assignments_end

    membership = Membership.objects.select_for_update().filter(project=project, user=user).first()
    if membership is None:
        raise ValidationError({"username": f"{user.username} is not a member of this project"})
    if membership.role == Role.RESEARCHER:
        _refuse_last_researcher(project, user, "username")
    ended = assignments_end(project=project, annotator=user)
    membership.delete()
    return ended


@transaction.atomic
def comparisons_generate(*, project: Project, max_pairs_per_prompt: int = 45, seed: int = 0) -> int:
    """Create the candidate pairs of every prompt: all K(K−1)/2 when that is at most
    ``max_pairs_per_prompt``, else a seeded uniform sample of that many. Existing
    pairs are kept; returns how many were created."""
    import itertools
    import random

    rng = random.Random(seed)
    by_prompt: dict[int, list[int]] = defaultdict(list)
    for prompt_id, response_id in Response.objects.filter(prompt__project=project).values_list("prompt_id", "id"):
        by_prompt[prompt_id].append(response_id)
    existing = set(Comparison.objects.filter(project=project).values_list("response_a_id", "response_b_id"))
    new = []
    for prompt_id, ids in sorted(by_prompt.items()):
        pairs = list(itertools.combinations(sorted(ids), 2))
        if len(pairs) > max_pairs_per_prompt:
            pairs = rng.sample(pairs, max_pairs_per_prompt)
        new.extend(
            Comparison(project=project, prompt_id=prompt_id, response_a_id=a, response_b_id=b)
            for a, b in pairs
            if (a, b) not in existing
        )
    Comparison.objects.bulk_create(new, batch_size=BATCH)
    slots.queue_slots_open(project=project, kind=TaskKind.PAIRWISE, units=[(c.pk, c.prompt_id) for c in new])
    counters.units_recount(project=project)
    return len(new)


@transaction.atomic
def project_pin_rubric(*, project: Project, version: RubricVersion) -> Project:
    """Point the project's new tasks at ``version``. Labels already made keep the
    version they were made under (their own foreign key), and tasks already handed
    out finish under the version they were shown with."""
    version = RubricVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != RubricVersion.Status.PUBLISHED:
        raise ValueError(f"{version} is not published; publish it before pinning it on a project")
    project.rubric_version = version
    project.save(update_fields=["rubric_version"])
    return project


# --- system accounts ----------------------------------------------------------------


def system_account(username: str):
    """An inactive account that can never log in, owning labels no person gave
    (derived by a rubric rule, adjudicated): one per kind keeps the (comparison,
    annotator) uniqueness meaningful and keeps them apart from every person's."""
    from django.contrib.auth import get_user_model

    user, created = get_user_model().objects.get_or_create(username=username, defaults={"is_active": False})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


# --- pausing annotators -------------------------------------------------------------


@transaction.atomic
def membership_pause(*, project: Project, user, reason: str, by=None) -> Membership:
    """Hand ``user`` no more tasks in ``project`` and tell them ``reason``. ``by`` is
    the researcher who paused them; None means the project's gold threshold did.
    Pausing again keeps the first pause (its time, reason and author)."""
    membership = Membership.objects.select_for_update().get(project=project, user=user)
    if membership.paused_at is None:
        membership.paused_at = timezone.now()
        membership.paused_reason = reason[:300]
        membership.paused_by = by
        membership.save(update_fields=["paused_at", "paused_reason", "paused_by"])
    return membership


@transaction.atomic
def membership_resume(*, project: Project, user) -> Membership:
    membership = Membership.objects.select_for_update().get(project=project, user=user)
    membership.paused_at, membership.paused_reason, membership.paused_by = None, "", None
    membership.save(update_fields=["paused_at", "paused_reason", "paused_by"])
    return membership


def annotator_gold_check(*, project: Project, user) -> bool:
    """After a gold answer: pause ``user`` when the project sets a gold-accuracy
    threshold and their accuracy over at least ``pause_after_gold`` gold answers is
    below it. Returns whether they are (now) paused by it."""
    threshold = project.pause_below_gold_accuracy
    if threshold is None:
        return False
    # the tallies, which the submit just bumped in this transaction
    answered, correct = (AnnotatorCount.objects.filter(project=project, annotator=user, kind=TaskKind.PAIRWISE)
                         .values_list("gold_answered", "gold_correct").first() or (0, 0))
    if answered < project.pause_after_gold or correct / answered >= threshold:
        return False
    membership_pause(
        project=project, user=user,
        reason=(f"your answers on check tasks agreed with the expected answer {correct} of {answered} times "
                f"({correct / answered:.0%}), below this project's {threshold:.0%}; a researcher can resume you"),
    )
    return True
