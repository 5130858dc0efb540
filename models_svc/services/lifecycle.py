"""Reward-model lifecycle (DESIGN §4): enqueue → claim → heartbeat → complete |
fail | cancel; promote and roll back; the stale-run sweep; automatic refresh.

Writes are keyword-only services. The worker body, ``training_run_execute``, turns
the project's labels into plain examples for ``models_svc.ml`` and records what
comes back; the web request only ever enqueues. A version is recorded only after
its artifact is fully in place, and nothing here changes the active version except
``model_version_promote`` — so a failed, killed or cancelled run never does.

Enqueuing is this module's job (views and the API never call ``.delay``): a task
is sent with ``annotate.jobs.job_enqueue`` from inside the writing transaction (it
publishes on commit, and fails the run at once when the broker is down). ``models_svc.tasks`` imports this module; this module imports the tasks
only where it sends one, so the tasks' module never sits under a service's import.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import socket
import threading
import traceback
import uuid
from pathlib import Path
from typing import Any

from celery.utils import uuid as celery_uuid
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Max
from django.utils import timezone

from annotate.jobs import job_enqueue
from annotate.models import Project

from ..ml.config import TrainConfig
from ..ml.presets import PRESETS
from ..models import ModelVersion, RewardSettings, TrainingRun
from .project_settings import settings_for
from .scoring import load_model
from .training_data import labels_snapshot, training_examples, training_judgments, training_ratings

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10
STALE_AFTER_SECONDS = 120
MIN_PAIRS = 4


class TrainingRefused(ValueError):
    """The run cannot be queued (no labels, one already active, bad settings)."""


def json_safe(value: Any) -> Any:
    """Metrics as JSON: NaN/inf (an accuracy with no pairs to measure) become null,
    numpy scalars become floats."""
    import math

    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@transaction.atomic
def training_run_enqueue(
    *, project: Project, mode: str | None = None, objective: str | None = None, created_by=None,
    trigger: str = TrainingRun.Trigger.MANUAL, overrides: dict[str, Any] | None = None,
) -> TrainingRun:
    """Queue a run with the project's settings: its preset and backbone, then
    ``mode``/``objective`` and ``overrides`` over them. One run at a time per project;
    the labels it will see are fixed now."""
    Project.objects.select_for_update().filter(pk=project.pk).first()  # serialise enqueues per project
    s = settings_for(project)
    if TrainingRun.objects.filter(project=project, status__in=TrainingRun.ACTIVE_STATES).exists():
        raise TrainingRefused("a run is already queued or running for this project; cancel it or wait")
    mode = mode or s.mode
    preset = PRESETS[s.preset].for_mode(mode) if s.preset in PRESETS else {}
    if s.backbone:
        preset["backbone"] = s.backbone  # an admin's own checkpoint replaces the preset's
    requested = {"mode": mode, "objective": objective or s.objective, **preset, **(overrides or {})}
    # multi's own criterion_weights replace the rubric's; the gate learns its weights, but needs the orientation.
    own = {"multi": {"aggregation", "criterion_weights"}, "gated": {"aggregation"}}.get(requested["objective"])
    if own is not None and not own & set(requested):
        aggregation = rubric_aggregation(project)
        if aggregation is not None:
            requested["aggregation"] = aggregation
    try:
        TrainConfig.from_dict(requested)  # validate now (unknown keys too): a bad setting fails here, not on the worker
    except (TypeError, ValueError) as exc:
        raise TrainingRefused(str(exc)) from None
    snapshot = labels_snapshot(project)
    if requested["objective"] in ("bt", "gated") and snapshot["pairs"] < MIN_PAIRS:
        raise TrainingRefused(f"needs at least {MIN_PAIRS} pairwise labels (A, B or tie); the project has {snapshot['pairs']}")
    if requested["objective"] in ("multi", "gated") and snapshot["ratings"] < MIN_PAIRS:
        raise TrainingRefused(f"needs at least {MIN_PAIRS} ratings; the project has {snapshot['ratings']}")
    run = TrainingRun.objects.create(
        project=project, created_by=created_by, trigger=trigger, config=requested, data_snapshot=snapshot,
        celery_id=celery_uuid(),
    )
    _send(run)
    return run


def rubric_aggregation(project: Project) -> dict[str, Any] | None:
    """The pinned rubric version's aggregation as plain data for a multi or gated
    model (``rubrics.derive.reward_aggregation``), naming the version it came from;
    None without a version or without rated criteria."""
    from rubrics import derive

    version = project.rubric_version
    if version is None:
        return None
    spec = derive.reward_aggregation(version.aggregation,
                                     derive.rules_from_specs(c.as_spec() for c in version.criteria.all()))
    if not spec["criteria"]:
        return None
    return {**spec, "rubric_version_id": version.pk, "rubric": version.rubric.name, "version": version.number}


def _send(run: TrainingRun) -> None:
    """Hand the run to a worker once the transaction commits, under the task id
    stored on the run."""
    from .. import tasks

    job_enqueue(task=tasks.train_reward_model, args=(run.pk,), job=run, task_id=run.celery_id)


def training_run_claim(*, run_id: int, worker: str) -> TrainingRun | None:
    """queued → running for exactly one caller (the UPDATE's row count decides)."""
    now = timezone.now()
    claimed = TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.QUEUED).update(
        status=TrainingRun.Status.RUNNING, worker=worker, started_at=now, heartbeat_at=now, progress=0.0
    )
    return TrainingRun.objects.get(pk=run_id) if claimed == 1 else None


