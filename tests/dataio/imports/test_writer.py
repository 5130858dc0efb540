"""The import job: chunked writes stay all-or-nothing, progress is committed while the file
is validated, cancel (before the run, while validating, while writing) leaves nothing, the
PostgreSQL COPY path stores exactly what the portable path stores, and an upload through
the page or the API starts a job that runs to completion."""

from __future__ import annotations

import csv
import json

import pytest
from django.db import connection

from annotate import services
from annotate.models import Comparison, ImportJob, Judgment, Prompt, Ranking, Rating, Response
from dataio.imports import services as imports
from dataio.imports import writer as import_writer

from tests.dataio.imports._helpers import parquet_row, write_parquet
from tests.helpers import db_snapshot

pytestmark = pytest.mark.django_db

COLUMNS = ["prompt_id", "prompt", "response_a_id", "response_a", "response_b_id", "response_b", "annotator", "choice",
           "strength", "criteria", "scores", "rationale", "time_on_task_ms"]


def _csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    return path


def _rows(n=10):
    """Pairs over n prompts; the prompts come back later in the file (another chunk),
    one label is given in reversed order, and some rows are ratings."""
    rows = []
    for i in range(n):
        rows.append({"prompt_id": f"q{i}", "prompt": f"Question {i}?", "response_a_id": "r0", "response_a": f"zero {i}",
                     "response_b_id": "r1", "response_b": f"one {i}", "annotator": "amy", "choice": "A", "strength": 2,
                     "criteria": json.dumps({"helpful": "A", "safe": "tie"}), "time_on_task_ms": 1000 + i})
    for i in range(n):
        rows.append({"prompt_id": f"q{i}", "prompt": f"Question {i}?", "response_a_id": "r2", "response_a": f"two {i}",
                     "response_b_id": "r0", "response_b": f"zero {i}", "annotator": "bo", "choice": "B", "strength": 1,
                     "rationale": "clearer"})
        rows.append({"prompt_id": f"q{i}", "prompt": f"Question {i}?", "response_a_id": "r1", "response_a": f"one {i}",
                     "annotator": "cy", "scores": json.dumps({"helpful": 3, "safe": True, "note": None})})
    return rows


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(imports, "IMPORT_CHUNK", 3)
    monkeypatch.setattr(imports, "PROGRESS_EVERY", 4)


def test_multi_chunk_import_writes_everything_and_reimport_adds_nothing(project, tmp_path, small_chunks):
    path = _csv(tmp_path / "many.csv", _rows())
    job = imports.import_file(project=project, format="csv", path=path)
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert job.records_done == 30
    assert (job.counts["prompts_created"], job.counts["responses_created"], job.counts["comparisons_created"]) == (10, 30, 20)
    assert (job.counts["judgments_created"], job.counts["ratings_created"], job.counts["annotators"]) == (20, 10, 3)
    assert Judgment.objects.filter(comparison__project=project).count() == 20
    before = db_snapshot()
    again = imports.import_file(project=project, format="csv", path=path)
    assert again.status == ImportJob.Status.SUCCEEDED, again.error
    assert (again.counts["prompts_existing"], again.counts["responses_existing"], again.counts["comparisons_existing"]) == (10, 30, 20)
    assert (again.counts["judgments_created"], again.counts["judgments_updated"]) == (0, 20)
    assert (again.counts["ratings_created"], again.counts["ratings_updated"]) == (0, 10)
    after = db_snapshot()
    for label in ("annotate.Judgment", "annotate.Rating"):  # an upsert refreshes updated_at only
        for rows in (before[label], after[label]):
            for row in rows:
                row.pop("updated_at"), row.pop("import_job_id")
    assert after == before


def test_label_given_in_reversed_order_is_flipped_in_a_later_chunk(project, tmp_path, small_chunks):
    path = _csv(tmp_path / "many.csv", _rows(4))
    assert imports.import_file(project=project, format="csv", path=path).status == ImportJob.Status.SUCCEEDED
    j = Judgment.objects.get(comparison__prompt__external_id="q3", annotator__username="ext.bo")
    # The file said r2 vs r0, B; r0 was stored first, so canonically it is r0 vs r2, A.
    assert (j.comparison.response_a.external_id, j.comparison.response_b.external_id) == ("r0", "r2")
    assert (j.choice, j.strength) == ("A", -1)


