"""Gzip bombs and endless lines (issue #18 point 3): an import stops at the inflated
size and line-length caps with a clear error, within a memory bound, writes nothing
and deletes the uploaded copy; Cancel stops a long read within seconds."""

from __future__ import annotations

import gzip
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from annotate.models import ImportJob
from dataio.imports import services as imports

from tests.helpers import db_snapshot

KB, MB = 1024, 1024 * 1024


def gzip_bomb(path: Path, piece: bytes, repeat: int, *, head: bytes = b"", tail: bytes = b"") -> Path:
    """A gzip file that inflates to head + piece × repeat + tail: one member holding
    ``piece``, written ``repeat`` times (concatenated members are one gzip stream),
    so a file inflating to GBs is made in milliseconds and a few KB."""
    member = gzip.compress(piece, compresslevel=9)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(head))
        for _ in range(repeat):
            fh.write(member)
        fh.write(gzip.compress(tail))
    return path


@pytest.fixture
def caps(settings):
    settings.IMPORT_MAX_INFLATED_BYTES = 8 * MB
    settings.IMPORT_MAX_LINE_BYTES = 64 * KB
    return settings


def _rejected_within_memory(project, fmt, path, message):
    """Import ``path``; it must fail with ``message``, change nothing, leave no upload,
    and allocate less than 12 MB at its peak (the file inflates to 64 MB or more)."""
    before = db_snapshot()
    job = imports.import_job_create(project=project, format=fmt, source_path=path)
    tracemalloc.start()
    try:
        job = imports.import_job_run(job_id=job.pk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert job.status == ImportJob.Status.FAILED
    assert message in job.error, job.error
    assert db_snapshot() == before
    assert not Path(job.file_path).exists()
    assert peak < 12 * MB, f"peak {peak / MB:.1f} MB"
    return job


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "summarize"])
def test_one_endless_line_is_rejected_at_the_line_cap(seeded, tmp_path, caps, fmt):
    path = gzip_bomb(tmp_path / f"endless.{fmt}.gz", b"a" * MB, 64, head=b'{"prompt": "')
    job = _rejected_within_memory(seeded, fmt, path, "line 1 is longer than 64 KB")
    assert job.error_line == 1


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "summarize"])
def test_blank_lines_are_rejected_at_the_inflated_cap(seeded, tmp_path, caps, fmt):
    path = gzip_bomb(tmp_path / f"blank.{fmt}.gz", b"\n" * MB, 64)
    _rejected_within_memory(seeded, fmt, path, "the file inflates past 8 MB")


@pytest.mark.django_db
def test_a_json_array_is_rejected_at_the_inflated_cap_and_its_elements_at_the_line_cap(seeded, tmp_path, caps):
    path = gzip_bomb(tmp_path / "array.json.gz", b" " * MB, 64, head=b"[")
    _rejected_within_memory(seeded, "summarize", path, "the file inflates past 8 MB")
    # One element over the line cap, on one line as JSON arrays often are.
    big = tmp_path / "big.json"
    big.write_text('[{"info": {"id": "x"}, "summaries": [{"text": "' + "s" * (100 * KB) + '"}]}]')
    job = _rejected_within_memory(seeded, "summarize", big, "the record at line 1 is longer than 64 KB")
    assert job.error_line == 1


@pytest.mark.django_db
def test_the_caps_default_to_2_gb_and_16_mb(settings):
    assert settings.IMPORT_MAX_INFLATED_BYTES == 2048 * MB
    assert settings.IMPORT_MAX_LINE_BYTES == 16 * MB


@pytest.mark.django_db
def test_a_file_under_the_caps_still_imports(project, tmp_path, caps):
    path = gzip_bomb(tmp_path / "ok.jsonl.gz", b"\n" * (2 * MB), 3, head=b'{"prompt": "Q?", "responses": ["a", "b"]}\n',
                     tail=b'{"prompt": "Q2?", "responses": ["c", "d"]}\n')
    job = imports.import_file(project=project, format="jsonl", path=path)
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert job.counts["records"] == 2 and project.prompts.count() == 2
    assert Path(job.file_path).exists()  # a successful import keeps its file


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_a_long_read_within_seconds(project, tmp_path):
    """A worker reads 2 GB of blank lines (the default cap; about a minute of work);
    a researcher presses Cancel and the import stops within seconds."""
    path = gzip_bomb(tmp_path / "long.jsonl.gz", b"\n" * (16 * MB), 127)
    job = imports.import_job_create(project=project, format="jsonl", source_path=path)
    worker = threading.Thread(target=imports.import_job_run, kwargs={"job_id": job.pk})
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while ImportJob.objects.get(pk=job.pk).status != ImportJob.Status.VALIDATING and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # well into the file
        assert worker.is_alive()
        pressed = time.monotonic()
        assert imports.import_job_cancel(job=job)
        worker.join(timeout=30)
        stopped_after = time.monotonic() - pressed
    finally:
        worker.join()
    job.refresh_from_db()
    assert job.status == ImportJob.Status.CANCELLED
    assert stopped_after < 5, f"Cancel took {stopped_after:.1f} s"
    assert not Path(job.file_path).exists()
    assert not project.prompts.exists()

