"""Parquet exports at scale (issue #19 point 5): one row group per export chunk,
streamed, reading back the rows JSONL holds, and no pandas in the exporting
process (it alone is a third of the 150 MB budget)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dataio.exports import services as exports
from dataio.exports.rows import RAW_COLUMNS

from tests.dataio.exports.test_exports import _export, _jsonl, lab  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("spec", [
    {"format": "trl", "margin": 1.0},
    {"format": "trl-conversational", "aggregate": "majority"},
    {"format": "rankings"},
    {"format": "best-of-n"},
    {"format": "raw"},
], ids=lambda spec: spec["format"])
def test_a_parquet_export_of_many_row_groups_reads_back_the_jsonl_rows(lab, tmp_path, monkeypatch, spec):  # noqa: F811
    import pyarrow.parquet as pq

    monkeypatch.setattr(exports, "CHUNK", 1)  # a row group per row
    want = _jsonl(_export(lab["project"], tmp_path, "j", **spec).data_path)
    path = _export(lab["project"], tmp_path, "p", file_format="parquet", **spec).data_path
    assert pq.ParquetFile(path).metadata.num_row_groups == len(want) > 1
    got = pq.read_table(path).to_pylist()
    if spec["format"] == "raw":  # objects are JSON text in Parquet
        for row in got:
            for name, kind, _ in RAW_COLUMNS:
                if kind == "json" and row[name] is not None:
                    row[name] = json.loads(row[name])
    assert got == want


def test_a_parquet_export_keeps_turn_keys_outside_the_schema_out_and_any_text(tmp_path):
    import pyarrow.parquet as pq

    from dataio.exports.writers import WRITERS

    columns = [("prompt", "turns", ""), ("text", "str", ""), ("margin", "float", ""), ("n", "int", ""),
               ("meta", "json", ""), ("rejected", "strs", "")]
    rows = [{"prompt": [{"role": "user", "content": "hi", "name": "x"}], "text": "é \u2028 \x00 \"\\ " + "x" * 2_000_000,
             "margin": 0, "n": 2**62, "meta": {"k": [1, None]}, "rejected": ["a", None]},
            {"prompt": None, "text": None, "margin": 0.30000000000000004, "n": None, "meta": None, "rejected": []}]
    writer = WRITERS["parquet"](tmp_path / "x.parquet", columns)
    writer.write([dict(r) for r in rows])
    writer.close()
    got = pq.read_table(tmp_path / "x.parquet").to_pylist()
    assert got[0] == {**rows[0], "prompt": [{"role": "user", "content": "hi"}], "margin": 0.0, "meta": '{"k": [1, null]}'}
    assert got[1] == rows[1]


def test_writing_parquet_does_not_import_pandas(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        import django
        django.setup()
        from dataio.exports.writers import WRITERS
        writer = WRITERS["parquet"]({str(tmp_path / "x.parquet")!r}, [("prompt", "str", ""), ("turns", "turns", "")])
        writer.write([{{"prompt": "p", "turns": [{{"role": "user", "content": "c"}}]}}])
        writer.close()
        print("pandas" in sys.modules)
    """)
    env = {"DJANGO_SETTINGS_MODULE": "preflab.settings", "PATH": "/usr/bin:/bin", "DEBUG": "1"}
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
