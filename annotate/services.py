"""Writes for the annotate app (keyword-only services, DESIGN §10): projects,
members (and pausing them) and candidate pairs. Import jobs are in ``annotate.imports.services``,
export jobs in ``annotate.exports.services``.
"""

from __future__ import annotations

from collections import defaultdict

from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from rubrics.models import RubricVersion

from . import counters
from .models import Comparison, Judgment, LabelSource, Membership, Project, Response, Role

BATCH = 2000


# --- projects and members -------------------------------------------------------


@transaction.atomic
def project_create(*, name: str, slug: str, created_by=None, **fields) -> Project:
    project = Project(name=name, slug=slug, created_by=created_by, **fields)
    project.full_clean()
    project.save()
    if created_by is not None and not created_by.is_staff:
        Membership.objects.create(project=project, user=created_by, role=Role.RESEARCHER)
    return project


@transaction.atomic
def membership_set(*, project: Project, user, role: str) -> Membership:
    if role not in Role.values:
        raise ValueError(f"role must be one of {', '.join(Role.values)}")
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


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
            Comparison(project=project, prompt_id=prompt_id, response_a_id=a, response_b_id=b, open_slots=project.overlap)
            for a, b in pairs
            if (a, b) not in existing
        )
    Comparison.objects.bulk_create(new, batch_size=BATCH)
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
    gold = Judgment.objects.filter(comparison__project=project, comparison__is_gold=True, annotator=user,
                                   source=LabelSource.HUMAN)
    tally = gold.aggregate(answered=Count("id"), correct=Count("id", filter=Q(choice=F("comparison__gold_choice"))))
    answered, correct = tally["answered"], tally["correct"]
    if answered < project.pause_after_gold or correct / answered >= threshold:
        return False
    membership_pause(
        project=project, user=user,
        reason=(f"your answers on check tasks agreed with the expected answer {correct} of {answered} times "
                f"({correct / answered:.0%}), below this project's {threshold:.0%}; a researcher can resume you"),
    )
    return True
