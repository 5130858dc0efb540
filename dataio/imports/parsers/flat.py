"""The generic flat schema (``--format csv``: UTF-8 with a header row, ``.csv.gz`` too;
``--format parquet``: the same column names). One row per pairwise label or per
response; rows with the same ``prompt_id`` make one prompt (they must agree on its
conversation; the first row's metadata is kept), rows with the same response id
under one prompt one response. Empty cells (or nulls) are absent; unknown columns
are rejected, so a misspelt column never goes unnoticed::

    prompt_id            optional; default: hash of the conversation
    prompt               the user's text, or
    conversation         JSON list of {"role", "content"} turns (Parquet: also a list of structs)
    prompt_metadata      optional JSON object
    response_a           required: a response text
    response_a_id        optional; default: hash of the text
    response_a_source    optional model or policy name
    response_b, response_b_id, response_b_source
                         the second response of a pair row; empty on a response row
    annotator            who gave the label or the scores (stored as ext.<annotator>)
    choice               pair rows: A | B | tie | both_bad, relative to (a, b)
    strength             pair rows: 0..3 (magnitude; the sign comes from choice)
    criteria             pair rows: JSON {"key": "A|B|tie|na"}
    scores               response rows: JSON {"criterion_key": number | true/false | "text" | null}
                         → a rating of response a (null = N/A)
    rationale            optional, with a label or scores
    time_on_task_ms      optional, with a label or scores

A pair row with neither annotator nor choice imports the two responses only. CSV
errors name the physical line where the row starts (a quoted field may span lines)
and the column; Parquet errors name the 1-based row and the column.

CSV cells may carry the spreadsheet-formula escape that PrefLab's CSV exports write
(``formula_escape``): a cell of quotes followed by = + - @ tab or CR loses its first
quote on import (``formula_unescape``), so an exported generic CSV re-imports exactly.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any, Callable, Iterator

from rubrics.schema import KEY_PATTERN

from .base import (
    MAX_TEXT, ImportRejected, LabelRecord, RatingRecord, Record, ResponseRecord, _conversation, _ident, _iter_all_lines, _text,
    conversation_id, text_id,
)
from .generic import _generic_label

FLAT_COLUMNS = (
    "prompt_id", "prompt", "conversation", "prompt_metadata",
    "response_a_id", "response_a", "response_a_source", "response_b_id", "response_b", "response_b_source",
    "annotator", "choice", "strength", "criteria", "scores", "rationale", "time_on_task_ms",
)
_LABEL_COLUMNS = ("choice", "strength", "criteria")
_ANSWER_COLUMNS = ("annotator", "rationale", "time_on_task_ms")  # with a label or with scores
PARQUET_BATCH_ROWS = 1000

# OWASP's CSV-injection advice: a spreadsheet runs a cell starting with one of these
# as a formula, so an exported cell that does is prefixed with a single quote. Cells
# that already start with quotes before one of them get one more, which makes the
# escape reversible: the importer strips exactly one quote from such cells.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_ESCAPED = re.compile(r"'+[=+\-@\t\r]")


ESCAPE_FIRST = frozenset("'").union(FORMULA_START)  # a cell starting otherwise is never escaped


def formula_escape(text: str) -> str:
    if text[:1] not in ESCAPE_FIRST:  # the common case, a million times per export: one set lookup
        return text
    return "'" + text if text.lstrip("'").startswith(FORMULA_START) else text


def formula_unescape(cell: str) -> str:
    return cell[1:] if cell[:1] == "'" and _ESCAPED.match(cell) else cell


def _flat_header(names: list[str], line: int | None) -> None:
    unknown = [n for n in names if n not in FLAT_COLUMNS]
    if unknown:
        raise ImportRejected(f"unknown column; the columns are {', '.join(FLAT_COLUMNS)}", line=line, field=unknown[0])
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ImportRejected("the column appears twice", line=line, field=twice[0])
    if "response_a" not in names:
        raise ImportRejected("missing required column", line=line, field="response_a")
    if "prompt" not in names and "conversation" not in names:
        raise ImportRejected("missing required column (give 'prompt' or 'conversation')", line=line, field="prompt")


def _json_cell(value: Any, line: int, name: str) -> Any:
    """A JSON text (CSV, or a Parquet string column) or the value a Parquet column already holds."""
    if not isinstance(value, str):
        # A Parquet map column arrives as a list of (key, value) pairs.
        if isinstance(value, list) and value and all(isinstance(p, tuple) and len(p) == 2 for p in value):
            return dict(value)
        return value
    if value == "{}":
        return {}  # what an export writes for empty metadata on every row: skip the decoder
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ImportRejected(f"not valid JSON ({exc.msg} at column {exc.colno})", line=line, field=name) from None


def _json_object(value: Any, line: int, name: str) -> dict[str, Any]:
    obj = _json_cell(value, line, name)
    if not isinstance(obj, dict):
        raise ImportRejected(f"expected a JSON object, got {type(obj).__name__}", line=line, field=name)
    return obj


_INT_TEXT = re.compile(r"\s*-?\d+\s*")


def _int_cell(value: Any, line: int, name: str) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)  # pandas stores an integer column with gaps as floats
    if isinstance(value, str) and (value.isascii() and value.isdigit() or _INT_TEXT.fullmatch(value)):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ImportRejected(f"expected an integer, got {value!r}", line=line, field=name)
    return value


def _flat_response(row: dict[str, Any], side: str, line: int) -> ResponseRecord:
    text = _text(row[f"response_{side}"], line, f"response_{side}")
    rid = row.get(f"response_{side}_id")
    source = row.get(f"response_{side}_source") or ""
    if not isinstance(source, str):
        raise ImportRejected("expected a string", line=line, field=f"response_{side}_source")
    rid = _ident(rid, line, f"response_{side}_id") if rid is not None else text_id(text)
    return ResponseRecord(rid, text, source[:200])


class _CellCache:
    """Parsed JSON cells of a flat file, by their text. Rows of one prompt repeat its
    conversation, and labels repeat a few criteria objects: parsing and checking each
    distinct text once is a third of the parse time of a large export. Only values
    that parsed and passed their checks are kept, so a bad cell still fails on its
    own row; the cache is emptied when it grows (a file of all-distinct cells)."""

    LIMIT = 4096

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], Any] = {}

    def get(self, name: str, text: Any, parse: Callable[[], Any]) -> Any:
        if not isinstance(text, str):
            return parse()  # a Parquet list or struct: not hashable, and already parsed
        key = (name, text)
        found = self.values.get(key)
        if found is None:
            found = parse()
            if len(self.values) >= self.LIMIT:
                self.values.clear()
            self.values[key] = found
        return found


def _flat_record(raw: dict[str, Any], line: int, cache: _CellCache | None = None) -> Record:
    """One CSV or Parquet row: a pair (with an optional label) or a response (with optional scores)."""
    cache = cache or _CellCache()
    row = {k: v for k, v in raw.items() if v is not None and v != ""}  # empty cells are absent
    prompt_id, conversation, prompt_meta = _flat_prompt(row, line, cache)
    if "response_a" not in row:
        raise ImportRejected("missing required value", line=line, field="response_a")
    responses = [_flat_response(row, "a", line)]
    rationale = row.get("rationale") or ""
    tot = _int_cell(row["time_on_task_ms"], line, "time_on_task_ms") if "time_on_task_ms" in row else None
    if "response_b" in row:
        responses.append(_flat_response(row, "b", line))
        labels = _flat_label(row, line, cache, responses, rationale, tot)
        return Record(line, prompt_id, conversation, prompt_meta, responses, labels=labels)
    ratings = _flat_rating(row, line, responses[0], rationale, tot)
    return Record(line, prompt_id, conversation, prompt_meta, responses, ratings=ratings)


def _flat_prompt(row: dict[str, Any], line: int, cache: _CellCache) -> tuple[str, list[dict[str, str]], dict[str, Any]]:
    """The row's prompt: its id, conversation and metadata."""
    if "conversation" in row:
        # Shared between the records of one prompt: nothing downstream mutates it.
        conversation = cache.get(
            "conversation", row["conversation"],
            lambda: _conversation(_json_cell(row["conversation"], line, "conversation"), line, "conversation"),
        )
    elif "prompt" in row:
        conversation = [{"role": "user", "content": _text(row["prompt"], line, "prompt")}]
    else:
        raise ImportRejected("empty: give 'prompt' or 'conversation'", line=line, field="prompt")
    prompt_id = _ident(row["prompt_id"], line, "prompt_id") if "prompt_id" in row else conversation_id(conversation)
    prompt_meta = _json_object(row["prompt_metadata"], line, "prompt_metadata") if "prompt_metadata" in row else {}
    return prompt_id, conversation, prompt_meta


