"""Bulk row writers for imports (used by ``annotate.services`` inside its one
write transaction).

Rows arrive as tuples of plain values in the order of ``fields`` (attribute names
such as ``prompt_id``; JSON fields as Python objects). On PostgreSQL they are
streamed with ``COPY`` into a temporary table and moved with one
``INSERT … SELECT``, which is an order of magnitude faster than ``bulk_create``
at a million rows and builds no model instance per row. Elsewhere (SQLite, the
developer default) the same rows go through ``bulk_create``, so both paths store
the same values; ``tests/test_import_fast.py`` compares them.
"""

from __future__ import annotations

import json
from typing import Iterable, Sequence

from django.db import connection
from django.db.models import JSONField, Model

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
