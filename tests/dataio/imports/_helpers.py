"""Helpers shared by the import tests: run an import, check that it succeeded or was
rejected whole (with the line and field named, nothing written), and write input files."""

from __future__ import annotations

import gzip
import json

from annotate.models import ImportJob
from dataio.imports import services as imports

from tests.helpers import db_snapshot


def run_import(project, fmt, path):
    return imports.import_file(project=project, format=fmt, path=path)


def import_ok(project, fmt, path):
    job = run_import(project, fmt, path)
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    return job


def assert_rejected(project, fmt, path, *, line, field_part="", message_part="", unit="line"):
    """Import `path`, expect a rejection at `line` (None: the file as a whole) that names
    `field_part` and says `message_part`, and expect the database to be unchanged."""
    before = db_snapshot()
    job = run_import(project, fmt, path)
    assert job.status == ImportJob.Status.FAILED
    assert job.error_line == line, job.error
    if line is not None:
        assert f"{unit} {line}" in job.error
    assert field_part in job.error_field, job.error
    assert message_part in job.error, job.error
    assert db_snapshot() == before
    return job


def write_jsonl(path, rows, *, gz=False):
    text = "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")
    path.write_bytes(gzip.compress(text) if gz else text)
    return path


def write_parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def parquet_row(pid, question, a, b, annotator=None, choice=None, strength=None, scores=None):
    """A row of the generic flat schema, as the Parquet reader takes it."""
    return {"prompt_id": pid, "conversation": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}],
            "response_a": a, "response_b": b, "annotator": annotator, "choice": choice, "strength": strength,
            "scores": None if scores is None else json.dumps(scores)}


def hs2_row(prompt, response, h, c, co, cx, v, **extra):
    """A HelpSteer2 row: one response to a prompt with its five attribute scores."""
    return {"prompt": prompt, "response": response, "helpfulness": h, "correctness": c, "coherence": co,
            "complexity": cx, "verbosity": v, **extra}


HS2_ROWS = [
    hs2_row("What is the capital of France?", "Paris.", 4, 4, 4, 0, 1),
    hs2_row("What is the capital of France?", "Lyon, probably.", 0, 0, 3, 0, 1),
    hs2_row("Write a haiku about rain.\n<extra_id_1>Assistant\nSoft rain on the roof\n<extra_id_1>User\nNow one about snow.",
            "White hush on the hills", 3, 4, 4, 1, 2),
]
