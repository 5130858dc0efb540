"""CSV exports escape spreadsheet formulas (issue #18 point 7, OWASP's CSV injection
advice): text cells starting with = + - @ tab or CR get a leading quote by default,
an option turns it off, JSONL and Parquet are unchanged, and the generic CSV
re-imports exactly because its importer takes the escape off."""

from __future__ import annotations

import csv
import io
import json
import random

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import ExportJob, Membership, Role
from dataio.exports.services import export_write
from dataio.exports.spec import ExportSpec
from dataio.imports import services as imports
from dataio.imports.parsers.flat import formula_escape, formula_unescape

from tests.conftest import make_user
from tests.dataio.exports.test_export_roundtrip import _pairwise_labels, _roundtrip
from tests.dataio.imports._helpers import write_jsonl

pytestmark = pytest.mark.django_db

HOSTILE = ["=HYPERLINK(\"http://evil\",\"x\")", "+1 555 0100", "-2+3", "@SUM(A1)", "\tlead tab", "\rlead cr",
           "'=already quoted", "''+two quotes", "'plain quote", "safe = text"]


@pytest.fixture
def hostile(project, tmp_path):
    rows = [{"id": f"q{i}", "prompt": text, "responses": [{"id": f"a{i}", "text": text}, {"id": f"b{i}", "text": "fine"}],
             "labels": [{"annotator": "alice", "a": 0, "b": 1, "choice": "A", "strength": 2, "rationale": text}]}
            for i, text in enumerate(HOSTILE)]
    job = imports.import_file(project=project, format="jsonl", path=write_jsonl(tmp_path / "in.jsonl", rows))
    assert job.status == "succeeded", job.error
    return project


def _csv_cells(path) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(path.read_text(encoding="utf-8"))) for cell in row]


def test_escape_is_a_quote_before_formula_starts_and_reversible():
    assert [formula_escape(t) for t in HOSTILE] == [
        "'=HYPERLINK(\"http://evil\",\"x\")", "'+1 555 0100", "'-2+3", "'@SUM(A1)", "'\tlead tab", "'\rlead cr",
        "''=already quoted", "'''+two quotes", "'plain quote", "safe = text"]
    rng = random.Random(3)
    for _ in range(2000):
        text = "".join(rng.choice("'=+-@\t\rax ") for _ in range(rng.randint(0, 5)))
        assert formula_unescape(formula_escape(text)) == text, repr(text)
        assert not formula_escape(text).lstrip("'").startswith(("=", "+", "-", "@", "\t", "\r")) or \
            formula_escape(text).startswith("'"), repr(text)


@pytest.mark.parametrize("fmt", ["raw", "trl", "generic"])
def test_csv_exports_escape_formula_cells_by_default(hostile, tmp_path, fmt):
    res = export_write(project=hostile, spec=ExportSpec(format=fmt, file_format="csv"), out=tmp_path / fmt)
    cells = _csv_cells(res.data_path)
    assert "'=HYPERLINK(\"http://evil\",\"x\")" in cells and "'@SUM(A1)" in cells and "'-2+3" in cells
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))
                and not c.lstrip("-").isdigit()], "a formula cell was written as it is"
    assert "| formulas | text cells starting with" in res.card_path.read_text()


def test_numbers_stay_numbers(hostile, tmp_path):
    res = export_write(project=hostile, spec=ExportSpec(format="raw", file_format="csv"), out=tmp_path / "raw")
    rows = list(csv.DictReader(io.StringIO(res.data_path.read_text(encoding="utf-8"))))
    assert {row["strength"] for row in rows} == {"-2"}  # an int column, not text: no quote


def test_escaping_can_be_turned_off_and_jsonl_and_parquet_never_escape(hostile, tmp_path):
    import pyarrow.parquet as pq

    off = export_write(project=hostile, spec=ExportSpec(format="trl", file_format="csv", escape_formulas=False),
                       out=tmp_path / "off")
    assert "=HYPERLINK(\"http://evil\",\"x\")" in _csv_cells(off.data_path)
    assert "written as they are" in off.card_path.read_text()
    jsonl = export_write(project=hostile, spec=ExportSpec(format="trl"), out=tmp_path / "jsonl")
    assert {json.loads(line)["prompt"] for line in jsonl.data_path.read_text().splitlines()} == set(HOSTILE)
    parquet = export_write(project=hostile, spec=ExportSpec(format="trl", file_format="parquet"), out=tmp_path / "pq")
    assert set(pq.read_table(parquet.data_path).column("prompt").to_pylist()) == set(HOSTILE)
    with pytest.raises(ValueError, match="generic CSV always escapes"):
        ExportSpec(format="generic", file_format="csv", escape_formulas=False)


def test_the_escaped_generic_csv_reimports_exactly(hostile, tmp_path):
    target, original, copied, result = _roundtrip(hostile, tmp_path, "csv", "csv")
    assert "'=HYPERLINK(\"http://evil\",\"x\")" in _csv_cells(result.data_path)
    assert _pairwise_labels(target, copied) == _pairwise_labels(hostile, original)
    assert sorted(target.prompts.values_list("conversation__0__content", flat=True)) == sorted(HOSTILE)
    texts = set(target.prompts.values_list("responses__text", flat=True))
    assert set(HOSTILE) <= texts


def test_the_option_on_the_command_the_api_and_the_form(hostile, tmp_path):
    call_command("export_data", hostile.slug, "--format", "raw", "--file-format", "csv", "--out", str(tmp_path / "cli"),
                 "--no-escape-formulas", stdout=io.StringIO())
    assert "=HYPERLINK(\"http://evil\",\"x\")" in _csv_cells(tmp_path / "cli" / "raw.csv")
    researcher = make_user("res")
    Membership.objects.create(project=hostile, user=researcher, role=Role.RESEARCHER)
    api = APIClient()
    api.force_authenticate(researcher)
    made = api.post(f"/api/v1/projects/{hostile.slug}/exports/", {"format": "raw", "file_format": "csv",
                                                                   "escape_formulas": False}, format="json")
    assert made.status_code == 202, made.content
    assert ExportJob.objects.get(pk=made.json()["id"]).options["escape_formulas"] is False
    default = api.post(f"/api/v1/projects/{hostile.slug}/exports/", {"format": "raw", "file_format": "csv"}, format="json")
    assert ExportJob.objects.get(pk=default.json()["id"]).options["escape_formulas"] is True
    web = Client()
    web.force_login(researcher)
    page = web.get(reverse("exports", args=[hostile.slug])).content.decode()
    assert 'name="keep_formulas"' in page and 'type="checkbox"' in page
    web.post(reverse("exports", args=[hostile.slug]), {"format": "raw", "file_format": "csv", "aggregate": "all",
                                                       "keep_formulas": "on"})
    assert ExportJob.objects.order_by("-pk").first().options["escape_formulas"] is False
