"""Generated malformed imports for the generic JSONL and CSV formats: one bad record
(a wrong type, a missing field, a bad choice or strength, broken CSV, invalid UTF-8, ...)
among good ones, at a generated line. Each import must fail naming that line and the
field, and write nothing. Examples are bounded and derandomised, so CI sees the same
files every run."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from annotate.models import ImportJob

from tests.dataio.imports._helpers import run_import
from tests.helpers import db_snapshot

pytestmark = pytest.mark.django_db

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def good_record(i: int) -> dict:
    return {"id": f"g{i}", "prompt": f"Question {i}?", "responses": [f"Yes {i}.", f"No {i}."],
            "labels": [{"annotator": "zoe", "a": 0, "b": 1, "choice": "A", "strength": 2,
                        "criteria": {"helpful": "A"}, "rationale": "clearer", "time_on_task_ms": 1200}]}


def _not(*kinds):
    """JSON values of none of the given Python types (bool is not an int here)."""
    values = {
        "str": st.text(max_size=5), "int": st.integers(-5, 5), "float": st.floats(allow_nan=False, allow_infinity=False),
        "bool": st.booleans(), "none": st.none(), "list": st.lists(st.integers(), max_size=2),
        "dict": st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    }
    return st.one_of([v for k, v in values.items() if k not in kinds])


def _set(path: tuple, value):
    def mutate(rec: dict) -> dict:
        target = rec
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return rec
    return mutate


def _drop(path: tuple):
    def mutate(rec: dict) -> dict:
        target = rec
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return rec
    return mutate


BAD_CHOICE = st.text(max_size=8).filter(lambda s: s not in ("A", "B", "tie", "both_bad"))

# (how to break a good record, the field the error must name)
JSONL_BREAKAGE = st.one_of(
    _not("str").map(lambda v: (_set(("prompt",), v), "prompt")),
    st.just((_drop(("prompt",)), "prompt")),
    _not("list").map(lambda v: (_set(("responses",), v), "responses")),
    st.just((_set(("responses",), []), "responses")),
    _not("str", "dict").map(lambda v: (_set(("responses", 0), v), "responses[0]")),
    _not("str", "int", "none").map(lambda v: (_set(("id",), v), "id")),
    _not("list", "none").map(lambda v: (_set(("labels",), v), "labels")),
    _not("dict").map(lambda v: (_set(("labels", 0), v), "labels[0]")),
    BAD_CHOICE.map(lambda v: (_set(("labels", 0, "choice"), v), "labels[0].choice")),
    _not("str").map(lambda v: (_set(("labels", 0, "choice"), v), "labels[0].choice")),
    st.integers().filter(lambda n: abs(n) > 3).map(lambda v: (_set(("labels", 0, "strength"), v), "labels[0].strength")),
    _not("int", "none").map(lambda v: (_set(("labels", 0, "strength"), v), "labels[0].strength")),
    st.just((_set(("labels", 0, "strength"), 0), "labels[0].strength")),  # a strength of 0 goes with a tie
    st.integers().filter(lambda n: not 0 <= n < 2).map(lambda v: (_set(("labels", 0, "a"), v), "labels[0].a")),
    st.sampled_from([None, "nope", 1.0, True]).map(lambda v: (_set(("labels", 0, "b"), v), "labels[0].b")),
    st.sampled_from([None, "", "  ", True, 1.5, [], {}]).map(lambda v: (_set(("labels", 0, "annotator"), v), "labels[0].annotator")),
    BAD_CHOICE.filter(lambda s: s != "na").map(lambda v: (_set(("labels", 0, "criteria"), {"helpful": v}), "labels[0].criteria")),
    _not("dict", "none").map(lambda v: (_set(("labels", 0, "criteria"), v), "labels[0].criteria")),
    _not("str", "none").map(lambda v: (_set(("labels", 0, "rationale"), v), "labels[0].rationale")),
    st.one_of(st.integers(max_value=-1), st.text(max_size=3), st.floats(allow_nan=False, allow_infinity=False))
    .map(lambda v: (_set(("labels", 0, "time_on_task_ms"), v), "labels[0].time_on_task_ms")),
    _not("dict", "none").map(lambda v: (_set(("metadata",), v), "metadata")),
    st.sampled_from(["bot", "", None, 3]).map(lambda v: (_set(("conversation",), [{"role": v, "content": "hi"}]),
                                                         "conversation[0].role")),
)


def assert_rejected_whole(project, fmt, path, *, line, field):
    before = db_snapshot()
    job = run_import(project, fmt, path)
    assert job.status == ImportJob.Status.FAILED, f"accepted: {path.read_bytes()[:300]!r}"
    assert (job.error_line, f"line {line}" in job.error) == (line, True), job.error
    assert field in job.error_field and f"field '{job.error_field}'" in job.error, job.error
    assert db_snapshot() == before


@SETTINGS
@given(breakage=JSONL_BREAKAGE, at=st.integers(1, 4), total=st.integers(4, 6))
def test_a_malformed_jsonl_record_is_rejected_naming_line_and_field(seeded, tmp_path, breakage, at, total):
    mutate, field = breakage
    records = [good_record(i) for i in range(1, total + 1)]
    records[at - 1] = mutate(records[at - 1])
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    assert_rejected_whole(seeded, "jsonl", path, line=at, field=field)


@SETTINGS
@given(at=st.integers(1, 4), junk=st.sampled_from([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80", b"\x80abc"]),
       syntax=st.booleans())
def test_jsonl_lines_that_are_not_utf8_or_json_are_rejected_naming_the_line(seeded, tmp_path, at, junk, syntax):
    """The record cannot be read, so no field can be named: the line and what is wrong with it."""
    lines = [json.dumps(good_record(i)).encode() for i in range(1, 6)]
    lines[at - 1] = lines[at - 1][:-1] if syntax else lines[at - 1].replace(b"Question", junk)
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    before = db_snapshot()
    job = run_import(seeded, "jsonl", path)
    assert job.status == ImportJob.Status.FAILED and job.error_line == at, job.error
    assert ("not valid JSON" if syntax else "invalid UTF-8") in job.error, job.error
    assert db_snapshot() == before


# --- CSV (the generic flat schema) --------------------------------------------------

CSV_HEADER = ["prompt_id", "prompt", "response_a", "response_b", "annotator", "choice", "strength", "criteria",
              "rationale", "time_on_task_ms"]


def good_row(i: int) -> dict:
    return {"prompt_id": f"g{i}", "prompt": f"Question {i}?", "response_a": f"Yes {i}.", "response_b": f"No {i}.",
            "annotator": "zoe", "choice": "A", "strength": "2", "criteria": '{"helpful": "A"}', "rationale": "clearer",
            "time_on_task_ms": "1200"}


def _cell(column: str, strategy):
    return strategy.map(lambda v: (column, v))


CSV_BREAKAGE = st.one_of(
    _cell("choice", BAD_CHOICE.filter(lambda s: s.strip() and "\x00" not in s)),
    _cell("strength", st.one_of(st.integers().filter(lambda n: abs(n) > 3).map(str),
                                st.sampled_from(["two", "1.5", "0x2", "true", "0"]))),
    _cell("criteria", st.sampled_from(["{", "[1]", '"A"', '{"helpful": "maybe"}', "{'helpful': 'A'}"])),
    _cell("time_on_task_ms", st.sampled_from(["-1", "soon", "1.5", "1e3"])),
    _cell("response_a", st.sampled_from(["", " "])),
    _cell("prompt", st.sampled_from(["", " \t"])),
    _cell("annotator", st.sampled_from([" "])),
)


def _csv_bytes(rows: list[dict], header=CSV_HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


@SETTINGS
@given(breakage=CSV_BREAKAGE, at=st.integers(1, 4))
def test_a_malformed_csv_row_is_rejected_naming_line_and_column(seeded, tmp_path, breakage, at):
    column, value = breakage
    rows = [good_row(i) for i in range(1, 6)]
    rows[at - 1][column] = value
    path = tmp_path / "bad.csv"
    path.write_bytes(_csv_bytes(rows))
    assert_rejected_whole(seeded, "csv", path, line=at + 1, field=column)  # line 1 is the header


@SETTINGS
@given(name=st.text(alphabet="abcdefghij_xyz", min_size=1, max_size=8).filter(lambda s: s not in CSV_HEADER
                                                                              and s not in ("prompt_metadata", "scores")),
       at=st.integers(0, len(CSV_HEADER)))
def test_an_unknown_csv_column_is_rejected_naming_it_on_the_header_line(seeded, tmp_path, name, at):
    from dataio.imports.parsers.flat import FLAT_COLUMNS

    if name in FLAT_COLUMNS:
        return
    header = [*CSV_HEADER[:at], name, *CSV_HEADER[at:]]
    path = tmp_path / "bad.csv"
    path.write_bytes(_csv_bytes([{**good_row(1), name: "x"}], header))
    assert_rejected_whole(seeded, "csv", path, line=1, field=name)


@SETTINGS
@given(at=st.integers(1, 4), drop=st.integers(1, 3))
def test_a_short_csv_row_is_rejected_naming_the_first_missing_column(seeded, tmp_path, at, drop):
    lines = _csv_bytes([good_row(i) for i in range(1, 6)]).decode().splitlines()
    lines[at] = ",".join(next(csv.reader([lines[at]]))[:-drop])
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert_rejected_whole(seeded, "csv", path, line=at + 1, field=CSV_HEADER[-drop])


@SETTINGS
@given(at=st.integers(1, 4), kind=st.sampled_from(["open quote", "quote inside", "utf-8"]),
       junk=st.sampled_from([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\x80"]))
def test_csv_that_cannot_be_read_is_rejected_naming_the_line(seeded, tmp_path, at, kind, junk):
    """Broken quoting or bytes that are not UTF-8: no column can be named, the line is."""
    lines = _csv_bytes([good_row(i) for i in range(1, 6)]).split(b"\n")
    if kind == "open quote":
        lines[at] = lines[at].replace(b"Question", b'"Question', 1)
    elif kind == "quote inside":
        lines[at] = lines[at].replace(b"Question", b'"Qu"estion"', 1)
    else:
        lines[at] = lines[at].replace(b"Question", junk + b"Question", 1)
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\n".join(lines))
    before = db_snapshot()
    job = run_import(seeded, "csv", path)
    assert job.status == ImportJob.Status.FAILED and job.error_line == at + 1, job.error
    assert ("invalid UTF-8" if kind == "utf-8" else "malformed CSV") in job.error, job.error
    assert db_snapshot() == before
