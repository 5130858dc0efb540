"""Bad files are rejected whole, with the line and field named, and change nothing."""

from __future__ import annotations

import json

import pytest

from annotate.imports import services as imports
from annotate.models import Comparison, ImportJob, Judgment

from tests.helpers import db_snapshot, head_lines

pytestmark = pytest.mark.django_db


def _import(project, fmt, path):
    return imports.import_file(project=project, format=fmt, path=path)


@pytest.fixture
def seeded(project, tmp_path):
    """A project that already holds data, so 'unchanged' means something."""
    good = tmp_path / "good.jsonl"
    good.write_text(
        json.dumps({"id": "p1", "prompt": "Hi?", "responses": ["Hello!", "Go away."],
                    "labels": [{"annotator": "zed", "a": 0, "b": 1, "choice": "A", "strength": 2}]}) + "\n",
        encoding="utf-8",
    )
    assert _import(project, "jsonl", good).status == ImportJob.Status.SUCCEEDED
    return project


def _assert_rejected(job, *, line, field_part="", message_part=""):
    assert job.status == ImportJob.Status.FAILED
    assert job.error_line == line, job.error
    if field_part:
        assert field_part in job.error_field, job.error
    if message_part:
        assert message_part in job.error, job.error
    assert f"line {line}" in job.error if line else True