def training_run_heartbeat(*, run_id: int, progress: float | None = None, live: dict | None = None) -> bool:
    """Record that the worker is alive; returns False when the run must stop
    (cancel requested, or the sweep already gave up on it)."""
    fields: dict[str, Any] = {"heartbeat_at": timezone.now()}
    if progress is not None:
        fields["progress"] = max(0.0, min(1.0, float(progress)))
    if live is not None:
        fields["metrics"] = {"live": json_safe(live)}
    TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING).update(**fields)
    row = TrainingRun.objects.filter(pk=run_id).values_list("status", "cancel_requested").first()
    return row is not None and row[0] == TrainingRun.Status.RUNNING and not row[1]


def training_run_cancel(*, run: TrainingRun) -> TrainingRun:
    """A queued run is cancelled at once; a running one is asked to stop and stops
    at its next check (within seconds), leaving no artifact."""
    now = timezone.now()
    if TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.QUEUED).update(
        status=TrainingRun.Status.CANCELLED, cancel_requested=True, finished_at=now
    ):
        return TrainingRun.objects.get(pk=run.pk)
    TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.RUNNING).update(cancel_requested=True)
    return TrainingRun.objects.get(pk=run.pk)


def _finish(run_id: int, status: str, **fields: Any) -> bool:
    return bool(TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING).update(
        status=status, finished_at=timezone.now(), **fields))


def training_run_fail(*, run_id: int, error: str) -> bool:
    return _finish(run_id, TrainingRun.Status.FAILED, error=error[-8000:])


def training_runs_sweep(*, stale_after_seconds: int = STALE_AFTER_SECONDS) -> int:
    """Fail running runs whose worker stopped sending heartbeats (killed, lost)."""
    cutoff = timezone.now() - timezone.timedelta(seconds=stale_after_seconds)
    failed = 0
    for run in TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING, heartbeat_at__lt=cutoff):
        failed += training_run_fail(
            run_id=run.pk,
            error=f"the worker {run.worker or '?'} stopped sending heartbeats (last at "
                  f"{run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC); the run was abandoned and the active model is unchanged",
        )
    return failed


def _artifact_dir(run: TrainingRun) -> Path:
    return Path(settings.MODEL_DIR) / run.project.slug / f"run-{run.pk}"


