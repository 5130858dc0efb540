"""Celery tasks: thin adapters that take an id and call a service (DESIGN §10)."""

from celery import shared_task

from . import services


@shared_task(name="models_svc.tasks.train_reward_model", acks_late=True)
def train_reward_model(run_id: int) -> str:
    """acks_late: a worker killed mid-run leaves the message for another worker,
    whose claim then fails harmlessly (the run is no longer queued)."""
    from .models import TrainingRun

    if not TrainingRun.objects.filter(pk=run_id).exists():
        return "gone"
    return services.training_run_execute(run_id=run_id).status


@shared_task(name="models_svc.tasks.training_runs_sweep")
def training_runs_sweep() -> int:
    return services.training_runs_sweep()


@shared_task(name="models_svc.tasks.reward_models_autorefresh")
def reward_models_autorefresh() -> int:
    return services.reward_models_autorefresh()


@shared_task(name="models_svc.tasks.rescore_comparisons", acks_late=True)
def rescore_comparisons(project_id: int, strategy: str | None = None) -> dict | str:
    from annotate.models import Project

    from .selection import comparisons_rescore

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return "gone"
    return comparisons_rescore(project=project, strategy=strategy)
