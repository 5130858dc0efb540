"""The write phase of an import: ``ImportWriter`` maps the compact rows of
``FileIndex.add`` onto database rows, chunk by chunk, inside the one write
transaction of ``dataio.imports.services``; the bulk row writers (``BulkWriter``,
``CopyWriter``) store them.

Rows arrive at a bulk writer as tuples of plain values in the order of ``fields``
(attribute names such as ``prompt_id``; JSON fields as Python objects). On
PostgreSQL they are streamed with ``COPY`` into a temporary table and moved with one
``INSERT … SELECT``, which is an order of magnitude faster than ``bulk_create``
at a million rows and builds no model instance per row. Elsewhere (SQLite, the
developer default) the same rows go through ``bulk_create``, so both paths store
the same values; ``tests/dataio/imports/test_writer.py`` compares them.
"""

from __future__ import annotations

import json
from array import array
from typing import Iterable, Sequence

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import JSONField, Model
from django.utils import timezone

from annotate import slots
from annotate.models import Comparison, ImportJob, Judgment, LabelSource, Project, Prompt, Ranking, Rating, Response, TaskKind

from .index import FileIndex
from .parsers.base import ImportRejected

User = get_user_model()
BATCH = 2000  # rows per bulk_create statement (SQLite caps the number of parameters)


def _batches(rows: Sequence, size: int = BATCH) -> Iterable[Sequence]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


_JSON_MEMO: dict[tuple, str] = {}


def _json_text(value):
    """JSON text for a jsonb column. Labels repeat a few small objects (empty
    metadata, the same criteria), so those are encoded once, not a million times."""
    if value is None:
        return None
    if not value and type(value) in (dict, list):
        return "{}" if type(value) is dict else "[]"
    # Only string values: 1, 1.0 and True are equal keys but different JSON.
    if type(value) is dict and len(value) <= 8 and all(type(v) is str for v in value.values()):
        key = tuple(value.items())
        found = _JSON_MEMO.get(key)
        if found is None:
            if len(_JSON_MEMO) >= 4096:
                _JSON_MEMO.clear()
            found = _JSON_MEMO[key] = json.dumps(value)
        return found
    return json.dumps(value)


class BulkWriter:
    """The portable path: ``bulk_create``, which sets primary keys on SQLite and PostgreSQL."""

    def insert(self, model: type[Model], fields: list[str], rows: list[tuple], *, key: list[str]) -> dict[tuple, int]:
        """Insert rows (none of which exists yet); returns {key values: new id}."""
        ids: dict[tuple, int] = {}
        for batch in _batches(rows):
            for obj in model.objects.bulk_create([model(**dict(zip(fields, row))) for row in batch]):
                ids[tuple(getattr(obj, k) for k in key)] = obj.pk
        return ids

    def append(self, model: type[Model], fields: list[str], rows: list[tuple]) -> None:
        """Insert rows that cannot conflict with anything and whose ids nobody needs."""
        for batch in _batches(rows):
            model.objects.bulk_create([model(**dict(zip(fields, row))) for row in batch])

    def upsert(
        self, model: type[Model], fields: list[str], rows: list[tuple], *, unique_fields: list[str], update_fields: list[str]
    ) -> None:
        """Insert rows, updating ``update_fields`` of those that hit ``unique_fields``."""
        for batch in _batches(rows):
            model.objects.bulk_create(
                [model(**dict(zip(fields, row))) for row in batch],
                update_conflicts=True, unique_fields=unique_fields, update_fields=update_fields,
            )


