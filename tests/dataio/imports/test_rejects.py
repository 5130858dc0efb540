"""Rejections that hold for every format, whichever parser reads the file: an empty file,
bytes that are not UTF-8, an error late in the file, a prompt id that conflicts with what
is stored, and a second label or rating by one annotator in one file. The file is
rejected whole, the line and field are named, and nothing is written."""

from __future__ import annotations

import pytest

from annotate.models import ImportJob

from tests.dataio.imports._helpers import HS2_ROWS, assert_rejected, run_import, write_jsonl
from tests.helpers import db_snapshot, head_lines

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("content", [b"", b"\n\n   \n"])
@pytest.mark.parametrize("fmt", ["jsonl", "hh-rlhf", "summarize", "pandalm", "oasst", "finegrained", "helpsteer2",
                                 "ultrafeedback", "csv"])
def test_empty_file_is_rejected(seeded, tmp_path, content, fmt):
    path = tmp_path / "empty"
    path.write_bytes(content)
    before = db_snapshot()
    job = run_import(seeded, fmt, path)
    assert job.status == ImportJob.Status.FAILED
    assert "empty" in job.error
    assert db_snapshot() == before


@pytest.mark.shared_data
def test_invalid_utf8_is_rejected_with_its_line(seeded, shared_data, tmp_path):
    path = tmp_path / "hh-latin1.jsonl"
    lines = head_lines(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz", path, 20)
    lines[11] = lines[11].replace(b"Human", b"Hum\xe9n", 1)
    path.write_bytes(b"".join(lines))
    assert_rejected(seeded, "hh-rlhf", path, line=12, message_part="UTF-8")


def test_error_late_in_file_leaves_earlier_records_unwritten(seeded, tmp_path):
    rows = [{"id": f"q{i}", "prompt": f"Question {i}?", "responses": ["yes", "no"],
             "labels": [{"annotator": "amy", "a": 0, "b": 1, "choice": "B"}]} for i in range(200)]
    rows[199] = {"id": "q199", "prompt": "Q?", "responses": ["yes", "no"],
                 "labels": [{"annotator": "amy", "a": 0, "b": 5, "choice": "B"}]}
    assert_rejected(seeded, "jsonl", write_jsonl(tmp_path / "late.jsonl", rows), line=200, field_part="labels[0].b")


def test_same_prompt_id_with_other_text_is_a_conflict(seeded, tmp_path):
    path = write_jsonl(tmp_path / "conflict.jsonl", [{"id": "seed", "prompt": "Something else", "responses": ["a", "b"]}])
    assert_rejected(seeded, "jsonl", path, line=1, field_part="id", message_part="different conversation")


def test_two_labels_by_one_annotator_on_one_pair_are_rejected(seeded, tmp_path):
    rec = {"id": "p9", "prompt": "Q", "responses": ["x", "y"],
           "labels": [{"annotator": "bo", "a": 0, "b": 1, "choice": "A"}]}
    rec2 = dict(rec, labels=[{"annotator": "bo", "a": 1, "b": 0, "choice": "A"}])
    assert_rejected(seeded, "jsonl", write_jsonl(tmp_path / "dup.jsonl", [rec, rec2]), line=2, message_part="line 1")


def test_a_second_rating_of_one_response_by_one_annotator_is_rejected(seeded, tmp_path):
    path = write_jsonl(tmp_path / "hs2.jsonl", [HS2_ROWS[0], HS2_ROWS[1], HS2_ROWS[0]])
    assert_rejected(seeded, "helpsteer2", path, line=3, field_part="ratings", message_part="line 1")
