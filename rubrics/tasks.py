"""Celery tasks: thin adapters that take an id and call a service (DESIGN §10)."""

from celery import shared_task

from . import services


@shared_task(name="rubrics.tasks.derive_judgments", acks_late=True)
def derive_judgments(project_id: int, rule: str) -> dict | str:
    from annotate.models import Project

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return "gone"
    return services.derived_judgments_refresh(project=project, rule=rule)
