"""Small builders for queue and annotation tests."""

from __future__ import annotations

from annotate import services, slots
from annotate.models import Comparison, Judgment, Membership, Prompt, Rating, Response, Role, TaskKind
from models_svc.models import RewardSettings
from rubrics import services as rubric_services

from tests.conftest import make_user


def fill(project, *, prompts: int = 3, responses: int = 2) -> list[Prompt]:
    """Prompts with ``responses`` responses each, and every candidate pair, all in the queue."""
    made, made_responses = [], []
    for i in range(prompts):
        p = Prompt.objects.create(
            project=project, external_id=f"p{i}", conversation=[{"role": "user", "content": f"Question {i}?"}],
        )
        for j in range(responses):
            made_responses.append(Response.objects.create(prompt=p, external_id=f"r{j}", source=f"model-{j}",
                                                          text=f"Answer {j} to question {i}."))
        made.append(p)
    slots.queue_slots_open(project=project, kind=TaskKind.RANKING, units=[(p.pk, p.pk) for p in made])
    slots.queue_slots_open(project=project, kind=TaskKind.RATING, units=[(r.pk, r.prompt_id) for r in made_responses])
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
    # gold sits outside the slot accounting
    slots.queue_slots_rebuild(project=project, kinds=[TaskKind.PAIRWISE], unit_ids=[c.pk for c in gold])
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


def held_out_split(project, fraction: float = 0.2) -> dict:
    """Overrides whose prompt-hash split holds out some of the project's prompts and
    trains on the rest: which seed does depends on the database's ids, and a dozen
    prompts may all fall on one side (then a run has no held-out accuracy)."""
    from models_svc.ml.data import prompt_in_eval

    ids = list(project.prompts.values_list("pk", flat=True))
    seed = next(s for s in range(1000) if 0 < sum(prompt_in_eval(p, fraction, s) for p in ids) < len(ids) - 1)
    return {"eval_fraction": fraction, "split_seed": seed}


def two_project_world(tmp_path) -> dict:
    """Two projects with one annotator and one researcher each, a staff user, and one
    of every object a route can name in the first ("here") project: an annotator's
    lease, import and export jobs (the export finished, with its files), a training
    run and model version, a scoring job, a review item, and a rubric made by here's researcher with
    a published version pinned on the project and a draft after it."""
    from annotate import queue
    from annotate.models import ExportJob, ImportJob
    from models_svc.models import ModelVersion, ScoringJob, TrainingRun
    from quality.models import ReviewItem

    researcher_here = make_user("rita-here")
    researcher_elsewhere = make_user("rob-elsewhere")
    here = services.project_create(name="Here", slug="here", created_by=researcher_here)
    elsewhere = services.project_create(name="Elsewhere", slug="elsewhere", created_by=researcher_elsewhere)
    annotator_here = make_user("anna-here")
    annotator_elsewhere = make_user("abe-elsewhere")
    services.membership_set(project=here, user=annotator_here, role=Role.ANNOTATOR)
    services.membership_set(project=elsewhere, user=annotator_elsewhere, role=Role.ANNOTATOR)
    fill(here, prompts=2, responses=2)
    fill(elsewhere, prompts=1, responses=2)
    assignment = queue.assignment_lease(project=here, annotator=annotator_here)

    v1 = rubric_services.rubric_create(
        name="Shared", slug="shared", created_by=researcher_here,
        criteria=[{"key": "helpful", "name": "Helpful", "scale": "likert", "min": 0, "max": 4}],
    )
    v1 = rubric_services.rubric_version_publish(version=v1)
    here.rubric_version = v1
    here.save(update_fields=["rubric_version"])
    draft = rubric_services.rubric_version_new_draft(version=v1, changelog="next")

    import_job = ImportJob.objects.create(project=here, format="jsonl", file_path=str(tmp_path / "gone.jsonl"),
                                          status=ImportJob.Status.FAILED, error="boom")
    folder = tmp_path / "export"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text("# card\n")
    (folder / "data.jsonl").write_text("{}\n")
    export_job = ExportJob.objects.create(project=here, format="raw", file_format="jsonl", snapshot_id="s1",
                                          status=ExportJob.Status.SUCCEEDED, path=str(folder),
                                          file_path=str(folder / "data.jsonl"))
    run = TrainingRun.objects.create(project=here, status=TrainingRun.Status.SUCCEEDED,
                                     config={"mode": "head", "objective": "bt"})
    version = ModelVersion.objects.create(project=here, run=run, number=1, artifact_path=str(tmp_path / "model"))
    scoring_job = ScoringJob.objects.create(project=here, model_version=version,
                                            items=[{"conversation": [{"role": "user", "content": "q"}], "responses": ["a"]}])
    review_item = ReviewItem.objects.create(project=here, comparison=Comparison.objects.filter(project=here).first(),
                                            reasons=["low_agreement"], evidence=1.0)
    return {
        "here": here, "elsewhere": elsewhere, "assignment": assignment, "rubric": v1.rubric, "published": v1,
        "draft": draft, "import_job": import_job, "export_job": export_job, "run": run, "model_version": version,
        "review_item": review_item, "scoring_job": scoring_job,
        "users": {
            "annotator_here": annotator_here, "annotator_elsewhere": annotator_elsewhere,
            "researcher_here": researcher_here, "researcher_elsewhere": researcher_elsewhere,
            "staff": make_user("stella-staff", staff=True),
        },
    }
