"""Celery tasks: thin adapters that take an id and call a service (DESIGN §10)."""

from celery import shared_task

from annotate.tasks import RETRY

from . import audit, reports


@shared_task(name="quality.tasks.make_quality_report", acks_late=True, **RETRY)
def make_quality_report(report_id: int) -> str:
    from .models import QualityReport

    if not QualityReport.objects.filter(pk=report_id).exists():
        return "gone"
    return reports.quality_report_run(report_id=report_id).status


@shared_task(name="quality.tasks.quality_reports_sweep")
def quality_reports_sweep() -> int:
    return reports.quality_reports_sweep()


@shared_task(name="quality.tasks.run_noise_audit", acks_late=True, **RETRY)
def run_noise_audit(audit_id: int) -> str:
    from .models import NoiseAudit

    if not NoiseAudit.objects.filter(pk=audit_id).exists():
        return "gone"
    return audit.noise_audit_run(audit_id=audit_id).status


@shared_task(name="quality.tasks.noise_audits_autorun")
def noise_audits_autorun() -> int:
    return audit.noise_audits_autorun()


@shared_task(name="quality.tasks.noise_audits_sweep")
def noise_audits_sweep() -> int:
    return audit.noise_audits_sweep()