def _flat_label(
    row: dict[str, Any], line: int, cache: _CellCache, responses: list[ResponseRecord], rationale: Any, tot: int | None
) -> list[LabelRecord]:
    """A pair row's label; none when the row fills no label column (it imports the
    two responses only)."""
    if responses[0].external_id == responses[1].external_id:
        raise ImportRejected(
            "response_a and response_b have the same id (or text, when no id is given)", line=line, field="response_b"
        )
    if "scores" in row:
        raise ImportRejected("scores rate one response: leave response_b empty on a rating row", line=line, field="scores")
    if not any(name in row for name in (*_ANSWER_COLUMNS, *_LABEL_COLUMNS)):
        return []
    lab = {
        "a": responses[0].external_id, "b": responses[1].external_id,
        "annotator": row.get("annotator"), "choice": row.get("choice"),
        "strength": _int_cell(row["strength"], line, "strength") if "strength" in row else None,
        # Cached: _generic_label copies it.
        "criteria": cache.get("criteria", row["criteria"], lambda: _json_object(row["criteria"], line, "criteria"))
        if "criteria" in row else {},
        "rationale": rationale, "time_on_task_ms": tot,
    }
    return [_generic_label(lab, line, "", responses)]


def _flat_rating(
    row: dict[str, Any], line: int, response: ResponseRecord, rationale: Any, tot: int | None
) -> list[RatingRecord]:
    """A response row's rating of its response; none when the row fills neither
    scores nor an answer column (it imports the response only)."""
    for name in ("response_b_id", "response_b_source", *_LABEL_COLUMNS):
        if name in row:
            raise ImportRejected("set on a row without response_b (a label compares two responses)", line=line, field=name)
    if not any(name in row for name in (*_ANSWER_COLUMNS, "scores")):
        return []
    annotator = _ident(row.get("annotator"), line, "annotator")
    if "scores" not in row:
        raise ImportRejected("missing: a rating row needs scores", line=line, field="scores")
    scores = _json_object(row["scores"], line, "scores")
    for key, value in scores.items():
        if not re.fullmatch(KEY_PATTERN, key):
            raise ImportRejected(
                f"criterion key {key!r} must be lower-case letters, digits and _", line=line, field="scores"
            )
        if value is not None and not isinstance(value, (int, float, str)):
            raise ImportRejected(
                f"the score for {key!r} must be a number, true/false, text or null", line=line, field="scores"
            )
    if tot is not None and tot < 0:
        raise ImportRejected("expected a non-negative integer", line=line, field="time_on_task_ms")
    if not isinstance(rationale, str):
        raise ImportRejected("expected a string", line=line, field="rationale")
    return [RatingRecord(response.external_id, f"ext.{annotator}", scores, rationale, time_on_task_ms=tot)]


