"""Scoring with a stored reward model: the version's artifact loaded once per
process, then rewards for (conversation, response) items, always in a worker (torch
is imported only when a model is loaded, and web processes never load one). The
scoring API waits for a small batch scored on the ``score`` queue
(``rewards_score_in_worker``); larger batches are a ``ScoringJob``; rescoring,
audits and promotion use ``load_model`` in their own worker tasks."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotate.models import Project

from ..models import ModelVersion, ScoringJob

log = logging.getLogger(__name__)

_LOADED: dict[str, Any] = {}
_LOAD_LOCK = threading.Lock()


def load_model(version: ModelVersion):
    """The version's RewardModel, loaded once per process (the last two are kept)."""
    from ..ml.infer import RewardModel

    with _LOAD_LOCK:
        model = _LOADED.get(version.artifact_path)
        if model is None:
            model = RewardModel.load(version.artifact_path, cache_dir=Path(settings.MODEL_DIR) / "embeddings")
            while len(_LOADED) >= 2:
                _LOADED.pop(next(iter(_LOADED)))
            _LOADED[version.artifact_path] = model
        return model


def version_to_score(*, project: Project, version: ModelVersion | None = None) -> ModelVersion:
    """``version``, else the project's active one; LookupError (the API's 409) when there is none."""
    version = version or ModelVersion.objects.filter(project=project, state=ModelVersion.State.ACTIVE).first()
    if version is None:
        raise LookupError("this project has no active reward model yet; train one and promote it")
    return version


def rewards_score(*, project: Project, items: list[dict[str, Any]], version: ModelVersion | None = None) -> dict:
    """Score ``items`` (each ``{"conversation": […], "responses": […]}``) with the
    active version (or ``version``), in this process: worker code only."""
    version = version_to_score(project=project, version=version)
    model = load_model(version)
    flat = [(item["conversation"], text) for item in items for text in item["responses"]]
    scores = model.score_items(flat).rows() if flat else []
    out, at = [], 0
    for item in items:
        out.append(scores[at:at + len(item["responses"])])
        at += len(item["responses"])
    return {"model_version": version.number, "criteria": model.criteria, "results": out}


def rewards_score_in_worker(*, project: Project, items: list[dict[str, Any]],
                            version: ModelVersion | None = None) -> dict:
    """``rewards_score`` run by the ``score`` queue's worker while the caller (a web
    request) waits up to ``PREFLAB_SCORE_WAIT_S``: the version is resolved here, so a
    project without a model answers at once. Raises ``JobQueueUnavailable`` (503) when
    the queue is down, or lost during the wait, and ``JobTimedOut`` (504) when no
    answer came in time."""
    from annotate.jobs import task_call

    from .. import tasks

    version = version_to_score(project=project, version=version)
    wait = settings.SCORE_WAIT_S
    return task_call(task=tasks.score_now, args=(version.pk, items), wait_s=wait, timeout_detail=(
        f"the scoring worker gave no answer within {wait:g} s (PREFLAB_SCORE_WAIT_S), so the request was withdrawn; "
        "send the batch with \"background\": true to score it as a job, and read the result from its url"),
        lost_detail=("the job queue was lost while this request waited for the scoring worker, so the request was "
                     "withdrawn; try again later, or send the batch with \"background\": true to score it as a job"))


# --- large batches: a job scored by a worker ----------------------------------------------

JOB_CHUNK = 32  # texts scored between two progress updates and cancel checks
STALE_AFTER_SECONDS = 300


def scoring_job_create(*, project: Project, items: list[dict[str, Any]], version: ModelVersion | None = None,
                       created_by=None) -> ScoringJob:
    """Record the batch with the version it will be scored by (the active one unless
    given) and queue it (``annotate.jobs``: a failed enqueue fails the job)."""
    from annotate.jobs import job_enqueue

    from .. import tasks

    with transaction.atomic():
        version = version_to_score(project=project, version=version)
        job = ScoringJob.objects.create(project=project, created_by=created_by, model_version=version, items=items)
        job_enqueue(task=tasks.score_batch, args=(job.pk,), job=job)
    return job


def scoring_job_run(*, job_id: int) -> ScoringJob:
    """Score a queued job in chunks, heart-beating and checking *Cancel* between them."""
    now = timezone.now()
    if not ScoringJob.objects.filter(pk=job_id, status=ScoringJob.Status.QUEUED).update(
            status=ScoringJob.Status.RUNNING, started_at=now, heartbeat_at=now):
        return ScoringJob.objects.get(pk=job_id)
    job = ScoringJob.objects.select_related("model_version").get(pk=job_id)
    try:
        model = load_model(job.model_version)
        flat = [(item["conversation"], text) for item in job.items for text in item["responses"]]
        scores: list = []
        for start in range(0, len(flat), JOB_CHUNK):
            if ScoringJob.objects.filter(pk=job_id, cancel_requested=True).exists():
                ScoringJob.objects.filter(pk=job_id).update(status=ScoringJob.Status.CANCELLED,
                                                            finished_at=timezone.now())
                return ScoringJob.objects.get(pk=job_id)
            scores += model.score_items(flat[start:start + JOB_CHUNK]).rows()
            ScoringJob.objects.filter(pk=job_id).update(progress=len(scores) / len(flat), heartbeat_at=timezone.now())
        out, at = [], 0
        for item in job.items:
            out.append(scores[at:at + len(item["responses"])])
            at += len(item["responses"])
        result = {"model_version": job.model_version.number, "criteria": model.criteria, "results": out}
    except Exception as exc:  # the job must end in a final state whatever happened
        log.exception("scoring job %s failed", job_id)
        ScoringJob.objects.filter(pk=job_id).update(status=ScoringJob.Status.FAILED, error=f"internal error: {exc}",
                                                    finished_at=timezone.now())
    else:
        ScoringJob.objects.filter(pk=job_id).update(status=ScoringJob.Status.SUCCEEDED, progress=1.0, result=result,
                                                    finished_at=timezone.now())
    return ScoringJob.objects.get(pk=job_id)


def scoring_jobs_sweep() -> int:
    """Fail jobs whose worker stopped heart-beating (killed mid-batch)."""
    return ScoringJob.sweep(stale_after_seconds=STALE_AFTER_SECONDS,
                            error="the worker stopped while scoring (killed or lost); send the batch again")
