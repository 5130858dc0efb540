"""Import jobs (keyword-only services, DESIGN §10).

Imports run in two phases. Validation parses the file once, as a stream, keeping
only compact per-id state in memory (``index.FileIndex``) and spilling compact rows
to a temporary file; it commits progress as it goes (other requests can watch it).
Writing reads the spill back in chunks inside one transaction with the project row
locked, so a file is imported entirely or not at all, and two imports into one
project never interleave. On PostgreSQL the big tables are written with COPY
(``writer``).
"""

from __future__ import annotations

import gc
import logging
import pickle
import shutil
import tempfile
import uuid
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotate.counters import counters_reconcile
from annotate.jobs import job_enqueue
from annotate.models import ImportJob, Project

from .index import FileIndex
from .parsers import PARSERS
from .parsers.base import ImportRejected, ReadLimits, read_limits
from .writer import ImportWriter

log = logging.getLogger(__name__)

PROGRESS_EVERY = 5000  # records between progress commits and cancel checks while validating
IMPORT_CHUNK = 20_000  # records per write round (one COPY per table); tests lower it


class ImportCancelled(Exception):
    pass


def import_job_create(*, project: Project, format: str, source_path: Path, original_name: str = "", created_by=None) -> ImportJob:
    """Copy the file into the data directory and record a queued job (the caller enqueues it)."""
    if format not in PARSERS:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(PARSERS)}")
    settings.UPLOAD_DIR.mkdir(parents=True, exist_ok=True)
    name = original_name or source_path.name
    stored = settings.UPLOAD_DIR / f"{uuid.uuid4().hex}-{Path(name).name}"
    shutil.copyfile(source_path, stored)
    return ImportJob.objects.create(
        project=project, format=format, file_path=str(stored), original_name=name, created_by=created_by
    )


def import_job_store_upload(*, project: Project, format: str, upload, created_by=None) -> ImportJob:
    """Save an uploaded file (Django UploadedFile) and record a queued job."""
    if format not in PARSERS:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(PARSERS)}")
    if upload.size > settings.IMPORT_MAX_BYTES:
        raise ValueError(f"the file is larger than {settings.IMPORT_MAX_BYTES // (1024 * 1024)} MB")
    settings.UPLOAD_DIR.mkdir(parents=True, exist_ok=True)
    stored = settings.UPLOAD_DIR / f"{uuid.uuid4().hex}-{Path(upload.name).name}"
    with open(stored, "wb") as fh:
        for chunk in upload.chunks():
            fh.write(chunk)
    return ImportJob.objects.create(
        project=project, format=format, file_path=str(stored), original_name=upload.name, created_by=created_by
    )


def import_job_enqueue(*, job: ImportJob) -> None:
    """Run the job on a worker once the current transaction commits."""
    from ..tasks import run_import

    job_enqueue(task=run_import, args=(job.pk,), job=job)


def import_job_cancel(*, job: ImportJob) -> bool:
    """Ask a running import to stop; a queued one stops at once (and its file goes).
    Returns whether it applied."""
    applied = job.request_cancel()
    job.refresh_from_db()
    if job.status == ImportJob.Status.CANCELLED:
        _remove_upload(job)
    return applied


def import_job_run(*, job_id: int) -> ImportJob:
    """Run a queued import to the end. Claimed with a conditional UPDATE so two
    workers given the same id never both run it."""
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.VALIDATING, started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    job = ImportJob.objects.get(pk=job_id)
    if not claimed:
        log.info("import %s not claimed: status %s", job_id, job.status)
        return job
    try:
        counts = _import_file(job)
    except ImportRejected as exc:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.FAILED,
            error=str(exc),
            error_line=exc.line,
            error_field=exc.field[:200],
            finished_at=timezone.now(),
        )
    except ImportCancelled:
        ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.CANCELLED, finished_at=timezone.now())
    except Exception as exc:  # an unexpected failure must still leave the job in a final state
        log.exception("import %s crashed", job_id)
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.FAILED, error=f"internal error: {exc}", finished_at=timezone.now()
        )
    else:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.SUCCEEDED, progress=1.0, counts=counts, finished_at=timezone.now()
        )
        job.refresh_from_db()
        return job
    _remove_upload(job)
    job.refresh_from_db()
    return job


