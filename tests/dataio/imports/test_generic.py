"""Imports of the documented generic formats: JSONL, CSV and Parquet (the flat schema).
What each stores, and that a bad line, row or cell is rejected whole with the line (or
row) and field named and nothing written."""

from __future__ import annotations

import csv

import pytest

from annotate.models import Comparison, Judgment, Prompt, Rating, Response
from dataio.imports.parsers import flat

from tests.dataio.imports._helpers import assert_rejected, import_ok, parquet_row, write_jsonl, write_parquet

pytestmark = pytest.mark.django_db


# --- JSONL -----------------------------------------------------------------------------


def test_generic_labels_are_stored_in_canonical_order(project, tmp_path):
    """A label given as (second, first) is flipped onto the canonical (A, B)."""
    rec = {"id": "p1", "prompt": "Pick one", "responses": [{"id": "r1", "text": "one"}, {"id": "r2", "text": "two"}],
           "labels": [{"annotator": "cy", "a": "r2", "b": "r1", "choice": "A", "strength": 3,
                       "criteria": {"clarity": "B", "safety": "tie"}}]}
    import_ok(project, "jsonl", write_jsonl(tmp_path / "flip.jsonl", [rec]))
    c = Comparison.objects.get(project=project)
    assert c.response_a.external_id == "r1" and c.response_b.external_id == "r2"
    j = Judgment.objects.get(comparison=c)
    assert (j.choice, j.strength, j.criteria) == ("B", 3, {"clarity": "A", "safety": "tie"})


# --- CSV -------------------------------------------------------------------------------

CSV_COLUMNS = ["prompt_id", "prompt", "response_a_id", "response_a", "response_a_source",
               "response_b_id", "response_b", "response_b_source", "annotator", "choice", "strength", "rationale", "scores"]


