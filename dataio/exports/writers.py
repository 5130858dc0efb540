"""File writers (``WRITERS``): JSON Lines, CSV, Parquet and ``datasets`` folders,
each written a batch of rows at a time."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from ..imports.parsers.flat import formula_escape
from .context import Column

WRITE_BATCH = 2000  # rows per Parquet record batch (larger ones cost pyarrow far more memory than they save time)

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
        self.nested = {name for name, kind, _ in columns if kind not in ("str", "int", "float")}
        self.escape = formula_escape if escape_formulas else None
        # RFC 4180 line ends: the csv module quotes a cell only for the characters of its
        # line terminator, so with "\n" alone a bare CR in a text would end the row.
        self.writer = csv.writer(self.fh, lineterminator="\r\n")
        self.writer.writerow(self.names)

    def write(self, rows: list[dict]) -> None:
        cells = ([self._cell(n, row[n]) for n in self.names] for row in rows)
        self.writer.writerows(cells)

    def _cell(self, name: str, value):
        if value is None:
            return ""
        if name in self.nested:
            value = json_encode(value)
        return self.escape(value) if self.escape is not None and isinstance(value, str) else value

    def close(self) -> None:
        self.fh.close()

    abort = close


def _arrow_type(kind: str):
    import pyarrow as pa

    return {
        "str": pa.string(), "int": pa.int64(), "float": pa.float64(), "json": pa.string(),
        "strs": pa.list_(pa.string()),
        "turns": pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
        "ranked": pa.list_(pa.struct([("id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("rank", pa.int64())])),
    }[kind]


class _ParquetWriter:
    """Record batches of at most WRITE_BATCH rows; objects in ``json`` columns as JSON text."""

    def __init__(self, path: Path, columns: list[Column]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.schema = pa.schema([(name, _arrow_type(kind)) for name, kind, _ in columns])
        self.json_names = [name for name, kind, _ in columns if kind == "json"]
        self.writer = pq.ParquetWriter(path, self.schema)
        self.rows = 0

    def write(self, rows: list[dict]) -> None:
        import pyarrow as pa

        for row in rows:
            for name in self.json_names:
                if row[name] is not None:
                    row[name] = json_encode(row[name])
        for start in range(0, len(rows), WRITE_BATCH):
            self.writer.write_batch(pa.RecordBatch.from_pylist(rows[start : start + WRITE_BATCH], schema=self.schema))
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
