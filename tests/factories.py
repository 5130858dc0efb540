"""Small builders for queue and annotation tests."""

from __future__ import annotations

from annotate import services
from annotate.models import Comparison, Judgment, Membership, Prompt, Rating, Response, Role
from models_svc.models import RewardSettings
from rubrics import services as rubric_services

from tests.conftest import make_user


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


def labelled_for_training(project, tiny, *, prompts=12, responses=3, ratings=False, criteria=("helpful", "correct")):
    """A project whose first response of every prompt is preferred by two raters."""
    fill(project, prompts=prompts, responses=responses)
    RewardSettings.objects.update_or_create(project=project, defaults={"backbone": tiny})
    raters = [make_user("rater-a"), make_user("rater-b")]
    for c in Comparison.objects.filter(project=project):
        for i, rater in enumerate(raters):
            first = c.response_a.external_id < c.response_b.external_id
            choice = "tie" if (i == 1 and c.pk % 5 == 0) else ("A" if first else "B")
            strength = 0 if choice == "tie" else (-2 if choice == "A" else 2)
            Judgment.objects.create(comparison=c, annotator=rater, choice=choice, strength=strength, source="imported")
    if ratings:
        for p in project.prompts.all():
            for r in p.responses.all():
                good = r.external_id == "r0"
                Rating.objects.create(response=r, annotator=raters[0], source="imported",
                                      scores={criteria[0]: 4 if good else 1, criteria[1]: 3 if good else None})
    return project


def fast_training(**extra):
    return {"epochs": 3, "ensemble_size": 2, "max_length": 64, "eval_every": 5, **extra}