def test_conflict_found_while_writing_the_last_chunk_leaves_database_unchanged(seeded, tmp_path, small_chunks):
    rows = _rows()
    rows.append({"prompt_id": "seed", "prompt": "Something else", "response_a": "x", "response_b": "y"})
    path = _csv(tmp_path / "late-conflict.csv", rows)
    before = db_snapshot()
    job = imports.import_file(project=seeded, format="csv", path=path)
    assert job.status == ImportJob.Status.FAILED
    assert (job.error_line, job.error_field) == (32, "id"), job.error
    assert "different conversation" in job.error
    assert db_snapshot() == before


def test_bad_record_in_the_last_chunk_leaves_database_unchanged(seeded, tmp_path, small_chunks):
    rows = _rows()
    rows.append(dict(rows[0], choice="maybe"))
    path = _csv(tmp_path / "late-bad.csv", rows)
    before = db_snapshot()
    job = imports.import_file(project=seeded, format="csv", path=path)
    assert job.status == ImportJob.Status.FAILED
    assert (job.error_line, job.error_field) == (32, "choice"), job.error
    assert db_snapshot() == before


def test_second_label_on_a_pair_in_another_chunk_names_the_first_line(project, tmp_path, small_chunks):
    rows = _rows()
    rows.append(dict(rows[4], response_a_id="r1", response_a=rows[4]["response_b"], response_b_id="r0",
                     response_b=rows[4]["response_a"]))
    job = imports.import_file(project=project, format="csv", path=_csv(tmp_path / "dup.csv", rows))
    assert job.status == ImportJob.Status.FAILED
    assert job.error_line == 32 and "line 6" in job.error and "'ext.amy'" in job.error, job.error
    assert not Prompt.objects.filter(project=project).exists()


def test_same_response_id_with_other_text_in_another_chunk_is_rejected(project, tmp_path, small_chunks):
    rows = _rows()
    rows.append(dict(rows[0], response_b="a different text"))
    job = imports.import_file(project=project, format="csv", path=_csv(tmp_path / "text.csv", rows))
    assert job.status == ImportJob.Status.FAILED
    assert (job.error_line, job.error_field) == (32, "responses") and "line 2" in job.error, job.error
    assert not Prompt.objects.filter(project=project).exists()


# --- progress and cancel ---------------------------------------------------------------


def test_progress_is_committed_while_validating(project, tmp_path, small_chunks, monkeypatch):
    path = _csv(tmp_path / "many.csv", _rows())
    job = imports.import_job_create(project=project, format="csv", source_path=path)
    seen = []
    real_check = imports._check_cancel

    def check(j):
        seen.append(ImportJob.objects.get(pk=j.pk).records_done)
        real_check(j)

    monkeypatch.setattr(imports, "_check_cancel", check)
    assert imports.import_job_run(job_id=job.pk).status == ImportJob.Status.SUCCEEDED
    assert seen[:3] == [0, 4, 8]  # each check sees the count the previous one recorded


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


def test_cancel_while_writing_leaves_nothing(seeded, tmp_path, small_chunks, monkeypatch):
    path = _csv(tmp_path / "many.csv", _rows())
    job = imports.import_job_create(project=seeded, format="csv", source_path=path)
    real_write = import_writer.ImportWriter.write
    written = []

    def write_then_cancel(self, entries):
        real_write(self, entries)
        written.append(len(entries))
        if len(written) == 2:  # the researcher presses Cancel halfway through the write
            ImportJob.objects.filter(pk=job.pk).update(cancel_requested=True)

    monkeypatch.setattr(import_writer.ImportWriter, "write", write_then_cancel)
    before = db_snapshot()
    job = imports.import_job_run(job_id=job.pk)
    assert job.status == ImportJob.Status.CANCELLED
    assert written == [3, 3]
    assert db_snapshot() == before


# --- COPY vs the portable writer -------------------------------------------------------


