"""Celery tasks: thin adapters that take an id and call a service (DESIGN §10).

Each one returns quietly when its row is gone, and retries with backoff when the
database or the broker is briefly unreachable: every task here is safe to run
twice (a run is claimed by a conditional UPDATE, a sweep and a rescore rewrite the
same rows, an automatic refresh queues nothing while a run is active).
"""

from celery import shared_task

from annotate.models import Project
from annotate.tasks import RETRY

from .models import TrainingRun
from .selection import comparisons_rescore
from .services import lifecycle

@shared_task(name="models_svc.tasks.train_reward_model", acks_late=True, **RETRY)
def train_reward_model(run_id: int) -> str:
    """acks_late: a worker killed mid-run leaves the message for another worker,
    whose claim then fails harmlessly (the run is no longer queued)."""
    if not TrainingRun.objects.filter(pk=run_id).exists():
        return "gone"
    return lifecycle.training_run_execute(run_id=run_id).status


@shared_task(name="models_svc.tasks.score_batch", acks_late=True, **RETRY)
def score_batch(job_id: int) -> str:
    from .models import ScoringJob
    from .services import scoring

    if not ScoringJob.objects.filter(pk=job_id).exists():
        return "gone"
    return scoring.scoring_job_run(job_id=job_id).status


@shared_task(name="models_svc.tasks.score_now")
def score_now(version_id: int, items: list[dict]) -> dict:
    """A synchronous score that a web request waits for (queue ``score``, settings'
    CELERY_TASK_ROUTES). No retries and no acks_late: past the request's wait nobody
    reads the answer, and the message expires then. The service's LookupError reaches
    the waiting request (409)."""
    from .models import ModelVersion
    from .services import scoring

    version = ModelVersion.objects.select_related("project").filter(pk=version_id).first()
    if version is None:
        raise LookupError("the model version was deleted before it could score; send the request again")
    return scoring.rewards_score(project=version.project, items=items, version=version)


@shared_task(name="models_svc.tasks.scoring_jobs_sweep", **RETRY)
def scoring_jobs_sweep() -> int:
    from .services import scoring

    return scoring.scoring_jobs_sweep()


@shared_task(name="models_svc.tasks.training_runs_sweep", **RETRY)
def training_runs_sweep() -> int:
    return lifecycle.training_runs_sweep()


@shared_task(name="models_svc.tasks.reward_models_autorefresh", **RETRY)
def reward_models_autorefresh() -> int:
    return lifecycle.reward_models_autorefresh()


@shared_task(name="models_svc.tasks.rescore_comparisons", acks_late=True, **RETRY)
def rescore_comparisons(project_id: int, strategy: str | None = None) -> dict | str:
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return "gone"
    return comparisons_rescore(project=project, strategy=strategy)
