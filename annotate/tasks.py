"""Celery tasks: thin adapters that take an id and call a service (DESIGN §10).

Tasks that talk to the database or the broker retry with backoff (``RETRY``) when
either is briefly unreachable; each is safe to run twice, since a job is claimed
by a conditional UPDATE (queued → running) and a second run finds it claimed.
models_svc, quality and dataio use the same ``RETRY``.
"""

from celery import shared_task
from django.db import OperationalError
from kombu.exceptions import OperationalError as BrokerError

RETRY = {"autoretry_for": (OperationalError, BrokerError), "retry_backoff": True, "max_retries": 5}


@shared_task(name="annotate.tasks.jobs_unclaimed_sweep")
def jobs_unclaimed_sweep() -> int:
    """Jobs of every kind that no worker picked up in time are failed (annotate.jobs)."""
    from . import jobs

    return jobs.jobs_unclaimed_sweep()


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