def _move_into_place(result, run: TrainingRun) -> Path:
    """Write to a temporary folder beside the destination, then rename: a reader
    (or a crash) never sees half an artifact."""
    final = _artifact_dir(run)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        result.save(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _compare_with_active(project: Project, result, eval_pairs) -> dict[str, Any]:
    """Score the fixed eval split with the active version too, so "beats the
    active one" and "agreement with the previous version" are measured on the
    same pairs."""
    from ..ml import evaluate

    active = ModelVersion.objects.filter(project=project, state=ModelVersion.State.ACTIVE).first()
    if active is None or not eval_pairs:
        return {}
    try:
        previous = load_model(active)
    except Exception as exc:  # an unreadable old artifact must not fail the new run
        return {"previous_version": active.number, "previous_error": str(exc)[:500]}
    items = [(p.conversation, t) for p in eval_pairs for t in (p.chosen_text, p.rejected_text)]
    old = previous.score_items(items).reward
    new = result.model.score_items(items).reward
    d_old, d_new = old[0::2] - old[1::2], new[0::2] - new[1::2]
    ties = [p.tie for p in eval_pairs]
    return {
        "previous_version": active.number,
        "previous_accuracy": evaluate.pairwise_accuracy(d_old, ties),
        "agreement_with_previous": evaluate.agreement(d_new, d_old),
        "gain_over_previous": evaluate.paired_accuracy_gain(d_new, d_old, ties, [p.prompt_id for p in eval_pairs]),
    }


def training_run_execute(*, run_id: int, worker: str | None = None) -> TrainingRun:
    """The worker body: claim, train, record. Returns the run as it ended."""
    from ..ml import train as ml_train
    from ..ml.data import split_by_prompt

    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    run = training_run_claim(run_id=run_id, worker=worker)
    if run is None:
        return TrainingRun.objects.get(pk=run_id)
    beat = _Heartbeat(run.pk)
    beat.start()
    try:
        cfg = TrainConfig(**run.config).resolve()
        if cfg.cache_dir is None:
            # Embeddings are cached per backbone under the data dir: retrains and
            # rescoring of unchanged texts cost nothing.
            cfg = dataclasses.replace(cfg, cache_dir=str(Path(settings.MODEL_DIR) / "embeddings"))
        config = cfg.to_dict()
        pairs, ratings, data_hash = training_examples(run.project, run.data_snapshot)
        snapshot = {**run.data_snapshot, "hash": data_hash, "pairs_used": len(pairs), "ratings_used": len(ratings)}
        TrainingRun.objects.filter(pk=run.pk).update(config=config, data_snapshot=snapshot)
        train_pairs, eval_pairs = split_by_prompt(pairs, cfg.eval_fraction, cfg.split_seed)
        train_ratings, eval_ratings = split_by_prompt(ratings, cfg.eval_fraction, cfg.split_seed)

        def progress(fraction: float, live: dict[str, Any]) -> None:
            beat.update(fraction, live)

        def should_stop() -> bool:
            return beat.stop_requested()

        if cfg.mode == "finetune":
            result = ml_train.train_finetune(
                cfg, train_pairs, train_ratings, eval_pairs=eval_pairs,
                work_dir=_artifact_dir(run).parent / f".work-run-{run.pk}",
                progress_cb=progress, should_stop_cb=should_stop,
            )
        else:
            result = ml_train.train_head(
                cfg, train_pairs, train_ratings, eval_pairs=eval_pairs, eval_ratings=eval_ratings,
                progress_cb=progress, should_stop_cb=should_stop,
            )
        final = {**result.metrics, **_compare_with_active(run.project, result, eval_pairs),
                 "train_pairs": len(train_pairs), "eval_pairs": len(eval_pairs),
                 "train_ratings": len(train_ratings), "eval_ratings": len(eval_ratings)}
        final = json_safe(final)
        result.metrics = final
        path = _move_into_place(result, run)
        if not _record_version(run, path, final, result.curves):
            shutil.rmtree(path, ignore_errors=True)  # cancelled or swept meanwhile: nothing recorded
    except ml_train.Cancelled:
        _finish(run.pk, TrainingRun.Status.CANCELLED)
    except Exception:
        log.exception("training run %s failed", run.pk)
        training_run_fail(run_id=run.pk, error=traceback.format_exc())
    finally:
        beat.stop()
    run = TrainingRun.objects.get(pk=run.pk)
    if run.status == TrainingRun.Status.SUCCEEDED:
        _maybe_auto_promote(run.version)
    return run


def _record_version(run: TrainingRun, path: Path, final: dict, curves: list) -> bool:
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != TrainingRun.Status.RUNNING or locked.cancel_requested:
            if locked.status == TrainingRun.Status.RUNNING:
                _finish(run.pk, TrainingRun.Status.CANCELLED)
            return False
        number = (ModelVersion.objects.filter(project=run.project).aggregate(n=Max("number"))["n"] or 0) + 1
        ModelVersion.objects.create(project=run.project, run=locked, number=number, artifact_path=str(path),
                                    metrics=final, aggregation=locked.config.get("aggregation"))
        _finish(run.pk, TrainingRun.Status.SUCCEEDED, progress=1.0,
                metrics={"final": final, "curves": json_safe(curves)})
    return True


def _beats(candidate: ModelVersion, min_pairs: int) -> bool:
    """The gain's 95 % interval (paired bootstrap over prompts) lies above zero, on
    enough held-out comparisons: a strict ">" on accuracy promotes noise."""
    gain = candidate.metrics.get("gain_over_previous") or {}
    low = gain.get("low")
    return low is not None and low > 0 and gain.get("pairs", 0) >= min_pairs


def _maybe_auto_promote(version: ModelVersion) -> None:
    s = settings_for(version.project)
    if not s.auto_promote:
        return
    has_active = ModelVersion.objects.filter(project=version.project, state=ModelVersion.State.ACTIVE).exists()
    if not has_active or _beats(version, s.promote_min_eval_pairs):
        model_version_promote(version=version)


@transaction.atomic
def model_version_promote(*, version: ModelVersion) -> ModelVersion:
    """Make ``version`` the project's one active model (the previous one retires)."""
    Project.objects.select_for_update().filter(pk=version.project_id).first()
    ModelVersion.objects.filter(project_id=version.project_id, state=ModelVersion.State.ACTIVE).exclude(
        pk=version.pk).update(state=ModelVersion.State.RETIRED)
    ModelVersion.objects.filter(pk=version.pk).update(state=ModelVersion.State.ACTIVE, promoted_at=timezone.now())
    # The queue's priorities come from the active model: rescore with the new one.
    comparisons_rescore_enqueue(project_id=version.project_id)
    return ModelVersion.objects.get(pk=version.pk)


def comparisons_rescore_enqueue(*, project_id: int) -> None:
    """Have a worker rewrite the queue's priorities (``selection.comparisons_rescore``)
    once the current transaction, if any, commits."""
    from .. import tasks

    job_enqueue(task=tasks.rescore_comparisons, args=(project_id,))


@transaction.atomic
def model_version_rollback(*, project: Project) -> ModelVersion:
    """Re-activate the version that was active before the current one."""
    current = ModelVersion.objects.filter(project=project, state=ModelVersion.State.ACTIVE).first()
    earlier = ModelVersion.objects.filter(project=project, promoted_at__isnull=False).exclude(
        state=ModelVersion.State.ACTIVE)
    if current is not None:
        earlier = earlier.filter(promoted_at__lt=current.promoted_at)
    previous = earlier.order_by("-promoted_at").first()
    if previous is None:
        raise ValueError("no earlier active version to roll back to")
    return model_version_promote(version=previous)


def reward_models_autorefresh() -> int:
    """Queue a head-mode retrain for projects with enough new labels since their
    last run (the project's ``refresh_after_labels``). Run by beat, not on submit."""
    queued = 0
    for s in RewardSettings.objects.filter(refresh_after_labels__gt=0).select_related("project"):
        project = s.project
        if TrainingRun.objects.filter(project=project, status__in=TrainingRun.ACTIVE_STATES).exists():
            continue
        last = TrainingRun.objects.filter(project=project).order_by("-created_at").first()
        since = (last.data_snapshot if last else {}) or {}
        new = (training_judgments(project).filter(id__gt=since.get("max_judgment_id", 0)).count()
               + training_ratings(project).filter(id__gt=since.get("max_rating_id", 0)).count())
        if new >= s.refresh_after_labels:
            try:
                training_run_enqueue(project=project, mode="head", trigger=TrainingRun.Trigger.AUTO)
                queued += 1
            except TrainingRefused as exc:
                log.info("auto-refresh of %s skipped: %s", project.slug, exc)
    return queued


class _Heartbeat:
    """Beats from a thread every few seconds, so a long step (loading a backbone,
    embedding a large batch) never looks like a dead worker; a SIGKILL stops it."""

    def __init__(self, run_id: int):
        self.run_id = run_id
        self._stop = threading.Event()
        self._keep_going = True
        self._progress: float | None = None
        self._live: dict | None = None
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-run-{run_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def update(self, progress: float, live: dict) -> None:
        self._progress, self._live = progress, live

    def stop_requested(self) -> bool:
        return not self._keep_going

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._keep_going = training_run_heartbeat(
                        run_id=self.run_id, progress=self._progress, live=self._live)
                except Exception:  # a blip of the database must not silence the heartbeat for good
                    log.warning("heartbeat of run %s failed", self.run_id, exc_info=True)
                    close_old_connections()
                self._stop.wait(HEARTBEAT_SECONDS if self._progress is None else 1.0)
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        close_old_connections()
