"""The quality report: computed by a worker, stored, read by the dashboard.

One report holds the agreement per criterion, the overall agreement by week, the
label mix and the annotator table. Making it reads every human label of the
project (Dawid-Skene and MACE fit on all of them), so it never runs in a web
request: ``quality_report_enqueue`` queues it once the request commits, and a
project has at most one report queued or running.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from annotate.jobs import job_enqueue
from annotate.models import Project

from . import annotators, services
from .models import QualityReport

log = logging.getLogger(__name__)
STALE_AFTER_SECONDS = 900


@transaction.atomic
def quality_report_enqueue(*, project: Project, created_by=None) -> QualityReport:
    """Queue a new report, or return the one already queued or running."""
    Project.objects.select_for_update().get(pk=project.pk)  # one enqueue at a time per project
    active = QualityReport.objects.filter(project=project, status__in=QualityReport.ACTIVE_STATES).first()
    if active is not None:
        return active
    report = QualityReport.objects.create(project=project, created_by=created_by)
    from .tasks import make_quality_report

    job_enqueue(task=make_quality_report, args=(report.pk,), job=report)
    return report


def quality_report_run(*, report_id: int) -> QualityReport:
    """Make a queued report; claimed with a conditional UPDATE so two workers given
    the same id never both make it. Progress is saved after each part."""
    now = timezone.now()
    if not QualityReport.objects.filter(pk=report_id, status=QualityReport.Status.QUEUED).update(
        status=QualityReport.Status.RUNNING, started_at=now, heartbeat_at=now
    ):
        return QualityReport.objects.get(pk=report_id)
    report = QualityReport.objects.select_related("project").get(pk=report_id)
    project = report.project
    parts = (
        ("agreement", lambda: services.project_agreement(project=project)),
        ("agreement_by_week", lambda: services.agreement_by_week(project=project)),
        ("label_mix", lambda: services.label_mix(project=project)),
        ("annotators", lambda: annotators.annotator_table(project=project)),
    )
    result: dict = {}
    try:
        for done, (name, make) in enumerate(parts, start=1):
            result[name] = make()
            if not QualityReport.objects.filter(pk=report_id, cancel_requested=False).update(
                progress=done / len(parts), heartbeat_at=timezone.now()
            ):
                QualityReport.objects.filter(pk=report_id).update(
                    status=QualityReport.Status.CANCELLED, finished_at=timezone.now())
                return QualityReport.objects.get(pk=report_id)
    except Exception as exc:  # a failed report must still end, and say why
        log.exception("quality report %s failed", report_id)
        QualityReport.objects.filter(pk=report_id).update(
            status=QualityReport.Status.FAILED, error=f"internal error: {exc}"[:2000], finished_at=timezone.now())
    else:
        QualityReport.objects.filter(pk=report_id).update(
            status=QualityReport.Status.SUCCEEDED, result=result, progress=1.0, finished_at=timezone.now())
    return QualityReport.objects.get(pk=report_id)


def quality_reports_sweep(*, stale_after_seconds: int = STALE_AFTER_SECONDS) -> int:
    return QualityReport.sweep(stale_after_seconds=stale_after_seconds,
                               error="the worker stopped responding; nothing was stored")


def latest_reports(*, project: Project) -> tuple[QualityReport | None, QualityReport | None]:
    """(the newest finished report, the one queued or running if any)."""
    done = QualityReport.objects.filter(project=project, status=QualityReport.Status.SUCCEEDED).first()
    active = QualityReport.objects.filter(project=project, status__in=QualityReport.ACTIVE_STATES).first()
    return done, active
