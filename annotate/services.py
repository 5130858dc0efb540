"""Writes for the annotate app (keyword-only services, DESIGN §10).

Imports run in two phases. Validation parses the whole file into memory-light
records and commits progress as it goes (other requests can watch it). Writing
happens in one transaction with the project row locked, so a file is imported
entirely or not at all, and two imports into one project never interleave.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from .importers import PARSERS, ImportRejected, LabelRecord, Record
from .models import Comparison, ImportJob, Judgment, LabelSource, Membership, Project, Prompt, Response, Role

log = logging.getLogger(__name__)
User = get_user_model()

PROGRESS_EVERY = 500
BATCH = 2000
FLIP = {"A": "B", "B": "A", "tie": "tie", "both_bad": "both_bad", "na": "na"}


class ImportCancelled(Exception):
    pass


# --- projects and members -------------------------------------------------------


@transaction.atomic
def project_create(*, name: str, slug: str, created_by=None, **fields) -> Project:
    project = Project(name=name, slug=slug, created_by=created_by, **fields)
    project.full_clean()
    project.save()
    if created_by is not None and not created_by.is_staff:
        Membership.objects.create(project=project, user=created_by, role=Role.RESEARCHER)
    return project


@transaction.atomic
def membership_set(*, project: Project, user, role: str) -> Membership:
    if role not in Role.values:
        raise ValueError(f"role must be one of {', '.join(Role.values)}")
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


@transaction.atomic
def comparisons_generate(*, project: Project, max_pairs_per_prompt: int = 45, seed: int = 0) -> int:
    """Create the candidate pairs of every prompt: all K(K−1)/2 when that is at most
    ``max_pairs_per_prompt``, else a seeded uniform sample of that many. Existing
    pairs are kept; returns how many were created."""
    import itertools
    import random

    rng = random.Random(seed)
    by_prompt: dict[int, list[int]] = defaultdict(list)
    for prompt_id, response_id in Response.objects.filter(prompt__project=project).values_list("prompt_id", "id"):
        by_prompt[prompt_id].append(response_id)
    existing = set(Comparison.objects.filter(project=project).values_list("response_a_id", "response_b_id"))
    new = []
    for prompt_id, ids in sorted(by_prompt.items()):
        pairs = list(itertools.combinations(sorted(ids), 2))
        if len(pairs) > max_pairs_per_prompt:
            pairs = rng.sample(pairs, max_pairs_per_prompt)
        new.extend(
            Comparison(project=project, prompt_id=prompt_id, response_a_id=a, response_b_id=b, open_slots=project.overlap)
            for a, b in pairs
            if (a, b) not in existing
        )
    Comparison.objects.bulk_create(new, batch_size=BATCH)
    return len(new)


# --- import jobs ------------------------------------------------------------------


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
    from .tasks import run_import

    transaction.on_commit(lambda: run_import.delay(job.pk))


def import_job_cancel(*, job: ImportJob) -> bool:
    """Ask a running import to stop; a queued one stops at once. Returns whether it applied."""
    updated = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.CANCELLED, cancel_requested=True, finished_at=timezone.now()
    )
    if updated:
        return True
    return bool(
        ImportJob.objects.filter(pk=job.pk, status__in=ImportJob.ACTIVE_STATES).update(cancel_requested=True)
    )


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


def import_jobs_sweep(*, stale_after_seconds: int = 900) -> int:
    """Fail jobs whose worker stopped heart-beating (killed mid-run); returns how many."""
    cutoff = timezone.now() - timezone.timedelta(seconds=stale_after_seconds)
    return ImportJob.objects.filter(
        status__in=[ImportJob.Status.VALIDATING, ImportJob.Status.WRITING], heartbeat_at__lt=cutoff
    ).update(status=ImportJob.Status.FAILED, error="the worker stopped responding; nothing was imported", finished_at=timezone.now())


def import_file(*, project: Project, format: str, path: Path, created_by=None) -> ImportJob:
    """Synchronous import (management command, tests): create a job and run it here."""
    job = import_job_create(project=project, format=format, source_path=Path(path), created_by=created_by)
    return import_job_run(job_id=job.pk)


def _check_cancel(job: ImportJob) -> None:
    if ImportJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
        raise ImportCancelled()


def _import_file(job: ImportJob) -> dict[str, int]:
    path = Path(job.file_path)
    if not path.is_file():
        raise ImportRejected(f"the uploaded file is gone: {path.name}")
    records: list[Record] = []
    for record in PARSERS[job.format](path):
        records.append(record)
        if len(records) % PROGRESS_EVERY == 0:
            _check_cancel(job)
            ImportJob.objects.filter(pk=job.pk).update(records_done=len(records), heartbeat_at=timezone.now())
    _check_duplicate_labels(records)
    _check_cancel(job)
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.WRITING, records_done=len(records), progress=0.5, heartbeat_at=timezone.now()
    )
    try:
        with transaction.atomic():
            Project.objects.select_for_update().get(pk=job.project_id)
            counts = _write(job, records)
            _check_cancel(job)
    except IntegrityError as exc:
        raise ImportRejected(f"the data conflicts with what is already stored: {exc}") from None
    return counts


def _check_duplicate_labels(records: list[Record]) -> None:
    """One label per (pair, annotator): a second one in the same file is an error, not an update."""
    seen: dict[tuple, int] = {}
    for record in records:
        for label in record.labels:
            key = (record.prompt_id, frozenset((label.a, label.b)), label.annotator)
            if key in seen:
                raise ImportRejected(
                    f"a second label by {label.annotator!r} for the same pair (the first is on line {seen[key]})",
                    line=record.line,
                    field="labels",
                )
            seen[key] = record.line


def _chunks(items: list, size: int = BATCH) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _write(job: ImportJob, records: list[Record]) -> dict[str, int]:
    project = job.project
    counts: dict[str, int] = defaultdict(int)
    counts["records"] = len(records)

    # Prompts: the first record with an id wins; a later one must agree with it.
    first_by_prompt: dict[str, Record] = {}
    for r in records:
        prev = first_by_prompt.setdefault(r.prompt_id, r)
        if prev is not r and prev.conversation != r.conversation:
            raise ImportRejected(
                f"prompt id {r.prompt_id!r} was given a different conversation on line {prev.line}", line=r.line, field="id"
            )
    prompts: dict[str, Prompt] = {}
    for chunk in _chunks(list(first_by_prompt)):
        for p in Prompt.objects.filter(project=project, external_id__in=chunk):
            prompts[p.external_id] = p
    for ext, p in prompts.items():
        if p.conversation != first_by_prompt[ext].conversation:
            raise ImportRejected(
                f"prompt id {ext!r} already exists in this project with a different conversation",
                line=first_by_prompt[ext].line,
                field="id",
            )
    counts["prompts_existing"] = len(prompts)
    new_prompts = [
        Prompt(project=project, external_id=ext, conversation=r.conversation, metadata=r.prompt_metadata, ranking_slots=project.overlap)
        for ext, r in first_by_prompt.items()
        if ext not in prompts
    ]
    for chunk in _chunks(new_prompts):
        for p in Prompt.objects.bulk_create(chunk):
            prompts[p.external_id] = p
    counts["prompts_created"] = len(new_prompts)

    # Responses, keyed by (prompt, response id).
    wanted: dict[tuple[int, str], tuple[Record, object]] = {}
    for r in records:
        pk = prompts[r.prompt_id].pk
        for resp in r.responses:
            key = (pk, resp.external_id)
            prev = wanted.setdefault(key, (r, resp))
            if prev[1] is not resp and prev[1].text != resp.text:
                raise ImportRejected(
                    f"response id {resp.external_id!r} has a different text on line {prev[0].line}",
                    line=r.line,
                    field="responses",
                )
    responses: dict[tuple[int, str], Response] = {}
    by_prompt: dict[int, list[str]] = defaultdict(list)
    for pk, ext in wanted:
        by_prompt[pk].append(ext)
    new_prompt_ids = {np.external_id for np in new_prompts}
    existing_prompt_ids = {p.pk for p in prompts.values() if p.external_id not in new_prompt_ids}
    for chunk in _chunks(sorted(existing_prompt_ids)):
        for resp in Response.objects.filter(prompt_id__in=chunk):
            responses[(resp.prompt_id, resp.external_id)] = resp
    for key, resp in responses.items():
        if key in wanted and wanted[key][1].text != resp.text:
            raise ImportRejected(
                f"response id {key[1]!r} already exists for this prompt with a different text",
                line=wanted[key][0].line,
                field="responses",
            )
    new_responses = [
        Response(prompt_id=key[0], external_id=key[1], text=rr.text, source=rr.source, metadata=rr.metadata, rating_slots=project.overlap)
        for key, (_, rr) in wanted.items()
        if key not in responses
    ]
    for chunk in _chunks(new_responses):
        for resp in Response.objects.bulk_create(chunk):
            responses[(resp.prompt_id, resp.external_id)] = resp
    counts["responses_created"] = len(new_responses)
    counts["responses_existing"] = len(wanted) - len(new_responses)

    # Comparisons: one per labelled pair, in canonical order (lower id first).
    pairs: dict[tuple[int, int], int] = {}
    for r in records:
        ppk = prompts[r.prompt_id].pk
        for label in r.labels:
            a, b = responses[(ppk, label.a)].pk, responses[(ppk, label.b)].pk
            pairs.setdefault((min(a, b), max(a, b)), ppk)
    comparisons: dict[tuple[int, int], Comparison] = {}
    response_ids = sorted({x for pair in pairs for x in pair})
    for chunk in _chunks(response_ids):
        for c in Comparison.objects.filter(response_a_id__in=chunk):
            comparisons[(c.response_a_id, c.response_b_id)] = c
    new_comparisons = [
        Comparison(project=project, prompt_id=ppk, response_a_id=a, response_b_id=b, open_slots=project.overlap)
        for (a, b), ppk in pairs.items()
        if (a, b) not in comparisons
    ]
    for chunk in _chunks(new_comparisons):
        for c in Comparison.objects.bulk_create(chunk):
            comparisons[(c.response_a_id, c.response_b_id)] = c
    counts["comparisons_created"] = len(new_comparisons)
    counts["comparisons_existing"] = len(pairs) - len(new_comparisons)

    # Pseudonymous annotators: inactive accounts that can never log in.
    usernames = sorted({label.annotator for r in records for label in r.labels})
    users: dict[str, object] = {}
    for chunk in _chunks(usernames):
        for u in User.objects.filter(username__in=chunk):
            users[u.username] = u
    for name in usernames:
        if name not in users:
            u = User(username=name[:150], is_active=False)
            u.set_unusable_password()
            users[name] = u
    new_users = [u for u in users.values() if u.pk is None]
    User.objects.bulk_create(new_users)
    if new_users:
        users.update({u.username: u for u in User.objects.filter(username__in=[u.username for u in new_users])})
    counts["annotators_created"] = len(new_users)
    counts["annotators"] = len(usernames)

    # Judgments: upsert on (comparison, annotator) so re-importing a file changes nothing.
    judgments = []
    for r in records:
        ppk = prompts[r.prompt_id].pk
        for label in r.labels:
            a, b = responses[(ppk, label.a)].pk, responses[(ppk, label.b)].pk
            judgments.append(_judgment(job, comparisons[(min(a, b), max(a, b))], users[label.annotator], label, a > b))
    before = Judgment.objects.filter(comparison__project=project).count()
    for chunk in _chunks(judgments):
        Judgment.objects.bulk_create(
            chunk,
            update_conflicts=True,
            unique_fields=["comparison", "annotator"],
            update_fields=["choice", "strength", "criteria", "rationale", "time_on_task_ms", "metadata", "updated_at"],
        )
    after = Judgment.objects.filter(comparison__project=project).count()
    counts["judgments_created"] = after - before
    counts["judgments_updated"] = len(judgments) - (after - before)
    return dict(counts)


def _judgment(job: ImportJob, comparison: Comparison, annotator, label: LabelRecord, swapped: bool) -> Judgment:
    """Map a label given against (a, b) as in the file onto the canonical (A, B)."""
    choice = FLIP[label.choice] if swapped else label.choice
    criteria = {k: (FLIP[v] if swapped else v) for k, v in label.criteria.items()}
    strength = None
    if label.strength is not None:
        strength = {"A": -label.strength, "B": label.strength, "tie": 0}.get(choice)
    return Judgment(
        comparison=comparison,
        annotator=annotator,
        choice=choice,
        strength=strength,
        criteria=criteria,
        rationale=label.rationale,
        time_on_task_ms=label.time_on_task_ms,
        source=LabelSource.IMPORTED,
        import_job=job,
        metadata=label.metadata,
        updated_at=timezone.now(),
    )
