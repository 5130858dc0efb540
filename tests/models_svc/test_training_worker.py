"""Reward-model training through a real Celery worker process over Redis: the demo
project end to end, and a worker killed with SIGKILL in the middle of a run."""

from __future__ import annotations

import io
import os
import signal
import time

import pytest
from django.core.management import call_command
from django.urls import reverse

from annotate.models import Project
from models_svc.models import ModelVersion, RewardSettings, TrainingRun
from models_svc.services import lifecycle
from tests.factories import fast_training as _fast
from tests.factories import labelled_for_training as _labelled

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def no_autosend(monkeypatch):
    """The test hands runs to the worker itself (its broker is the worker's Redis)."""
    monkeypatch.setattr(lifecycle, "_send", lambda run: None)


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_demo_project_trains_in_the_worker_and_shows_on_the_model_page(worker, no_autosend, client):
    client_app, proc = worker
    call_command("demo", stdout=io.StringIO())
    project = Project.objects.get(slug="demo")
    # The real default backbone (all-MiniLM-L6-v2 from its wheel), head mode.
    run = lifecycle.training_run_enqueue(project=project, mode="head", objective="bt", overrides={"epochs": 10})
    status = client_app.send_task("models_svc.tasks.train_reward_model", args=[run.pk]).get(timeout=300)
    run.refresh_from_db()
    assert status == "succeeded", run.error
    assert run.worker.split(":")[1] == str(proc.pid)  # trained by the worker process
    version = run.version
    assert version.metrics["eval_pairs"] > 0 and 0.0 <= version.metrics["eval_accuracy"] <= 1.0
    assert os.path.isfile(os.path.join(version.artifact_path, "config.json"))
    client.login(username="researcher", password="preflab-researcher")
    html = client.get(reverse("model-page", args=["demo"])).content.decode()
    assert '<tr data-version="1">' in html and f"{version.metrics['eval_accuracy']:.3f}" in html


def test_sigkilled_worker_leaves_the_run_failed_after_the_sweep_and_the_active_model_alone(
    worker, no_autosend, project, tiny
):
    client_app, proc = worker
    _labelled(project, tiny, prompts=12)
    active = lifecycle.training_run_execute(
        run_id=lifecycle.training_run_enqueue(project=project, overrides=_fast()).pk).version
    lifecycle.model_version_promote(version=active)
    run = lifecycle.training_run_enqueue(project=project, overrides=_fast(epochs=100000))
    client_app.send_task("models_svc.tasks.train_reward_model", args=[run.pk])
    _wait(lambda: TrainingRun.objects.filter(pk=run.pk, status="running", progress__gt=0.5).exists(), 120,
          "the worker to be training")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    time.sleep(2.5)
    assert lifecycle.training_runs_sweep(stale_after_seconds=2) == 1
    run.refresh_from_db()
    assert run.status == "failed" and "stopped sending heartbeats" in run.error
    assert list(ModelVersion.objects.filter(project=project, state="active")) == [active]
    assert ModelVersion.objects.filter(project=project).count() == 1
    assert RewardSettings.objects.get(project=project).backbone == tiny
