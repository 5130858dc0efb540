"""Writing an export (``export_write``) and export jobs (keyword-only services, DESIGN §10).

An export is a folder: the data (one file, or a ``datasets`` folder written by
``Dataset.save_to_disk``) and a ``README.md`` dataset card. It is built under a
temporary name beside its final place and renamed only when complete, so a
cancelled or failed export never leaves a folder that looks finished.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from django.conf import settings
from django.utils import timezone

from annotate.jobs import job_enqueue
from annotate.models import ExportJob, Project
from quality.services import judgments_agreement

from . import card
from .context import CHUNK, Context, ExportCancelled
from .rows import PRODUCERS
from .spec import PAIRWISE_FORMATS, ExportSpec, snapshot_parse, snapshot_take
from .writers import WRITERS

log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    path: Path  # the export folder
    data_path: Path  # the data file (or datasets folder) inside it
    card_path: Path
    archive_path: Path | None  # a zip of the folder, for downloading a datasets folder
    snapshot: str
    rows: int
    counts: dict[str, int]


def export_write(
    *, project: Project, spec: ExportSpec, out: Path, snapshot: str | None = None,
    on_progress: Callable[[float, int], bool] | None = None, archive: bool = False,
) -> ExportResult:
    """Write the export folder ``out`` (data and README.md); ``snapshot`` defaults to
    now. ``on_progress(fraction, rows)`` runs between chunks; returning False cancels
    (``ExportCancelled``). ``archive`` also writes ``out.zip`` for a datasets folder.
    Nothing appears at ``out`` until the export is complete."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} already exists; choose a new folder")
    snap = snapshot_take(project=project) if snapshot is None else snapshot_parse(project=project, text=snapshot)
    ctx = Context(project, spec, snap, on_progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.part-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    zip_tmp = out.parent / f".{out.name}.zip.part-{uuid.uuid4().hex[:8]}"
    archive_path = out.with_name(out.name + ".zip") if archive and spec.file_format == "hf" else None
    try:
        columns, rows = PRODUCERS[spec.format](ctx)
        writer = WRITERS[spec.file_format](tmp / spec.data_name, columns, **spec.writer_options())
        try:
            while batch := list(itertools.islice(rows, CHUNK)):
                writer.write(batch)
                ctx.rows += len(batch)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        if spec.format in PAIRWISE_FORMATS:
            # One home for agreement: the card states what ``manage.py agreement`` would
            # for the snapshot's human labels, on the answer this export uses.
            ctx.agreement = judgments_agreement(judgments=ctx.judgments(), criterion=spec.criterion)
        (tmp / "README.md").write_text(card.dataset_card(ctx, columns, timezone.now()), encoding="utf-8")
        if archive_path is not None:
            with zipfile.ZipFile(zip_tmp, "w", zipfile.ZIP_STORED) as zf:
                for f in sorted(tmp.rglob("*")):
                    if f.is_file():
                        zf.write(f, Path(out.name) / f.relative_to(tmp))
        if out.exists():
            out.rmdir()  # checked empty above
        tmp.rename(out)
        if archive_path is not None:
            zip_tmp.rename(archive_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        zip_tmp.unlink(missing_ok=True)
        raise
    return ExportResult(out, out / spec.data_name, out / "README.md", archive_path, str(snap), ctx.rows, dict(ctx.counts))


# --- export jobs ---------------------------------------------------------------------------------------


def export_job_create(*, project: Project, spec: ExportSpec, created_by=None) -> ExportJob:
    """Record a queued export at today's snapshot (the caller enqueues it)."""
    return ExportJob.objects.create(
        project=project, created_by=created_by, format=spec.format, file_format=spec.file_format,
        options=spec.options(), snapshot_id=str(snapshot_take(project=project)),
    )


def export_job_enqueue(*, job: ExportJob) -> None:
    """Run the job on a worker once the current transaction commits."""
    from ..tasks import run_export

    job_enqueue(task=run_export, args=(job.pk,), job=job)


def export_job_cancel(*, job: ExportJob) -> bool:
    """Stop an export: a queued one at once, a running one at its next chunk."""
    return job.request_cancel()


def _job_folder(job: ExportJob) -> Path:
    return Path(settings.EXPORT_DIR) / job.project.slug / f"export-{job.pk}"


def export_job_file(*, job: ExportJob, which: str) -> tuple[Path, str]:
    """A finished export's ``data`` file (the zip of a datasets folder) or its
    ``card``, with a download name; FileNotFoundError when it is gone from disk."""
    if which == "card":
        path, name = Path(job.path) / "README.md", f"{job.project.slug}-{job.format}-{job.snapshot_id}-README.md"
    else:
        path = Path(job.file_path)
        name = f"{job.project.slug}-{job.format}-{job.snapshot_id}{path.suffix}"
    if job.status != ExportJob.Status.SUCCEEDED or not path.is_file():
        raise FileNotFoundError(path)
    return path, name


def export_job_card(*, job: ExportJob) -> dict[str, str] | None:
    """The card of a finished export, for its page: ``metadata`` (the YAML front
    matter the Hugging Face Hub reads, not markdown) and ``body`` (markdown); None
    while the job has not succeeded or once its folder is gone."""
    try:
        path, _ = export_job_file(job=job, which="card")
    except FileNotFoundError:
        return None
    text = path.read_text(encoding="utf-8")
    end = text.find("\n---\n", 4) if text.startswith("---\n") else -1
    if end == -1:
        return {"metadata": "", "body": text}
    return {"metadata": text[4:end], "body": text[end + 5:]}


def export_job_run(*, job_id: int) -> ExportJob:
    """Run a queued export to the end; claimed with a conditional UPDATE so two
    workers given the same id never both run it."""
    now = timezone.now()
    claimed = ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.QUEUED).update(
        status=ExportJob.Status.RUNNING, started_at=now, heartbeat_at=now
    )
    job = ExportJob.objects.select_related("project").get(pk=job_id)
    if not claimed:
        log.info("export %s not claimed: status %s", job_id, job.status)
        return job

    def progress(fraction: float, rows: int) -> bool:
        # One query reports progress and sees a cancel request: it matches no row then.
        return bool(ExportJob.objects.filter(pk=job_id, cancel_requested=False).update(
            progress=fraction, rows_written=rows, heartbeat_at=timezone.now()
        ))

    try:
        result = export_write(
            project=job.project, spec=ExportSpec.from_job(job), out=_job_folder(job), snapshot=job.snapshot_id,
            on_progress=progress, archive=True,
        )
    except ExportCancelled:
        ExportJob.objects.filter(pk=job_id).update(status=ExportJob.Status.CANCELLED, finished_at=timezone.now())
    except ValueError as exc:
        ExportJob.objects.filter(pk=job_id).update(status=ExportJob.Status.FAILED, error=str(exc), finished_at=timezone.now())
    except Exception as exc:  # an unexpected failure must still leave the job in a final state
        log.exception("export %s crashed", job_id)
        ExportJob.objects.filter(pk=job_id).update(
            status=ExportJob.Status.FAILED, error=f"internal error: {exc}", finished_at=timezone.now()
        )
    else:
        done = ExportJob.objects.filter(pk=job_id, cancel_requested=False).update(
            status=ExportJob.Status.SUCCEEDED, progress=1.0, rows_written=result.rows, counts=result.counts,
            path=str(result.path), file_path=str(result.archive_path or result.data_path), heartbeat_at=timezone.now(),
            finished_at=timezone.now(),
        )
        if not done:  # cancelled after the last chunk: the files go, as for any cancel
            shutil.rmtree(result.path, ignore_errors=True)
            if result.archive_path is not None:
                result.archive_path.unlink(missing_ok=True)
            ExportJob.objects.filter(pk=job_id).update(status=ExportJob.Status.CANCELLED, finished_at=timezone.now())
    job.refresh_from_db()
    return job


def export_jobs_sweep(*, stale_after_seconds: int = 900) -> int:
    """Fail exports whose worker stopped heart-beating (killed mid-run) and remove
    their partial files; returns how many."""
    return ExportJob.sweep(
        stale_after_seconds=stale_after_seconds, error="the worker stopped responding; no file was written",
        on_stale=_remove_partial_files,
    )


def _remove_partial_files(job: ExportJob) -> None:
    folder = _job_folder(job)
    for partial in folder.parent.glob(f".{folder.name}.*part-*"):
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
