"""Jobs that no worker ever picked up (a queue that lost its message) are failed
by the sweep after PREFLAB_JOB_PICKUP_MINUTES, so the project accepts the next one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotate.jobs import jobs_unclaimed_sweep
from annotate.models import ExportJob, ImportJob
from models_svc.models import TrainingRun
from quality.models import QualityReport

pytestmark = pytest.mark.django_db


def test_sweep_fails_old_queued_jobs_of_every_kind_and_leaves_the_rest(project, settings, tmp_path):
    settings.JOB_PICKUP_SECONDS = 3600
    old = timezone.now() - timedelta(hours=2)
    upload = tmp_path / "upload.jsonl"
    upload.write_text("{}\n")
    rows = [
        TrainingRun.objects.create(project=project, config={}),
        ImportJob.objects.create(project=project, format="jsonl", file_path=str(upload)),
        ExportJob.objects.create(project=project, format="raw", file_format="jsonl", snapshot_id="s"),
        QualityReport.objects.create(project=project),
    ]
    for row in rows:
        type(row).objects.filter(pk=row.pk).update(created_at=old)
    fresh = TrainingRun.objects.create(project=project, config={})
    running = TrainingRun.objects.create(project=project, config={}, status=TrainingRun.Status.RUNNING)
    TrainingRun.objects.filter(pk=running.pk).update(created_at=old)

    assert jobs_unclaimed_sweep() == 4
    for row in rows:
        row.refresh_from_db()
        assert row.status == "failed"
        assert row.error.startswith("no worker picked this job up within 60 minutes")
    assert not upload.exists()  # a never-run import keeps no copy of its file
    fresh.refresh_from_db()
    running.refresh_from_db()
    assert (fresh.status, running.status) == ("queued", "running")
