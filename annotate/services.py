"""Writes for the annotate app (keyword-only services, DESIGN §10).

Imports run in two phases. Validation parses the file once, as a stream, keeping
only compact per-id state in memory and spilling compact rows to a temporary file;
it commits progress as it goes (other requests can watch it). Writing reads the
spill back in chunks inside one transaction with the project row locked, so a file
is imported entirely or not at all, and two imports into one project never
interleave. On PostgreSQL the big tables are written with COPY (``import_writer``).
"""

from __future__ import annotations

import gc
import json
import logging
import pickle
import shutil
import tempfile
import uuid
from array import array
from collections import defaultdict
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from rubrics.models import RubricVersion

from . import import_writer
from .importers import PARSERS, ImportRejected, Record
from .models import (
    Comparison, ImportJob, Judgment, LabelSource, Membership, Project, Prompt, Ranking, Rating, Response, Role,
)

log = logging.getLogger(__name__)
User = get_user_model()

PROGRESS_EVERY = 5000  # records between progress commits and cancel checks while validating
IMPORT_CHUNK = 20_000  # records per write round (one COPY per table); tests lower it
BATCH = 2000


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
    """Validate while streaming the file into a spill file of compact rows, then
    write those rows in chunks inside one transaction with the project row locked.

    The parser runs once: at a million rows it costs as much as the writes. Only
    small per-id state stays in memory (``_FileIndex``); the records go to a
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
    index = _FileIndex()
    with tempfile.TemporaryFile(prefix="preflab-import-") as spill:
        chunk: list[tuple] = []
        for record in PARSERS[job.format](path):
            chunk.append(index.add(record))
            if len(chunk) >= IMPORT_CHUNK:
                pickle.dump(chunk, spill, protocol=pickle.HIGHEST_PROTOCOL)
                chunk = []
            if index.records % PROGRESS_EVERY == 0:
                _check_cancel(job)
                ImportJob.objects.filter(pk=job.pk).update(records_done=index.records, heartbeat_at=timezone.now())
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
                writer = _ImportWriter(job=job, project=project, index=index)
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
        except IntegrityError as exc:
            raise ImportRejected(f"the data conflicts with what is already stored: {exc}") from None
    return counts


class _FileIndex:
    """What validation keeps of a whole file instead of its records: a small integer
    per prompt, response and annotator (with the first line that gave it and a hash of
    its text, to catch a later line that disagrees), and one packed integer per label
    for the one-label-per-(pair, annotator) rule. ``add`` turns a record into the
    compact tuple the writer reads back (texts only on their first occurrence)."""

    def __init__(self) -> None:
        self.prompts: dict[str, tuple[int, int, int]] = {}  # external id → (index, first line, conversation hash)
        self.responses: dict[tuple[int, str], tuple[int, int, int]] = {}  # (prompt index, id) → (index, first line, text hash)
        self.annotators: dict[str, int] = {}
        self.seen: dict[int, int] = {}  # packed (kind, keys…, annotator) → line
        self.records = self.labels = self.ratings = self.rankings = 0
        self._conversation: tuple[object, int] = (None, 0)  # the last one hashed (parsers share it between rows)

    def _once(self, key: int, record: Record, annotator: str, what: str, field: str) -> None:
        """One label per (pair, annotator), rating per (response, annotator) and ranking
        per (prompt, annotator): a second one in the same file is an error, not an update."""
        if key in self.seen:
            raise ImportRejected(
                f"a second {what} by {annotator!r} (the first is on {record.unit} {self.seen[key]})",
                line=record.line, field=field, unit=record.unit,
            )
        self.seen[key] = record.line

    def _annotator(self, name: str) -> int:
        found = self.annotators.get(name)
        if found is None:
            found = self.annotators[name] = len(self.annotators)
        return found

    def add(self, record: Record) -> tuple:
        self.records += 1
        if self._conversation[0] is record.conversation:
            digest = self._conversation[1]
        else:
            digest = hash(json.dumps(record.conversation, sort_keys=True))
            self._conversation = (record.conversation, digest)
        known = self.prompts.get(record.prompt_id)
        new_prompt = None
        if known is None:
            known = self.prompts[record.prompt_id] = (len(self.prompts), record.line, digest)
            new_prompt = (record.prompt_id, record.conversation, record.prompt_metadata)
        elif known[2] != digest:
            raise ImportRejected(
                f"prompt id {record.prompt_id!r} was given a different conversation on {record.unit} {known[1]}",
                line=record.line, field="id", unit=record.unit,
            )
        pidx = known[0]
        ridx: dict[str, int] = {}
        texts: dict[str, str] = {}
        new_responses = []
        for resp in record.responses:
            key = (pidx, resp.external_id)
            digest = hash(resp.text)
            seen = self.responses.get(key)
            if seen is None:
                seen = self.responses[key] = (len(self.responses), record.line, digest)
                new_responses.append((seen[0], resp.external_id, resp.text, resp.source, resp.metadata))
            elif seen[2] != digest:
                raise ImportRejected(
                    f"response id {resp.external_id!r} has a different text on {record.unit} {seen[1]}",
                    line=record.line, field="responses", unit=record.unit,
                )
            ridx[resp.external_id] = seen[0]
            texts[resp.external_id] = resp.text
        labels = []
        for label in record.labels:
            a, b, who = ridx[label.a], ridx[label.b], self._annotator(label.annotator)
            self._once(((min(a, b) << 32 | max(a, b)) << 32 | who) << 2, record, label.annotator,
                       "label for the same pair", "labels")
            labels.append((a, b, who, label.choice, label.strength, label.criteria, label.rationale,
                           label.time_on_task_ms, label.metadata))
        ratings = []
        for rating in record.ratings:
            r, who = ridx[rating.response], self._annotator(rating.annotator)
            self._once((r << 32 | who) << 2 | 1, record, rating.annotator, "rating of the same response", "ratings")
            text = texts[rating.response]
            spans = [{**span, "text": text[span["start"] : span["end"]]} for span in rating.spans]
            ratings.append((r, who, rating.scores, rating.rationale, spans, rating.time_on_task_ms, rating.metadata))
        rankings = []
        for ranking in record.rankings:
            who = self._annotator(ranking.annotator)
            self._once((pidx << 32 | who) << 2 | 2, record, ranking.annotator, "ranking of the same prompt", "rankings")
            rankings.append((who, [[ridx[ext] for ext in group] for group in ranking.groups], ranking.metadata))
        self.labels += len(labels)
        self.ratings += len(ratings)
        self.rankings += len(rankings)
        return (record.line, record.unit, pidx, new_prompt, new_responses, labels, ratings, rankings)


class _ImportWriter:
    """Writes the compact rows of ``_FileIndex.add`` chunk by chunk, mapping the
    file's small integers to row ids with arrays rather than per-row queries. Rows
    that already exist (same external id, same text) are reused, so re-importing a
    file adds nothing; labels are upserted on their unique keys."""

    def __init__(self, *, job: ImportJob, project: Project, index: _FileIndex) -> None:
        self.job, self.project, self.index = job, project, index
        self.bulk = import_writer.writer_for_connection()
        self.now = timezone.now()
        self.prompt_ids = array("q", bytes(8 * len(index.prompts)))  # index → row id; 0 until written
        self.prompt_existed = bytearray(len(index.prompts))
        self.response_ids = array("q", bytes(8 * len(index.responses)))
        self.response_existed = bytearray(len(index.responses))
        self.comparisons: dict[int, int] = {}  # response_a_id << 32 | response_b_id → comparison id
        self.new_comparisons: set[int] = set()  # ids this import created: no label can exist on them yet
        self.user_ids = array("q", bytes(8 * len(index.annotators)))
        self.names = list(index.annotators)
        self.counts: dict[str, int] = {
            "records": index.records, "prompts_existing": 0, "prompts_created": 0, "responses_created": 0,
            "responses_existing": 0, "comparisons_created": 0, "comparisons_existing": 0, "annotators_created": 0,
            "annotators": len(index.annotators),
        }
        # Created vs updated labels, from the row counts before and after (as bulk_create gives no such count).
        self.scopes = {
            "judgments": (Judgment.objects.filter(comparison__project=project), index.labels),
            "ratings": (Rating.objects.filter(response__prompt__project=project), index.ratings),
            "rankings": (Ranking.objects.filter(prompt__project=project), index.rankings),
        }
        self.before = {name: scope.count() for name, (scope, total) in self.scopes.items() if total}

    def write(self, entries: list[tuple]) -> None:
        self._prompts(entries)
        self._responses(entries)
        self._comparisons(entries)
        self._annotators(entries)
        self._judgments(entries)
        self._ratings(entries)
        self._rankings(entries)

    def finish(self) -> dict[str, int]:
        for name, (scope, total) in self.scopes.items():
            created = scope.count() - self.before[name] if total else 0
            self.counts[f"{name}_created"], self.counts[f"{name}_updated"] = created, total - created
        return self.counts

    def _prompts(self, entries: list[tuple]) -> None:
        # A prompt's first line carries its text (see _FileIndex.add), so it is new to this import.
        new = {e[3][0]: e for e in entries if e[3] is not None}
        if not new:
            return
        existing = []
        for batch in import_writer._batches(list(new)):
            existing.extend(
                Prompt.objects.filter(project=self.project, external_id__in=batch).values_list("external_id", "id", "conversation")
            )
        for ext, pk, conversation in existing:
            entry = new.pop(ext)
            if conversation != entry[3][1]:
                raise ImportRejected(
                    f"prompt id {ext!r} already exists in this project with a different conversation",
                    line=entry[0], field="id", unit=entry[1],
                )
            self.prompt_ids[entry[2]] = pk
            self.prompt_existed[entry[2]] = 1
        ids = self.bulk.insert(
            Prompt, ["project_id", "external_id", "conversation", "metadata", "ranking_slots", "created_at"],
            [(self.project.pk, ext, conv, meta, self.project.overlap, self.now) for ext, conv, meta in (e[3] for e in new.values())],
            key=["external_id"],
        )
        for ext, entry in new.items():
            self.prompt_ids[entry[2]] = ids[(ext,)]
        self.counts["prompts_existing"] += len(existing)
        self.counts["prompts_created"] += len(new)

    def _responses(self, entries: list[tuple]) -> None:
        new: dict[tuple[int, str], tuple] = {}  # (prompt id, response id) → (index, text, source, metadata, entry)
        for e in entries:
            prompt_id = self.prompt_ids[e[2]]
            for ridx, ext, text, source, meta in e[4]:
                new[(prompt_id, ext)] = (ridx, text, source, meta, e)
        if not new:
            return
        # Only a prompt that was already stored can hold responses this import did not write.
        older = sorted({self.prompt_ids[e[2]] for e in entries if e[4] and self.prompt_existed[e[2]]})
        existing = 0
        for batch in import_writer._batches(older):
            for prompt_id, ext, pk, text in Response.objects.filter(prompt_id__in=batch).values_list(
                "prompt_id", "external_id", "id", "text"
            ):
                found = new.pop((prompt_id, ext), None)
                if found is None:
                    continue
                if found[1] != text:
                    raise ImportRejected(
                        f"response id {ext!r} already exists for this prompt with a different text",
                        line=found[4][0], field="responses", unit=found[4][1],
                    )
                self.response_ids[found[0]] = pk
                self.response_existed[found[0]] = 1
                existing += 1
        overlap = self.project.overlap
        ids = self.bulk.insert(
            Response, ["prompt_id", "external_id", "text", "source", "metadata", "rating_slots", "created_at"],
            [(prompt_id, ext, text, source, meta, overlap, self.now) for (prompt_id, ext), (_, text, source, meta, _) in new.items()],
            key=["prompt_id", "external_id"],
        )
        for key, found in new.items():
            self.response_ids[found[0]] = ids[key]
        self.counts["responses_existing"] += existing
        self.counts["responses_created"] += len(new)

    def _comparisons(self, entries: list[tuple]) -> None:
        """One comparison per labelled pair, in canonical order (lower id first)."""
        pending: dict[int, tuple[int, int, int]] = {}  # packed pair → (a, b, prompt id)
        older: list[int] = []
        for e in entries:
            for label in e[5]:
                a, b = self.response_ids[label[0]], self.response_ids[label[1]]
                a, b = min(a, b), max(a, b)
                key = a << 32 | b
                if key in self.comparisons or key in pending:
                    continue
                pending[key] = (a, b, self.prompt_ids[e[2]])
                if self.response_existed[label[0]] and self.response_existed[label[1]]:
                    older.append(a)  # only a pair of stored responses can already have a comparison
        if not pending:
            return
        existing = 0
        for batch in import_writer._batches(sorted(set(older))):
            for a, b, pk in Comparison.objects.filter(response_a_id__in=batch).values_list("response_a_id", "response_b_id", "id"):
                if pending.pop(a << 32 | b, None) is not None:
                    self.comparisons[a << 32 | b] = pk
                    existing += 1
        overlap = self.project.overlap
        ids = self.bulk.insert(
            Comparison,
            ["project_id", "prompt_id", "response_a_id", "response_b_id", "priority", "open_slots", "is_gold",
             "gold_choice", "created_at"],
            [(self.project.pk, prompt_id, a, b, 0.0, overlap, False, "", self.now) for a, b, prompt_id in pending.values()],
            key=["response_a_id", "response_b_id"],
        )
        for key, (a, b, _) in pending.items():
            self.comparisons[key] = ids[(a, b)]
        self.new_comparisons.update(ids.values())
        self.counts["comparisons_existing"] += existing
        self.counts["comparisons_created"] += len(pending)

    def _annotators(self, entries: list[tuple]) -> None:
        """Pseudonymous annotators: inactive accounts that can never log in."""
        wanted = {label[2] for e in entries for label in e[5]}
        wanted.update(rating[1] for e in entries for rating in e[6])
        wanted.update(ranking[0] for e in entries for ranking in e[7])
        missing = sorted(i for i in wanted if not self.user_ids[i])
        if not missing:
            return
        names = {self.names[i][:150]: i for i in missing}
        for batch in import_writer._batches(list(names)):
            for username, pk in User.objects.filter(username__in=batch).values_list("username", "id"):
                self.user_ids[names.pop(username)] = pk
        new = []
        for username in names:
            user = User(username=username, is_active=False)
            user.set_unusable_password()
            new.append(user)
        User.objects.bulk_create(new)
        if new:
            for username, pk in User.objects.filter(username__in=list(names)).values_list("username", "id"):
                self.user_ids[names[username]] = pk
        self.counts["annotators_created"] += len(new)

    def _judgments(self, entries: list[tuple]) -> None:
        """Upsert on (comparison, annotator), mapping a label given against (a, b) as
        in the file onto the canonical (A, B)."""
        rows, fresh = [], []
        job_id, now, flip = self.job.pk, self.now, Comparison.Choice.flip
        for e in entries:
            for ra, rb, who, choice, strength, criteria, rationale, tot, meta in e[5]:
                a, b = self.response_ids[ra], self.response_ids[rb]
                if a > b:
                    a, b = b, a
                    choice = flip(choice)
                    criteria = {k: flip(v) for k, v in criteria.items()}
                if strength is not None:
                    strength = {"A": -strength, "B": strength, "tie": 0}.get(choice)
                comparison_id = self.comparisons[a << 32 | b]
                # A comparison made by this import is invisible to everyone else until
                # commit, and the file has one label per (pair, annotator): no conflict.
                (fresh if comparison_id in self.new_comparisons else rows).append(
                    (comparison_id, self.user_ids[who], choice, strength, criteria, rationale, [], [], tot,
                     LabelSource.IMPORTED, "", job_id, meta, now, now)
                )
        fields = ["comparison_id", "annotator_id", "choice", "strength", "criteria", "rationale", "spans", "flags",
                  "time_on_task_ms", "source", "derivation_rule", "import_job_id", "metadata", "created_at", "updated_at"]
        self.bulk.append(Judgment, fields, fresh)
        self.bulk.upsert(
            Judgment, fields, rows, unique_fields=["comparison", "annotator"],
            update_fields=["choice", "strength", "criteria", "rationale", "time_on_task_ms", "metadata", "updated_at"],
        )

    def _ratings(self, entries: list[tuple]) -> None:
        """Upsert on (response, annotator). Spans name the response by its row id, as
        the annotation page stores them, and carry the text they cover."""
        rows = []
        for e in entries:
            for ridx, who, scores, rationale, spans, tot, meta in e[6]:
                response_id = self.response_ids[ridx]
                rows.append((response_id, self.user_ids[who], scores, rationale,
                             [{"response": response_id, **span} for span in spans], tot, LabelSource.IMPORTED,
                             self.job.pk, meta, self.now, self.now))
        self.bulk.upsert(
            Rating,
            ["response_id", "annotator_id", "scores", "rationale", "spans", "time_on_task_ms", "source", "import_job_id",
             "metadata", "created_at", "updated_at"],
            rows, unique_fields=["response", "annotator"],
            update_fields=["scores", "rationale", "spans", "time_on_task_ms", "metadata", "updated_at"],
        )

    def _rankings(self, entries: list[tuple]) -> None:
        """Upsert on (prompt, annotator); groups hold response row ids, best first."""
        rows = []
        for e in entries:
            for who, groups, meta in e[7]:
                rows.append((self.prompt_ids[e[2]], self.user_ids[who],
                             [[self.response_ids[r] for r in group] for group in groups], "", LabelSource.IMPORTED,
                             self.job.pk, meta, self.now, self.now))
        self.bulk.upsert(
            Ranking,
            ["prompt_id", "annotator_id", "groups", "rationale", "source", "import_job_id", "metadata", "created_at",
             "updated_at"],
            rows, unique_fields=["prompt", "annotator"], update_fields=["groups", "metadata", "updated_at"],
        )


@transaction.atomic
def project_pin_rubric(*, project: Project, version: RubricVersion) -> Project:
    """Point the project's new tasks at ``version``. Labels already made keep the
    version they were made under (their own foreign key), and tasks already handed
    out finish under the version they were shown with."""
    version = RubricVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != RubricVersion.Status.PUBLISHED:
        raise ValueError(f"{version} is not published; publish it before pinning it on a project")
    project.rubric_version = version
    project.save(update_fields=["rubric_version"])
    return project