class CopyWriter(BulkWriter):
    """PostgreSQL: new rows are copied straight into their table; upserts go through
    COPY into a temporary table, then one INSERT … SELECT … ON CONFLICT per call.

    The temporary tables live until the end of the write transaction
    (``ON COMMIT DROP``; a rollback drops them too) and are emptied before each use,
    so two imports on one connection never see each other's rows. Every call must
    pass all NOT NULL columns: unlike ``bulk_create`` nothing fills model defaults.
    """

    def __init__(self) -> None:
        self._made: set[str] = set()

    def _stage(self, cursor, model: type[Model], fields: list[str], rows: list[tuple]) -> tuple[str, str]:
        table = model._meta.db_table
        stage = f"import_stage_{table}"
        columns = ", ".join(connection.ops.quote_name(model._meta.get_field(f).column) for f in fields)
        if stage not in self._made:
            # The ordinal keeps file order, so new ids rise in the order the file gave the rows.
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DROP AS "
                f"SELECT 0 AS import_ord, {columns} FROM {table} WITH NO DATA"
            )
            self._made.add(stage)
        cursor.execute(f"TRUNCATE {stage}")
        as_json = [i for i, f in enumerate(fields) if isinstance(model._meta.get_field(f), JSONField)]
        with cursor.copy(f"COPY {stage} (import_ord, {columns}) FROM STDIN") as copy:
            for ordinal, row in enumerate(rows):
                if as_json:
                    row = list(row)
                    for i in as_json:
                        row[i] = _json_text(row[i])
                copy.write_row((ordinal, *row))
        return stage, columns

    def insert(self, model, fields, rows, *, key):
        """Rows known to be new: ids are drawn from the table's sequence first (in file
        order, as bulk_create would number them), then the rows are copied straight
        into the table, with no staging table or RETURNING to read back."""
        if not rows:
            return {}
        table, pk = model._meta.db_table, model._meta.pk.column
        columns = ", ".join(connection.ops.quote_name(model._meta.get_field(f).column) for f in fields)
        as_json = [i for i, f in enumerate(fields) if isinstance(model._meta.get_field(f), JSONField)]
        positions = [fields.index(k) for k in key]
        with connection.wrap_database_errors, connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)", [table, pk, len(rows)]
            )
            ids = sorted(found[0] for found in cursor.fetchall())
            with cursor.copy(f"COPY {table} ({connection.ops.quote_name(pk)}, {columns}) FROM STDIN") as copy:
                for pk_value, row in zip(ids, rows):
                    if as_json:
                        row = list(row)
                        for i in as_json:
                            row[i] = _json_text(row[i])
                    copy.write_row((pk_value, *row))
        return {tuple(row[i] for i in positions): pk_value for pk_value, row in zip(ids, rows)}

    def append(self, model, fields, rows):
        if not rows:
            return
        columns = ", ".join(connection.ops.quote_name(model._meta.get_field(f).column) for f in fields)
        as_json = [i for i, f in enumerate(fields) if isinstance(model._meta.get_field(f), JSONField)]
        with connection.wrap_database_errors, connection.cursor() as cursor:
            with cursor.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    if as_json:
                        row = list(row)
                        for i in as_json:
                            row[i] = _json_text(row[i])
                    copy.write_row(row)

    def upsert(self, model, fields, rows, *, unique_fields, update_fields):
        if not rows:
            return
        quote = connection.ops.quote_name
        column = lambda name: quote(model._meta.get_field(name).column)  # noqa: E731
        conflict = ", ".join(column(f) for f in unique_fields)
        updates = ", ".join(f"{column(f)} = EXCLUDED.{column(f)}" for f in update_fields)
        with connection.wrap_database_errors, connection.cursor() as cursor:
            stage, columns = self._stage(cursor, model, fields, rows)
            cursor.execute(
                f"INSERT INTO {model._meta.db_table} ({columns}) SELECT {columns} FROM {stage} ORDER BY import_ord "
                f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
            )


def writer_for_connection() -> BulkWriter:
    """COPY on PostgreSQL, ``bulk_create`` anywhere else."""
    return CopyWriter() if connection.vendor == "postgresql" else BulkWriter()


class ImportWriter:
    """Writes the compact rows of ``FileIndex.add`` chunk by chunk, mapping the
    file's small integers to row ids with arrays rather than per-row queries. Rows
    that already exist (same external id, same text) are reused, so re-importing a
    file adds nothing; labels are upserted on their unique keys."""

    def __init__(self, *, job: ImportJob, project: Project, index: FileIndex) -> None:
        self.job, self.project, self.index = job, project, index
        self.bulk = writer_for_connection()
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
        # A prompt's first line carries its text (see FileIndex.add), so it is new to this import.
        new = {e[3][0]: e for e in entries if e[3] is not None}
        if not new:
            return
        existing = []
        for batch in _batches(list(new)):
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
            Prompt, ["project_id", "external_id", "conversation", "metadata", "created_at"],
            [(self.project.pk, ext, conv, meta, self.now) for ext, conv, meta in (e[3] for e in new.values())],
            key=["external_id"],
        )
        slots.queue_slots_open(project=self.project, kind=TaskKind.RANKING, units=[(pk, pk) for pk in ids.values()],
                               append=self.bulk.append)
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
        for batch in _batches(older):
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
        ids = self.bulk.insert(
            Response, ["prompt_id", "external_id", "text", "source", "metadata", "created_at"],
            [(prompt_id, ext, text, source, meta, self.now) for (prompt_id, ext), (_, text, source, meta, _) in new.items()],
            key=["prompt_id", "external_id"],
        )
        slots.queue_slots_open(project=self.project, kind=TaskKind.RATING,
                               units=[(pk, prompt_id) for (prompt_id, _), pk in ids.items()], append=self.bulk.append)
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
        for batch in _batches(sorted(set(older))):
            for a, b, pk in Comparison.objects.filter(response_a_id__in=batch).values_list("response_a_id", "response_b_id", "id"):
                if pending.pop(a << 32 | b, None) is not None:
                    self.comparisons[a << 32 | b] = pk
                    existing += 1
        ids = self.bulk.insert(
            Comparison,
            ["project_id", "prompt_id", "response_a_id", "response_b_id", "is_gold", "gold_choice", "created_at"],
            [(self.project.pk, prompt_id, a, b, False, "", self.now) for a, b, prompt_id in pending.values()],
            key=["response_a_id", "response_b_id"],
        )
        slots.queue_slots_open(project=self.project, kind=TaskKind.PAIRWISE,
                               units=[(ids[(a, b)], prompt_id) for a, b, prompt_id in pending.values()],
                               append=self.bulk.append)
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
        for batch in _batches(list(names)):
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
