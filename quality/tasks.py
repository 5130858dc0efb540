"""Celery tasks: thin adapters that take an id and call a service (DESIGN §10)."""

from celery import shared_task
from django.db import OperationalError

from . import reports


@shared_task(name="quality.tasks.make_quality_report", acks_late=True,
             autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def make_quality_report(report_id: int) -> str:
    from .models import QualityReport

    if not QualityReport.objects.filter(pk=report_id).exists():
        return "gone"
    return reports.quality_report_run(report_id=report_id).status


@shared_task(name="quality.tasks.quality_reports_sweep")
def quality_reports_sweep() -> int:
    return reports.quality_reports_sweep()
