"""Celery tasks of imports and exports: thin adapters that take an id and call a
service (DESIGN §10), with annotate's ``RETRY``."""

from celery import shared_task

from annotate.models import ExportJob, ImportJob
from annotate.tasks import RETRY

from .exports import services as exports
from .imports import services as imports


@shared_task(name="dataio.tasks.run_import", acks_late=True, **RETRY)
def run_import(job_id: int) -> str:
    if not ImportJob.objects.filter(pk=job_id).exists():
        return "gone"
    return imports.import_job_run(job_id=job_id).status


@shared_task(name="dataio.tasks.import_jobs_sweep")
def import_jobs_sweep() -> int:
    return imports.import_jobs_sweep()


@shared_task(name="dataio.tasks.run_export", acks_late=True, **RETRY)
def run_export(job_id: int) -> str:
    if not ExportJob.objects.filter(pk=job_id).exists():
        return "gone"
    return exports.export_job_run(job_id=job_id).status


@shared_task(name="dataio.tasks.export_jobs_sweep")
def export_jobs_sweep() -> int:
    return exports.export_jobs_sweep()