@pytest.mark.shared_data
def test_real_hh_file_broken_at_one_line_is_rejected_with_that_line(seeded, shared_data, tmp_path):
    broken = tmp_path / "hh-broken.jsonl"
    lines = head_lines(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz", broken, 60)
    lines[36] = lines[36][: len(lines[36]) // 2] + b"\n"  # cut line 37 in half
    broken.write_bytes(b"".join(lines))
    before = db_snapshot()
    job = _import(seeded, "hh-rlhf", broken)
    _assert_rejected(job, line=37, message_part="not valid JSON")
    assert db_snapshot() == before


@pytest.mark.shared_data
def test_real_summarize_file_missing_a_field_names_line_and_field(seeded, shared_data, tmp_path):
    src = (shared_data / "summarize-from-feedback" / "batch13.json").read_text(encoding="utf-8").splitlines()[:80]
    row = json.loads(src[52])
    del row["worker"]
    src[52] = json.dumps(row)
    path = tmp_path / "summ.json"
    path.write_text("\n".join(src) + "\n", encoding="utf-8")
    before = db_snapshot()
    job = _import(seeded, "summarize", path)
    _assert_rejected(job, line=53, field_part="worker")
    assert db_snapshot() == before


@pytest.mark.shared_data
def test_real_pandalm_array_with_a_bad_label_names_the_element_line(seeded, shared_data, tmp_path):
    rows = json.loads((shared_data / "pandalm" / "testset-v1.json").read_text(encoding="utf-8"))[:30]
    rows[17]["annotator2"] = 7
    path = tmp_path / "pandalm.json"
    path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    # The 18th element starts at the 18th line that opens an object.
    opening_lines = [i + 1 for i, text in enumerate(path.read_text().splitlines()) if text == " {"]
    expected_line = opening_lines[17]
    before = db_snapshot()
    job = _import(seeded, "pandalm", path)
    _assert_rejected(job, line=expected_line, field_part="annotator2")
    assert db_snapshot() == before


@pytest.mark.shared_data
def test_invalid_utf8_is_rejected_with_its_line(seeded, shared_data, tmp_path):
    path = tmp_path / "hh-latin1.jsonl"
    lines = head_lines(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz", path, 20)
    lines[11] = lines[11].replace(b"Human", b"Hum\xe9n", 1)
    path.write_bytes(b"".join(lines))
    before = db_snapshot()
    job = _import(seeded, "hh-rlhf", path)
    _assert_rejected(job, line=12, message_part="UTF-8")
    assert db_snapshot() == before


@pytest.mark.parametrize("content", [b"", b"\n\n   \n"])
@pytest.mark.parametrize("fmt", ["jsonl", "hh-rlhf", "summarize", "pandalm"])
def test_empty_file_is_rejected(seeded, tmp_path, content, fmt):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    before = db_snapshot()
    job = _import(seeded, fmt, path)
    assert job.status == ImportJob.Status.FAILED
    assert "empty" in job.error
    assert db_snapshot() == before


def test_error_late_in_file_leaves_earlier_records_unwritten(seeded, tmp_path):
    lines = [
        json.dumps({"id": f"q{i}", "prompt": f"Question {i}?", "responses": ["yes", "no"],
                    "labels": [{"annotator": "amy", "a": 0, "b": 1, "choice": "B"}]})
        for i in range(200)
    ]
    lines[199] = json.dumps({"id": "q199", "prompt": "Q?", "responses": ["yes", "no"],
                             "labels": [{"annotator": "amy", "a": 0, "b": 5, "choice": "B"}]})
    path = tmp_path / "late.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = db_snapshot()
    job = _import(seeded, "jsonl", path)
    _assert_rejected(job, line=200, field_part="labels[0].b")
    assert db_snapshot() == before


def test_same_prompt_id_with_other_text_is_a_conflict(seeded, tmp_path):
    path = tmp_path / "conflict.jsonl"
    path.write_text(json.dumps({"id": "p1", "prompt": "Something else", "responses": ["a", "b"]}) + "\n")
    before = db_snapshot()
    job = _import(seeded, "jsonl", path)
    _assert_rejected(job, line=1, field_part="id", message_part="different conversation")
    assert db_snapshot() == before


def test_two_labels_by_one_annotator_on_one_pair_are_rejected(seeded, tmp_path):
    rec = {"id": "p9", "prompt": "Q", "responses": ["x", "y"],
           "labels": [{"annotator": "bo", "a": 0, "b": 1, "choice": "A"}]}
    rec2 = dict(rec, labels=[{"annotator": "bo", "a": 1, "b": 0, "choice": "A"}])
    path = tmp_path / "dup.jsonl"
    path.write_text(json.dumps(rec) + "\n" + json.dumps(rec2) + "\n")
    job = _import(seeded, "jsonl", path)
    _assert_rejected(job, line=2, message_part="line 1")


def test_generic_labels_are_stored_in_canonical_order(project, tmp_path):
    """A label given as (second, first) is flipped onto the canonical (A, B)."""
    rec = {"id": "p1", "prompt": "Pick one", "responses": [{"id": "r1", "text": "one"}, {"id": "r2", "text": "two"}],
           "labels": [{"annotator": "cy", "a": "r2", "b": "r1", "choice": "A", "strength": 3,
                       "criteria": {"clarity": "B", "safety": "tie"}}]}
    path = tmp_path / "flip.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    assert _import(project, "jsonl", path).status == ImportJob.Status.SUCCEEDED
    c = Comparison.objects.get(project=project)
    assert c.response_a.external_id == "r1" and c.response_b.external_id == "r2"
    j = Judgment.objects.get(comparison=c)
    assert (j.choice, j.strength, j.criteria) == ("B", 3, {"clarity": "A", "safety": "tie"})


def test_cancelled_import_writes_nothing(seeded, tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"P{i}", "responses": ["a", "b"]}) + "\n" for i in range(1200)))
    job = imports.import_job_create(project=seeded, format="jsonl", source_path=path)
    before = db_snapshot()
    assert imports.import_job_cancel(job=job)
    job = imports.import_job_run(job_id=job.pk)
    assert job.status == ImportJob.Status.CANCELLED
    assert db_snapshot() == before


def test_cancel_during_validation_stops_and_writes_nothing(seeded, tmp_path, monkeypatch):
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"P{i}", "responses": ["a", "b"]}) + "\n" for i in range(50)))
    job = imports.import_job_create(project=seeded, format="jsonl", source_path=path)
    real_parser = imports.PARSERS["jsonl"]

    def parser_that_gets_cancelled(p):
        for n, record in enumerate(real_parser(p)):
            if n == 20:  # a researcher presses Cancel while the file is being read
                ImportJob.objects.filter(pk=job.pk).update(cancel_requested=True)
            yield record

    monkeypatch.setitem(imports.PARSERS, "jsonl", parser_that_gets_cancelled)
    monkeypatch.setattr(imports, "PROGRESS_EVERY", 5)
    before = db_snapshot()
    job = imports.import_job_run(job_id=job.pk)
    assert job.status == ImportJob.Status.CANCELLED
    assert 20 <= job.records_done < 50
    assert db_snapshot() == before