def parse_csv(path: Path) -> Iterator[Record]:
    """The flat schema as CSV (UTF-8, comma-separated, a header row; ``.csv.gz`` too).
    Lines are physical lines: a quoted field that spans lines counts them all."""
    # Long responses: the csv module's default field limit (128 KiB) is below MAX_TEXT.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_TEXT + 1))
    start = 0  # the line a record starts on
    at_start = True  # blank lines between records are skipped unread (a file of them is a bomb)

    def physical_lines() -> Iterator[str]:
        nonlocal start, at_start
        for number, text in _iter_all_lines(path, skip_blank=lambda: at_start):
            if at_start:
                start, at_start = number, False
            yield text

    reader = csv.reader(physical_lines(), strict=True)
    cache = _CellCache()
    header: list[str] | None = None
    seen_any = False
    while True:
        at_start = True
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ImportRejected(f"malformed CSV: {exc}", line=start) from None
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [name.strip() for name in row]
            _flat_header(header, start)
            continue
        if len(row) != len(header):
            raise ImportRejected(
                f"has {len(row)} fields, the header has {len(header)} (an unquoted comma or newline?)",
                line=start, field=header[len(row)] if len(row) < len(header) else "",
            )
        seen_any = True
        yield _flat_record(dict(zip(header, map(formula_unescape, row))), start, cache)
    if not seen_any:
        raise ImportRejected("the file is empty: no records found" if header is None else "the file has a header but no rows")


def parse_parquet(path: Path) -> Iterator[Record]:
    """The flat schema as Parquet, read in record batches. Errors name the 1-based row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise ImportRejected(f"not a readable Parquet file: {exc}") from None
    _flat_header(parquet.schema_arrow.names, None)
    if parquet.metadata.num_rows == 0:
        raise ImportRejected("the file is empty: no records found")
    number = 0
    cache = _CellCache()
    batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise ImportRejected(f"cannot read the file after row {number}: {exc}") from None
        for row in batch.to_pylist():
            number += 1
            try:
                record = _flat_record(row, number, cache)
            except ImportRejected as exc:
                raise ImportRejected(exc.message, line=number, field=exc.field, unit="row") from None
            record.unit = "row"
            yield record
