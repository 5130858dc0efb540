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
bounded time on the result store, and on time-out revokes the task and answers 504;
the queue lost during the wait answers 503 (``QUEUE_LOST``, or the caller's message).
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
QUEUE_LOST = ("the job queue was lost while this request waited for the answer, so the request was withdrawn; "
              "try again later")


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


def task_call(*, task, args: tuple = (), wait_s: float, timeout_detail: str, lost_detail: str = QUEUE_LOST):
    """Run ``task(*args)`` in a worker and return its result, waiting at most ``wait_s``.

    Published at once, not on commit: the caller waits for the answer, so it must not
    hold a transaction open (the worker reads committed rows only). The message
    expires with the wait, so a worker that starts later drops it instead of doing
    work nobody reads. An exception raised by the task is raised here. A publish that
    fails raises ``JobQueueUnavailable``; no answer in time revokes the task and raises
    ``JobTimedOut(timeout_detail)``. The result store or broker lost during the wait
    (Redis stopped after the publish) revokes the task where the broker still answers
    and raises ``JobQueueUnavailable(lost_detail)``, as does a time-out whose revoke
    cannot reach the broker: a 503 either way, not a 500. A task already running is
    left to finish: callers bound its work (the scoring caps), and killing the process
    would throw away what it has loaded (a model) for the next call.
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
        try:
            # propagate=False: the task's own exception comes back as the value and is
            # raised below, so anything get() raises is the result store's (or broker's)
            # interval: how often a polling result store (the files of the embedded default) is read
            value = result.get(timeout=wait_s, interval=0.05, propagate=False)
        except ResultTimeout:
            log.warning("%s %s gave no answer in %s s; revoking it", task.name, result.id, wait_s)
            if not _revoke(task, result.id):
                raise JobQueueUnavailable(lost_detail) from None
            raise JobTimedOut(timeout_detail) from None
        except Exception as exc:  # Redis stopped or unreachable mid-wait: celery gives up reconnecting
            # (and logs that the app must be restarted; it need not: the next wait subscribes afresh)
            log.warning("%s %s: the result store or broker was lost while waiting for its answer (%s); revoking it",
                        task.name, result.id, exc, exc_info=True)
            _revoke(task, result.id)
            raise JobQueueUnavailable(lost_detail) from exc
        result.maybe_throw()  # read from the answer get() cached: no second trip to the result store
        return value
    finally:
        try:
            result.forget()  # no stored answer is left behind (a late one expires with CELERY_RESULT_EXPIRES)
        except Exception:  # the result store is gone: nothing of ours is left in it to remove
            log.warning("could not forget the result of %s", result.id, exc_info=True)


def _revoke(task, task_id: str) -> bool:
    """Tell the workers to drop ``task_id``; False when the broker cannot be reached
    (the message then expires unrun, or was lost with the broker)."""
    try:
        task.app.control.revoke(task_id)
    except Exception:
        log.warning("could not revoke %s", task_id, exc_info=True)
        return False
    return True


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