def _natural_rows(project) -> dict[str, list]:
    """Every stored value of a project's import, with row ids replaced by external ids."""
    responses = {r.pk: (r.prompt.external_id, r.external_id) for r in Response.objects.filter(prompt__project=project)}
    drop = {"id", "created_at", "updated_at", "import_job", "project"}

    def values(qs, **fks):
        out = []
        for obj in qs:
            row = {f.name: getattr(obj, f.attname) for f in obj._meta.concrete_fields if f.name not in drop}
            for name, to_key in fks.items():
                row[name] = to_key(row[name])
            out.append(row)
        return sorted(out, key=lambda r: json.dumps(r, sort_keys=True, default=str))

    prompt_key = lambda pk: Prompt.objects.get(pk=pk).external_id  # noqa: E731
    user_key = lambda pk: Judgment.annotator.field.related_model.objects.get(pk=pk).username  # noqa: E731
    return {
        "prompts": values(Prompt.objects.filter(project=project)),
        "responses": values(Response.objects.filter(prompt__project=project), prompt=prompt_key),
        "comparisons": values(Comparison.objects.filter(project=project), prompt=prompt_key,
                              response_a=responses.get, response_b=responses.get),
        "judgments": values(Judgment.objects.filter(comparison__project=project), annotator=user_key,
                            comparison=lambda pk: tuple(map(responses.get, Comparison.objects.values_list(
                                "response_a", "response_b").get(pk=pk)))),
        "ratings": values(Rating.objects.filter(response__prompt__project=project), annotator=user_key,
                          response=responses.get,
                          spans=lambda spans: [dict(s, response=responses[s["response"]]) for s in spans]),
        "rankings": values(Ranking.objects.filter(prompt__project=project), annotator=user_key, prompt=prompt_key,
                           groups=lambda groups: [[responses[r] for r in g] for g in groups]),
    }


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY path is PostgreSQL's")
def test_copy_path_and_portable_path_store_the_same_rows(owner, tmp_path, small_chunks, monkeypatch):
    rows = _rows()
    path = _csv(tmp_path / "many.csv", rows)
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text("".join(json.dumps(
        {"id": f"j{i}", "conversation": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Q{i}"}],
         "metadata": {"split": "test", "n": i}, "responses": [{"id": "x", "text": f"x{i}", "source": "m1"}, f"plain {i}"],
         "labels": [{"annotator": "dee", "a": 1, "b": 0, "choice": "tie", "strength": 0, "metadata": {"conf": 0.5}}]}
    ) + "\n" for i in range(5)), encoding="utf-8")
    stored = {}
    for name, writer in (("copy", import_writer.CopyWriter), ("portable", import_writer.BulkWriter)):
        monkeypatch.setattr(import_writer, "writer_for_connection", writer)
        project = services.project_create(name=name, slug=f"same-{name}", created_by=owner)
        for fmt, p in (("csv", path), ("jsonl", jsonl)):
            job = imports.import_file(project=project, format=fmt, path=p)
            assert job.status == ImportJob.Status.SUCCEEDED, job.error
        stored[name] = _natural_rows(project)
    assert stored["copy"]["judgments"] and stored["copy"]["ratings"]
    assert stored["copy"] == stored["portable"]


# --- upload page and API ---------------------------------------------------------------


def test_upload_page_offers_the_new_formats(client, owner, project):
    client.force_login(owner)
    html = client.get(f"/p/{project.slug}/import/").content.decode()
    for fmt in ("oasst", "finegrained", "helpsteer2", "ultrafeedback", "csv", "parquet"):
        assert f'value="{fmt}"' in html


@pytest.mark.shared_data
def test_import_upload_page_runs_through_celery(client, owner, project, shared_data, settings, celery_eager,
                                                django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    client.force_login(owner)
    with open(shared_data / "pandalm" / "testset-v1.json", "rb") as fh, django_capture_on_commit_callbacks(execute=True):
        resp = client.post(f"/p/{project.slug}/import/", {"format": "pandalm", "file": fh})
    assert resp.status_code == 302
    page = client.get(f"/p/{project.slug}/")
    html = page.content.decode()
    assert "succeeded" in html and "999 comparisons" in html
    assert Judgment.objects.filter(comparison__project=project).count() == 2997


def test_api_parquet_upload_runs(client, owner, project, tmp_path, celery_eager, django_capture_on_commit_callbacks):
    path = write_parquet(tmp_path / "flat.parquet", [parquet_row("q1", "One?", "yes", "no", "dee", "tie", 0)])
    client.force_login(owner)
    with open(path, "rb") as fh, django_capture_on_commit_callbacks(execute=True):
        resp = client.post(f"/api/v1/projects/{project.slug}/imports/", {"format": "parquet", "file": fh})
    assert resp.status_code == 202, resp.content
    job = ImportJob.objects.get(pk=resp.json()["id"])
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert Judgment.objects.get().choice == "tie"
