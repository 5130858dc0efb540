"""Round trip: import → export ``generic`` → import into a new project gives the same
labels (choices, strengths, criteria, rationales per pair and annotator; annotators
map through their pseudonymous ids)."""

from __future__ import annotations

import json

import pytest

from annotate import services
from annotate.models import ImportJob, Judgment, LabelSource, Rating
from annotate.presenters import annotator_pseudonym
from dataio.exports.services import export_write
from dataio.exports.spec import ExportSpec
from dataio.imports import services as imports

from tests.helpers import head_lines

pytestmark = pytest.mark.django_db

FLIP = {"A": "B", "B": "A", "tie": "tie", "both_bad": "both_bad", "na": "na"}


def _pairwise_labels(project, annotator_name) -> set[tuple]:
    """Every human label, oriented by the responses' external ids (row ids differ
    between projects, so the canonical A/B order may too)."""
    labels = set()
    for j in Judgment.objects.filter(comparison__project=project).exclude(source=LabelSource.DERIVED).select_related(
        "annotator", "comparison__prompt", "comparison__response_a", "comparison__response_b"
    ):
        c = j.comparison
        a, b = c.response_a.external_id, c.response_b.external_id
        flip = a > b
        labels.add((
            c.prompt.external_id, min(a, b), max(a, b), annotator_name(j.annotator),
            FLIP[j.choice] if flip else j.choice,
            None if j.strength is None else (-j.strength if flip else j.strength),
            json.dumps({k: FLIP[v] if flip else v for k, v in j.criteria.items()}, sort_keys=True),
            j.rationale, j.time_on_task_ms,
        ))
    return labels


def _ratings(project, annotator_name) -> set[tuple]:
    return {
        (r.response.prompt.external_id, r.response.external_id, annotator_name(r.annotator),
         json.dumps(r.scores, sort_keys=True), r.rationale, r.time_on_task_ms)
        for r in Rating.objects.filter(response__prompt__project=project).select_related("annotator", "response__prompt")
    }


def _roundtrip(source, tmp_path, file_format: str, import_format: str):
    result = export_write(project=source, spec=ExportSpec(format="generic", file_format=file_format), out=tmp_path / "export")
    target = services.project_create(name="Copy", slug=f"copy-{file_format}")
    job = imports.import_file(project=target, format=import_format, path=result.data_path)
    assert job.status == ImportJob.Status.SUCCEEDED, job.error

    def original(user) -> str:  # what an annotator of the source project becomes after the round trip
        return f"ext.{annotator_pseudonym(salt=source.annotator_salt, user_id=user.pk)}"

    def copied(user) -> str:
        return user.username

    return target, original, copied, result


GENERIC = [
    {"id": "q1", "prompt": "Name a prime.", "metadata": {"split": "train"},
     "responses": [{"id": "x", "text": "7", "source": "m1"}, {"id": "y", "text": "9", "source": "m2"},
                   {"id": "z", "text": "Two.", "source": "m3"}],
     "labels": [
         {"annotator": "alice", "a": 0, "b": 1, "choice": "A", "strength": 2, "criteria": {"correct": "A", "tone": "tie"},
          "rationale": "9 = 3 × 3", "time_on_task_ms": 5300},
         {"annotator": "bob", "a": 1, "b": 0, "choice": "B", "strength": 1, "criteria": {"correct": "B"}},
         {"annotator": "carol", "a": 0, "b": 1, "choice": "tie", "strength": 0},
         {"annotator": "alice", "a": 2, "b": 0, "choice": "both_bad"},
         {"annotator": "bob", "a": 1, "b": 2, "choice": "B", "criteria": {"tone": "na"}},
     ]},
    {"id": "q2", "conversation": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                                  {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye?"}],
     "responses": ["Bye!", "Goodbye, see you."],
     "labels": [{"annotator": "carol", "a": 0, "b": 1, "choice": "A", "strength": 3},
                {"annotator": "alice", "a": 1, "b": 0, "choice": "A", "strength": 1}]},
]


@pytest.fixture
def imported(project, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in GENERIC), encoding="utf-8")
    job = imports.import_file(project=project, format="jsonl", path=path)
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    return project


@pytest.mark.parametrize("file_format, import_format", [("jsonl", "jsonl"), ("csv", "csv"), ("parquet", "parquet")])
def test_generic_export_reimports_with_the_same_labels(imported, tmp_path, file_format, import_format):
    target, original, copied, _ = _roundtrip(imported, tmp_path, file_format, import_format)
    want = _pairwise_labels(imported, original)
    assert len(want) == 7
    assert _pairwise_labels(target, copied) == want


def test_flat_generic_export_carries_ratings_and_the_card_says_what_it_left_out(imported, tmp_path):
    rating_rows = [
        {"prompt_id": "q1", "prompt": "Name a prime.", "response_a_id": "x", "response_a": "7", "annotator": "dora",
         "scores": json.dumps({"helpful": 4, "honest": None, "safe": True}), "rationale": "fine", "time_on_task_ms": "900"},
    ]
    import csv

    path = tmp_path / "ratings.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rating_rows[0]))
        w.writeheader()
        w.writerows(rating_rows)
    assert imports.import_file(project=imported, format="csv", path=path).status == ImportJob.Status.SUCCEEDED
    target, original, copied, result = _roundtrip(imported, tmp_path, "csv", "csv")
    assert _ratings(target, copied) == _ratings(imported, original) != set()
    assert _pairwise_labels(target, copied) == _pairwise_labels(imported, original)
    jsonl = export_write(project=imported, spec=ExportSpec(format="generic"), out=tmp_path / "jsonl")
    assert jsonl.counts["excluded_ratings_labels"] == 1
    assert "ratings left out (the generic JSONL schema has none" in jsonl.card_path.read_text()


def test_reimporting_the_export_into_the_same_project_changes_nothing(imported, tmp_path):
    before = _pairwise_labels(imported, lambda u: u.username)
    result = export_write(project=imported, spec=ExportSpec(format="generic"), out=tmp_path / "export")
    target = services.project_create(name="Copy", slug="copy")
    for _ in range(2):
        job = imports.import_file(project=target, format="jsonl", path=result.data_path)
        assert job.status == ImportJob.Status.SUCCEEDED
    assert job.counts["judgments_created"] == 0 and job.counts["judgments_updated"] == 7
    assert _pairwise_labels(imported, lambda u: u.username) == before


@pytest.mark.shared_data
def test_summarize_workers_round_trip_through_pseudonymous_ids(project, shared_data, tmp_path):
    part = tmp_path / "batch13.jsonl"
    head_lines(shared_data / "summarize-from-feedback" / "batch13.json", part, 150)
    assert imports.import_file(project=project, format="summarize", path=part).status == ImportJob.Status.SUCCEEDED
    target, original, copied, result = _roundtrip(project, tmp_path, "parquet", "parquet")
    want = _pairwise_labels(project, original)
    assert len(want) == 150
    assert _pairwise_labels(target, copied) == want
    assert len({label[3] for label in want}) > 1  # several workers, each still told apart
