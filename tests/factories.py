"""Small builders for queue and annotation tests."""

from __future__ import annotations

from annotate import services
from annotate.models import Comparison, Membership, Prompt, Response, Role
from rubrics import services as rubric_services

from .conftest import make_user


def fill(project, *, prompts: int = 3, responses: int = 2) -> list[Prompt]:
    """Prompts with ``responses`` responses each, and every candidate pair."""
    made = []
    for i in range(prompts):
        p = Prompt.objects.create(
            project=project, external_id=f"p{i}", conversation=[{"role": "user", "content": f"Question {i}?"}],
            ranking_slots=project.overlap,
        )
        for j in range(responses):
            Response.objects.create(prompt=p, external_id=f"r{j}", text=f"Answer {j} to question {i}.",
                                    source=f"model-{j}", rating_slots=project.overlap)
        made.append(p)
    services.comparisons_generate(project=project)
    return made


def annotators(project, n: int, prefix: str = "ann") -> list:
    users = []
    for i in range(n):
        u = make_user(f"{prefix}{i}")
        Membership.objects.create(project=project, user=u, role=Role.ANNOTATOR)
        users.append(u)
    return users


def pin_rubric(project, *, criteria: list[dict]) -> None:
    """A published rubric version with the given criterion specs, in force on the project."""
    version = rubric_services.rubric_create(name=f"R {project.slug}", slug=f"r-{project.slug}", criteria=criteria)
    version = rubric_services.rubric_version_publish(version=version)
    project.rubric_version = version
    project.save(update_fields=["rubric_version"])


def make_gold(project, n: int, choice: str = "A") -> list[Comparison]:
    gold = list(Comparison.objects.filter(project=project).order_by("id")[:n])
    Comparison.objects.filter(pk__in=[c.pk for c in gold]).update(is_gold=True, gold_choice=choice)
    return gold
