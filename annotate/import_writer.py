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


class BulkWriter:
    """The portable path: ``bulk_create``, which sets primary keys on SQLite and PostgreSQL."""

    def insert(self, model: type[Model], fields: list[str], rows: list[tuple], *, key: list[str]) -> dict[tuple, int]:
        """Insert rows (none of which exists yet); returns {key values: new id}."""
        ids: dict[tuple, int] = {}
        for batch in _batches(rows):
            for obj in model.objects.bulk_create([model(**dict(zip(fields, row))) for row in batch]):
                ids[tuple(getattr(obj, k) for k in key)] = obj.pk
        return ids

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
    """PostgreSQL: COPY into a temporary table, then one INSERT … SELECT per call.

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
        as_json = [isinstance(model._meta.get_field(f), JSONField) for f in fields]
        dumps = json.dumps
        with cursor.copy(f"COPY {stage} (import_ord, {columns}) FROM STDIN") as copy:
            if any(as_json):
                for ordinal, row in enumerate(rows):
                    copy.write_row(
                        (ordinal, *(dumps(v) if j and v is not None else v for j, v in zip(as_json, row)))
                    )
            else:
                for ordinal, row in enumerate(rows):
                    copy.write_row((ordinal, *row))
        return stage, columns

    def insert(self, model, fields, rows, *, key):
        if not rows:
            return {}
        quote = connection.ops.quote_name
        key_columns = ", ".join(quote(model._meta.get_field(k).column) for k in key)
        with connection.wrap_database_errors, connection.cursor() as cursor:
            stage, columns = self._stage(cursor, model, fields, rows)
            cursor.execute(
                f"INSERT INTO {model._meta.db_table} ({columns}) SELECT {columns} FROM {stage} ORDER BY import_ord "
                f"RETURNING {quote(model._meta.pk.column)}, {key_columns}"
            )
            return {tuple(found[1:]): found[0] for found in cursor.fetchall()}

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