def _csv(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
    return path


CSV_ROWS = [
    ["p1", "What is 2+2?", "r1", "Four.\nIt is 4.", "model-x", "r2", "Five.", "model-y", "alice", "A", "2", 'Right, and "short"', ""],
    ["p1", "What is 2+2?", "r2", "Five.", "model-y", "r3", "4", "model-z", "alice", "B", "3", "", ""],
    ["p1", "What is 2+2?", "r3", "4", "model-z", "r1", "Four.\nIt is 4.", "model-x", "bob", "tie", "0", "", ""],
    ["p2", "Say hi", "h1", "Hi!", "", "h2", "Hello!", "", "", "", "", "", ""],
    ["p2", "Say hi", "h1", "Hi!", "", "", "", "", "carol", "", "", "Friendly.", '{"helpfulness": 3, "honesty": null}'],
]


def test_csv_rows_merge_into_prompts_with_labels_and_ratings(project, tmp_path):
    path = _csv(tmp_path / "flat.csv", CSV_ROWS)
    job = import_ok(project, "csv", path)
    assert job.counts["prompts_created"] == 2 and job.counts["responses_created"] == 5
    assert job.counts["judgments_created"] == 3 and job.counts["ratings_created"] == 1
    r = {x.external_id: x for x in Response.objects.filter(prompt__project=project)}
    assert r["r1"].text == "Four.\nIt is 4." and r["r1"].source == "model-x"
    j = {(x.annotator.username, x.comparison.response_a.external_id, x.comparison.response_b.external_id): x
         for x in Judgment.objects.select_related("annotator", "comparison__response_a", "comparison__response_b")}
    alice_12 = j[("ext.alice", "r1", "r2")]
    assert (alice_12.choice, alice_12.strength, alice_12.rationale) == ("A", -2, 'Right, and "short"')
    assert (j[("ext.alice", "r2", "r3")].choice, j[("ext.alice", "r2", "r3")].strength) == ("B", 3)
    assert (j[("ext.bob", "r1", "r3")].choice, j[("ext.bob", "r1", "r3")].strength) == ("tie", 0)
    # A pair row without a label brings its responses only; a response row with scores, a rating.
    assert not Comparison.objects.filter(prompt__external_id="p2").exists()
    rating = Rating.objects.get()
    assert (rating.response_id, rating.annotator.username) == (r["h1"].pk, "ext.carol")
    assert rating.scores == {"helpfulness": 3, "honesty": None} and rating.rationale == "Friendly."
    again = import_ok(project, "csv", path)
    assert again.counts["judgments_created"] == 0 and again.counts["ratings_created"] == 0
    assert Judgment.objects.count() == 3 and Rating.objects.count() == 1


# Header, then a row whose quoted response spans lines 2-4, then the bad row on line 5.
CSV_HEAD = "prompt_id,prompt,response_a,response_b,annotator,choice\n"
CSV_MULTILINE = 'p1,Q,"line one\nline two\nline three",B text,ann,A\n'


def _bad_csv(tmp_path, text):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_error_names_the_physical_line_after_a_multiline_field(seeded, tmp_path):
    path = _bad_csv(tmp_path, CSV_HEAD + CSV_MULTILINE + "p1,Q,A text,C text,ann,maybe\n")
    assert_rejected(seeded, "csv", path, line=5, field_part="choice", message_part="A, B, tie")


def test_csv_unclosed_quote_is_malformed_at_the_line_it_opens(seeded, tmp_path):
    path = _bad_csv(tmp_path, CSV_HEAD + CSV_MULTILINE + 'p2,Q2,"never closed,B,ann,A\nmore\n')
    assert_rejected(seeded, "csv", path, line=5, message_part="malformed CSV")


def test_csv_row_with_too_few_fields_is_rejected(seeded, tmp_path):
    path = _bad_csv(tmp_path, CSV_HEAD + CSV_MULTILINE + "\np3,Q3,A,B\n")
    assert_rejected(seeded, "csv", path, line=6, field_part="annotator", message_part="4 fields")


def test_csv_unknown_column_is_rejected_at_the_header(seeded, tmp_path):
    path = _bad_csv(tmp_path, "prompt,response_a,response_b,annotator,choise\nQ,A,B,ann,A\n")
    assert_rejected(seeded, "csv", path, line=1, field_part="choise", message_part="unknown column")


@pytest.mark.parametrize(("row", "column"), [
    (["p", "Q", "", "A", "", "", "B", "", "ann", "A", "two", "", ""], "strength"),
    (["p", "Q", "", "A", "", "", "B", "", "ann", "A", "", "", '{"x": 1}'], "scores"),
    (["p", "Q", "", "A", "", "", "", "", "ann", "A", "", "", ""], "choice"),
    (["p", "Q", "", "A", "", "", "", "", "ann", "", "", "", "{not json"], "scores"),
    (["p", "Q", "", "A", "", "", "B", "", "", "A", "", "", ""], "annotator"),
])
def test_csv_bad_cell_names_line_and_column(seeded, tmp_path, row, column):
    path = _csv(tmp_path / "bad.csv", [CSV_ROWS[3], row])
    assert_rejected(seeded, "csv", path, line=3, field_part=column)


# --- Parquet ---------------------------------------------------------------------------


def test_parquet_rows_import_in_batches(project, tmp_path, monkeypatch):
    monkeypatch.setattr(flat, "PARQUET_BATCH_ROWS", 2)
    rows = [parquet_row(f"q{i}", f"Question {i}?", f"yes {i}", f"no {i}", "dee", "B", 1) for i in range(5)]
    rows.append(parquet_row("q0", "Question 0?", "yes 0", None, "dee", scores={"helpfulness": 4}))
    path = write_parquet(tmp_path / "flat.parquet", rows)
    job = import_ok(project, "parquet", path)
    assert job.counts["records"] == 6 and job.counts["prompts_created"] == 5
    assert job.counts["judgments_created"] == 5 and job.counts["ratings_created"] == 1
    q0 = Prompt.objects.get(project=project, external_id="q0")
    assert q0.conversation[0] == {"role": "system", "content": "Be brief."}
    j = Judgment.objects.get(comparison__prompt=q0)
    assert (j.choice, j.strength, j.annotator.username) == ("B", 1, "ext.dee")
    assert Rating.objects.get().scores == {"helpfulness": 4}


def test_parquet_error_names_the_row_across_batches(seeded, tmp_path, monkeypatch):
    monkeypatch.setattr(flat, "PARQUET_BATCH_ROWS", 2)
    rows = [parquet_row(f"q{i}", f"Question {i}?", "yes", "no", "dee", "A") for i in range(5)]
    rows[3]["choice"] = "C"
    assert_rejected(seeded, "parquet", write_parquet(tmp_path / "bad.parquet", rows), line=4, field_part="choice", unit="row")


def test_parquet_conflicting_prompt_names_rows(seeded, tmp_path):
    rows = [parquet_row("q1", "One?", "yes", "no"), parquet_row("q1", "Another?", "yes", "no")]
    assert_rejected(seeded, "parquet", write_parquet(tmp_path / "bad.parquet", rows), line=2, field_part="id",
              message_part="different conversation on row 1", unit="row")


def test_parquet_that_is_not_parquet_is_rejected(seeded, tmp_path):
    path = tmp_path / "x.parquet"
    path.write_text("prompt,response_a\nQ,A\n")
    assert_rejected(seeded, "parquet", path, line=None, message_part="Parquet")


def test_parquet_unknown_column_is_rejected(seeded, tmp_path):
    rows = [{**parquet_row("q1", "One?", "yes", "no"), "split": "train"}]
    assert_rejected(seeded, "parquet", write_parquet(tmp_path / "bad.parquet", rows), line=None, field_part="split")
