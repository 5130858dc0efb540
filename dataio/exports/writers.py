"""File writers (``WRITERS``): JSON Lines, CSV, Parquet and ``datasets`` folders,
each written a batch of rows at a time."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

from ..imports.parsers.flat import ESCAPE_FIRST, formula_escape
from .context import Column

json_encode = json.JSONEncoder(ensure_ascii=False).encode


class _JsonlWriter:
    def __init__(self, path: Path, columns: list[Column]) -> None:
        self.fh = open(path, "w", encoding="utf-8", newline="\n")

    def write(self, rows: list[dict]) -> None:
        self.fh.write("".join(json_encode(row) + "\n" for row in rows))

    def close(self) -> None:
        self.fh.close()

    abort = close  # the temporary folder is removed anyway


class _CsvWriter:
    """Nested values (objects, lists) as JSON text; empty cells for nulls. With
    ``escape_formulas`` a text cell that a spreadsheet would run as a formula gets a
    leading quote (``formula_escape``; the generic CSV importer takes it off)."""

    def __init__(self, path: Path, columns: list[Column], *, escape_formulas: bool = True) -> None:
        self.fh = open(path, "w", encoding="utf-8", newline="")
        self.names = [name for name, _, _ in columns]
        self.nested = [i for i, (_, kind, _) in enumerate(columns) if kind not in ("str", "int", "float")]
        self.escape = escape_formulas
        self.encoded = _EncodeMemo()
        # RFC 4180 line ends: the csv module quotes a cell only for the characters of its
        # line terminator, so with "\n" alone a bare CR in a text would end the row.
        self.writer = csv.writer(self.fh, lineterminator="\r\n")
        self.writer.writerow(self.names)

    def write(self, rows: list[dict]) -> None:
        # A million rows of 16 cells: one pass per row, no call per cell unless it
        # is nested or may need the formula escape. (None is an empty cell already.)
        names, nested, encode, escape, first = self.names, self.nested, self.encoded, self.escape, ESCAPE_FIRST
        out = []
        for row in rows:
            cells = [row[n] for n in names]
            for i in nested:
                if cells[i] is not None:
                    cells[i] = encode(cells[i])
            if escape:
                cells = [formula_escape(v) if isinstance(v, str) and v[:1] in first else v for v in cells]
            out.append(cells)
        self.writer.writerows(out)

    def close(self) -> None:
        self.fh.close()

    abort = close


class _EncodeMemo:
    """JSON text of objects that repeat from row to row (a prompt's conversation on
    each of its labels, the same few criteria answers): encoded once per object.
    Keyed by identity, holding the object so that its id is never reused meanwhile;
    export rows are never mutated once made."""

    def __init__(self, size: int = 4096) -> None:
        self.size, self.memo = size, {}

    def __call__(self, value) -> str:
        hit = self.memo.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        if len(self.memo) >= self.size:
            self.memo.clear()
        text = json_encode(value)
        self.memo[id(value)] = (value, text)
        return text


def _arrow_type(kind: str):
    import pyarrow as pa

    return {
        "str": pa.string(), "int": pa.int64(), "float": pa.float64(), "json": pa.string(),
        "strs": pa.list_(pa.string()),
        "turns": pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
        "ranked": pa.list_(pa.struct([("id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("rank", pa.int64())])),
    }[kind]


class _ParquetWriter:
    """One row group per ``write`` (an export chunk), streamed: nothing accumulates.

    Each batch goes to Arrow as JSON Lines through ``pyarrow.json`` with the schema
    given, not through ``RecordBatch.from_pylist``: that converts cell by cell in
    Python and, on its first call, imports pandas (a third of the 150 MB budget); the
    JSON reader parses in C++ and reads back the same values. Objects in ``json``
    columns are written as JSON text.

    Memory (issue #19: 150 MB at 1M labels): the lines are encoded into one buffer that
    Arrow reads in place (no joined text, no second copy), and after each row group the
    allocator gives back what it holds free (``release_unused``); the allocator itself
    is set in settings (``ARROW_DEFAULT_MEMORY_POOL``)."""

    def __init__(self, path: Path, columns: list[Column]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.schema = pa.schema([(name, _arrow_type(kind)) for name, kind, _ in columns])
        self.json_names = [name for name, kind, _ in columns if kind == "json"]
        self.writer = pq.ParquetWriter(path, self.schema)
        self.pool = pa.default_memory_pool()
        self.rows = 0

    def write(self, rows: list[dict]) -> None:
        import pyarrow as pa
        import pyarrow.json as pj

        if not rows:
            return
        buf = io.BytesIO()
        for row in rows:
            for name in self.json_names:
                if row[name] is not None:
                    row[name] = json_encode(row[name])
            buf.write(json_encode(row).encode("utf-8"))
            buf.write(b"\n")
        data = pa.py_buffer(buf.getbuffer())
        table = pj.read_json(
            pa.BufferReader(data),
            # one block: a row may be any length, and a batch is a few MB
            read_options=pj.ReadOptions(block_size=data.size + 1, use_threads=False),
            # a turn or ranked response with keys beyond the schema's: left out, as from_pylist does
            parse_options=pj.ParseOptions(explicit_schema=self.schema, unexpected_field_behavior="ignore"),
        )
        self.writer.write_table(table, row_group_size=len(rows))
        del table, data, buf  # freed before the pool gives memory back
        self.pool.release_unused()
        self.rows += len(rows)

    def close(self) -> None:
        self.writer.close()

    abort = close


class _HfWriter(_ParquetWriter):
    """A ``datasets`` folder: Parquet first (streamed), then ``Dataset.from_parquet``
    (memory-mapped Arrow) and ``save_to_disk``, so no step holds the rows in memory."""

    def __init__(self, path: Path, columns: list[Column]) -> None:
        self.folder = path
        self.folder.mkdir()
        self.parquet = path.parent / f".{path.name}.parquet"
        super().__init__(self.parquet, columns)

    def close(self) -> None:
        import datasets

        super().close()
        if not self.rows:  # datasets 5 saves an empty folder but cannot load it back
            raise ValueError("the export has no rows, and a datasets folder cannot be empty: choose jsonl, csv or parquet")
        cache = self.folder.parent / f".{self.folder.name}.cache"
        try:
            datasets.disable_progress_bars()
            dataset = datasets.Dataset.from_parquet(str(self.parquet), cache_dir=str(cache))
            dataset.save_to_disk(str(self.folder))
        finally:
            self.parquet.unlink(missing_ok=True)
            shutil.rmtree(cache, ignore_errors=True)


WRITERS = {"jsonl": _JsonlWriter, "csv": _CsvWriter, "parquet": _ParquetWriter, "hf": _HfWriter}
