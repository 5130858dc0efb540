"""Handing work to the Celery workers: the one way every job is queued (imports,
exports, training runs, quality reports and audits, and the row-less tasks).

A task is published once the writing transaction commits, so the worker finds the
row. When the broker cannot take it, publishing gives up within a few seconds
(``CELERY_BROKER_CONNECTION_TIMEOUT`` and ``CELERY_TASK_PUBLISH_RETRY_POLICY`` in
the settings) instead of hanging the request: the job is failed with
``QUEUE_UNREACHABLE``, so it never sits ``queued`` for ever (a project would then
refuse every later run), and ``JobQueueUnavailable`` reaches the caller: the API
answers 503 with the message, and pages show it (``preflab.queue_errors``).
``jobs_unclaimed_sweep`` fails jobs a worker never picked up (a message the broker
lost), after ``PREFLAB_JOB_PICKUP_MINUTES``.

``task_call`` is the one synchronous case: the request publishes at once, waits a
bounded time on the result store, and on time-out revokes the task and answers 504.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import APIException

from .models import BackgroundJob

log = logging.getLogger(__name__)

QUEUE_UNREACHABLE = "the job queue is unreachable; try again"


class JobQueueUnavailable(APIException):
    """The broker did not take the task; the job (if any) is already failed."""

    status_code = 503
    default_detail = QUEUE_UNREACHABLE
    default_code = "queue_unreachable"


def job_enqueue(*, task, args: tuple = (), job: BackgroundJob | None = None, task_id: str | None = None) -> None:
    """Publish ``task(*args)`` once the current transaction commits (at once outside one).

    With a ``job`` row, a failed publish fails the job and raises
    ``JobQueueUnavailable``; without one (a rescore, a derivation: work that the
    next trigger redoes) it is only logged."""

    def publish():
        if task.app.conf.task_always_eager:  # tests: the task runs here, and its own errors must surface
            task.apply_async(args, task_id=task_id)
            return
        try:
            task.apply_async(args, task_id=task_id)
        except Exception as exc:  # whatever the broker or result store raised: the task is not queued
            log.warning("could not queue %s%r for %s: %s", task.name, args, job or "no job row", exc, exc_info=True)
            if job is None:
                return
            job_fail_unqueued(job=job, error=QUEUE_UNREACHABLE)
            raise JobQueueUnavailable() from exc

    transaction.on_commit(publish)


class JobTimedOut(APIException):
    """A task the request waited for gave no answer in time; it was revoked."""

    status_code = 504
    default_code = "job_timed_out"


def task_call(*, task, args: tuple = (), wait_s: float, timeout_detail: str):
    """Run ``task(*args)`` in a worker and return its result, waiting at most ``wait_s``.

    Published at once, not on commit: the caller waits for the answer, so it must not
    hold a transaction open (the worker reads committed rows only). The message
    expires with the wait, so a worker that starts later drops it instead of doing
    work nobody reads. An exception raised by the task is raised here. A publish that
    fails raises ``JobQueueUnavailable``; no answer in time revokes the task and raises
    ``JobTimedOut(timeout_detail)``. A task already running is left to finish: callers
    bound its work (the scoring caps), and killing the process would throw away what
    it has loaded (a model) for the next call.
    """
    from celery.exceptions import TimeoutError as ResultTimeout

    if task.app.conf.task_always_eager:  # tests: the task runs here
        return task.apply(args, throw=True).get()
    if transaction.get_connection().in_atomic_block:
        raise RuntimeError(f"task_call({task.name}) inside a transaction: the worker could not see its rows")
    try:
        result = task.apply_async(args, expires=wait_s)
    except Exception as exc:  # whatever the broker raised: the task is not queued
        log.warning("could not queue %s: %s", task.name, exc, exc_info=True)
        raise JobQueueUnavailable() from exc
    try:
        # interval: how often a polling result store (the files of the embedded default) is read
        return result.get(timeout=wait_s, interval=0.05)
    except ResultTimeout:
        log.warning("%s %s gave no answer in %s s; revoking it", task.name, result.id, wait_s)
        try:
            task.app.control.revoke(result.id)
        except Exception:  # the message expires anyway; a revoke that cannot be sent changes nothing
            log.warning("could not revoke %s", result.id, exc_info=True)
        raise JobTimedOut(timeout_detail) from None
    finally:
        result.forget()  # no stored answer is left behind (a late one expires with CELERY_RESULT_EXPIRES)


def job_fail_unqueued(*, job: BackgroundJob, error: str) -> bool:
    """queued → failed with ``error`` (and the object updated to match), unless a
    worker claimed it meanwhile. Returns whether it applied."""
    now = timezone.now()
    done = type(job).objects.filter(pk=job.pk, status=job.Status.QUEUED).update(
        status=job.Status.FAILED, error=error, finished_at=now)
    if done:
        job.status, job.error, job.finished_at = job.Status.FAILED, error, now
        job.discard_files()
    return bool(done)


def job_models() -> list[type[BackgroundJob]]:
    """Every kind of job row, whichever app defines it."""
    return [m for m in apps.get_models() if issubclass(m, BackgroundJob)]


def jobs_unclaimed_sweep(*, older_than: timedelta | None = None) -> int:
    """Fail the jobs still ``queued`` after ``older_than`` (default
    ``settings.JOB_PICKUP_SECONDS``): no worker ever picked them up. Returns how many."""
    older_than = older_than or timedelta(seconds=settings.JOB_PICKUP_SECONDS)
    cutoff = timezone.now() - older_than
    minutes = round(older_than.total_seconds() / 60)
    error = f"no worker picked this job up within {minutes} minutes (the job queue may have lost it); try again"
    failed = 0
    for model in job_models():
        stale = list(model.objects.filter(status=model.Status.QUEUED, created_at__lt=cutoff))
        for job in stale:
            job_fail_unqueued(job=job, error=error)  # per row: one a worker claims meanwhile is left alone
        failed += sum(1 for job in stale if job.status == model.Status.FAILED)
    if failed:
        log.warning("failed %d job(s) never picked up by a worker", failed)
    return failed
