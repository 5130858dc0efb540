"""Parquet exports at scale (issue #19 point 5): one row group per export chunk,
streamed, reading back the rows JSONL holds, no pandas in the exporting process
(it alone is a third of the 150 MB budget), and Arrow on the C library's allocator
(mimalloc, Arrow's default, held ~20 MB more at the peak)."""

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


def test_parquet_batches_keep_the_schema_nulls_and_any_text_of_each_row(tmp_path):
    """Every column kind, null and empty in turn, text beyond the BMP and line
    separators, over three row groups of different sizes: the file's schema is the
    columns' schema, nullable, without pandas metadata, and each row reads back."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dataio.exports.writers import WRITERS, _arrow_type

    columns = [("prompt", "turns", ""), ("text", "str", ""), ("margin", "float", ""), ("n", "int", ""),
               ("meta", "json", ""), ("rejected", "strs", ""), ("ranked", "ranked", "")]
    odd = "🙂 ﬁ é\u2028\u2029\r\n\t\x00 \"\\ 中文 \U0010fffd"
    full = {"prompt": [{"role": "user", "content": odd}, {"role": "assistant", "content": ""}], "text": odd, "margin": -1.5,
            "n": -(2**63), "meta": {"é": [odd, None, 1.5, True]}, "rejected": [odd, "", None],
            "ranked": [{"id": "r1", "text": odd, "source": None, "rank": 1}, {"id": "r2", "text": "", "source": "m", "rank": None}]}
    empty = {"prompt": [], "text": "", "margin": 0.0, "n": 0, "meta": {}, "rejected": [], "ranked": []}
    null = dict.fromkeys(full)
    batches = [[full], [null, empty, full], [empty, null]]
    writer = WRITERS["parquet"](tmp_path / "x.parquet", columns)
    for batch in batches:
        writer.write([json.loads(json.dumps(row)) for row in batch])  # the writer encodes json cells in place
    writer.close()

    schema = pq.read_schema(tmp_path / "x.parquet")
    assert schema.equals(pa.schema([(name, _arrow_type(kind)) for name, kind, _ in columns]), check_metadata=False)
    assert all(field.nullable for field in schema)
    assert b"pandas" not in (schema.metadata or {})
    meta = pq.ParquetFile(tmp_path / "x.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [1, 3, 2]
    want = [{**row, "meta": None if row["meta"] is None else json.dumps(row["meta"], ensure_ascii=False)}
            for batch in batches for row in batch]
    assert pq.read_table(tmp_path / "x.parquet").to_pylist() == want


def _run_python(script: str, cwd: Path, **env: str) -> str:
    env = {"DJANGO_SETTINGS_MODULE": "preflab.settings", "PATH": "/usr/bin:/bin", "DEBUG": "1", **env}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_arrow_allocates_with_the_c_library_unless_the_environment_says_otherwise(tmp_path):
    script = f"""
        import django
        django.setup()
        import pyarrow as pa
        from dataio.exports.writers import WRITERS
        writer = WRITERS["parquet"]({str(tmp_path / "x.parquet")!r}, [("prompt", "str", "")])
        writer.write([{{"prompt": "p"}}])
        writer.close()
        print(pa.default_memory_pool().backend_name)
    """
    assert _run_python(script, REPO) == "system"
    assert _run_python(script, REPO, ARROW_DEFAULT_MEMORY_POOL="mimalloc") == "mimalloc"


def test_writing_parquet_does_not_import_pandas(tmp_path):
    script = f"""
        import sys
        import django
        django.setup()
        from dataio.exports.writers import WRITERS
        writer = WRITERS["parquet"]({str(tmp_path / "x.parquet")!r}, [("prompt", "str", ""), ("turns", "turns", "")])
        writer.write([{{"prompt": "p", "turns": [{{"role": "user", "content": "c"}}]}}])
        writer.close()
        print("pandas" in sys.modules)
    """
    assert _run_python(script, REPO) == "False"