def _remove_upload(job: ImportJob) -> None:
    """A failed or cancelled import keeps no copy of its file (ImportJob.discard_files)."""
    job.discard_files()


def import_jobs_sweep(*, stale_after_seconds: int = 900) -> int:
    """Fail jobs whose worker stopped heart-beating (killed mid-run); returns how many."""
    return ImportJob.sweep(
        stale_after_seconds=stale_after_seconds, error="the worker stopped responding; nothing was imported",
        on_stale=_remove_upload,
    )


def import_file(*, project: Project, format: str, path: Path, created_by=None) -> ImportJob:
    """Synchronous import (management command, tests): create a job and run it here."""
    job = import_job_create(project=project, format=format, source_path=Path(path), created_by=created_by)
    return import_job_run(job_id=job.pk)


def _check_cancel(job: ImportJob) -> None:
    if ImportJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
        raise ImportCancelled()


def _beat(job: ImportJob, records: int) -> None:
    """While validating: stop on a cancel request, else report progress."""
    _check_cancel(job)
    ImportJob.objects.filter(pk=job.pk).update(records_done=records, heartbeat_at=timezone.now())


def _import_file(job: ImportJob) -> dict[str, int]:
    """Validate while streaming the file into a spill file of compact rows, then
    write those rows in chunks inside one transaction with the project row locked.

    The parser runs once: at a million rows it costs as much as the writes. Only
    small per-id state stays in memory (``FileIndex``); the records go to a
    temporary file, so memory does not grow with the file.
    """
    path = Path(job.file_path)
    if not path.is_file():
        raise ImportRejected(f"the uploaded file is gone: {path.name}")
    # A million records allocate tens of millions of small containers, and the
    # cyclic collector would rescan the long-lived index and id maps each time
    # (a quarter of the CPU time). Nothing here builds reference cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _import_stream(job, path)
    finally:
        if collecting:
            gc.enable()


def _import_stream(job: ImportJob, path: Path) -> dict[str, int]:
    index = FileIndex()
    with tempfile.TemporaryFile(prefix="preflab-import-") as spill:
        chunk: list[tuple] = []
        # The caps, and a cancel check every few MB read, apply inside the parser: a
        # file of blank lines or one endless line yields no record to check between.
        limits = ReadLimits(max_inflated=settings.IMPORT_MAX_INFLATED_BYTES, max_line=settings.IMPORT_MAX_LINE_BYTES,
                            check=lambda: _beat(job, index.records))
        with read_limits(limits):
            for record in PARSERS[job.format](path):
                chunk.append(index.add(record))
                if len(chunk) >= IMPORT_CHUNK:
                    pickle.dump(chunk, spill, protocol=pickle.HIGHEST_PROTOCOL)
                    chunk = []
                if index.records % PROGRESS_EVERY == 0:
                    _beat(job, index.records)
        if chunk:
            pickle.dump(chunk, spill, protocol=pickle.HIGHEST_PROTOCOL)
        del chunk
        index.seen.clear()  # the duplicate checks are done; the writer needs the ids only
        _check_cancel(job)
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.WRITING, records_done=index.records, progress=0.5, heartbeat_at=timezone.now()
        )
        spill.seek(0)
        try:
            with transaction.atomic():
                project = Project.objects.select_for_update().get(pk=job.project_id)
                writer = ImportWriter(job=job, project=project, index=index)
                while True:
                    try:
                        entries = pickle.load(spill)
                    except EOFError:
                        break
                    writer.write(entries)
                    # A SELECT only: updating the job row here would hold its lock
                    # and make the researcher's Cancel wait for the whole write.
                    _check_cancel(job)
                counts = writer.finish()
                # the progress tallies count imported labels too: recount them in the
                # same transaction as the rows, so they never disagree
                counters_reconcile(project=project)
        except IntegrityError as exc:
            raise ImportRejected(f"the data conflicts with what is already stored: {exc}") from None
    return counts
