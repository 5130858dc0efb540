"""Celery tasks: thin adapters that take an id and call a service (DESIGN §10).

Tasks that talk to the database or the broker retry with backoff (``RETRY``) when
either is briefly unreachable; each is safe to run twice, since a job is claimed
by a conditional UPDATE (queued → running) and a second run finds it claimed.
models_svc and quality use the same ``RETRY``.
"""

from celery import shared_task
from django.db import OperationalError
from kombu.exceptions import OperationalError as BrokerError

from .exports import services as exports
from .imports import services as imports

RETRY = {"autoretry_for": (OperationalError, BrokerError), "retry_backoff": True, "max_retries": 5}


@shared_task(name="annotate.tasks.run_import", acks_late=True, **RETRY)
def run_import(job_id: int) -> str:
    from .models import ImportJob

    if not ImportJob.objects.filter(pk=job_id).exists():
        return "gone"
    return imports.import_job_run(job_id=job_id).status


@shared_task(name="annotate.tasks.import_jobs_sweep")
def import_jobs_sweep() -> int:
    return imports.import_jobs_sweep()


@shared_task(name="annotate.tasks.run_export", acks_late=True, **RETRY)
def run_export(job_id: int) -> str:
    from .models import ExportJob

    if not ExportJob.objects.filter(pk=job_id).exists():
        return "gone"
    return exports.export_job_run(job_id=job_id).status


@shared_task(name="annotate.tasks.export_jobs_sweep")
def export_jobs_sweep() -> int:
    return exports.export_jobs_sweep()


@shared_task(name="annotate.tasks.assignments_expire")
def assignments_expire() -> int:
    """Leases also expire lazily when a task is handed out; this sweep keeps the
    progress page honest when nobody is asking for work."""
    from . import queue

    return queue.assignments_expire()


@shared_task(name="annotate.tasks.derive_judgments", acks_late=True, **RETRY)
def derive_judgments(project_id: int, rule: str) -> dict | str:
    from . import derived
    from .models import Project

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return "gone"
    return derived.derived_judgments_refresh(project=project, rule=rule)


@shared_task(name="annotate.tasks.counters_reconcile", **RETRY)
def counters_reconcile(project_id: int | None = None) -> dict:
    """Recompute the maintained tallies from the raw rows (one project, or all)."""
    from . import counters
    from .models import Project

    if project_id is None:
        return counters.counters_reconcile_all()
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return {"wrong": 0}
    return counters.counters_reconcile(project=project)
