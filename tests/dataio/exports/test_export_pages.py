"""The export pages (issue #17): a finished export's card rendered as markdown with
its downloads, the criterion as a drop-down of the pinned rubric's pairwise
criteria, and job lists in the right plural."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.models import ExportJob, ImportJob
from dataio.exports import services as exports
from dataio.exports.spec import ExportSpec

from tests.dataio.exports.test_exports import lab  # noqa: F401  (the fixture)

pytestmark = pytest.mark.django_db


def _run(project, **spec) -> ExportJob:
    job = exports.export_job_create(project=project, spec=ExportSpec(**spec))
    return exports.export_job_run(job_id=job.pk)


def test_the_card_page_renders_the_card_sanitised_with_both_downloads(lab, client, owner):
    project = lab["project"]
    project.name = "Lab <script>alert(1)</script>"
    project.save(update_fields=["name"])
    job = _run(project, format="trl", aggregate="majority")
    assert job.status == ExportJob.Status.SUCCEEDED
    client.force_login(owner)
    listing = client.get(reverse("export-jobs", args=[project.slug])).content.decode()
    detail_url = reverse("export-detail", args=[project.slug, job.pk])
    assert f'href="{detail_url}"' in listing and "2 rows" in listing
    page = client.get(detail_url).content.decode()
    card = page[page.index('<article class="card md dataset-card">'):]
    # Rendered: the markdown tables are HTML tables, headings are headings.
    assert "<td>rows written</td>" in card and "<td>2</td>" in card
    assert "<h2>Counts</h2>" in card and "| rows written |" not in card
    # The YAML front matter is Hub metadata, shown as it is, not read as markdown.
    assert "<hr" not in card and "pretty_name" not in card
    metadata = page[page.index('<details class="card-metadata">'):page.index("</details>")]
    assert "<pre>pretty_name: &quot;Lab &lt;script&gt;" in metadata and "- human-preference" in metadata
    # The project name written into the card stays text.
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in card
    assert f'href="{reverse("export-download", args=[project.slug, job.pk])}"' in page
    assert f'href="{reverse("export-card", args=[project.slug, job.pk])}" download' in page


def test_the_card_page_of_an_unfinished_export_says_so_and_offers_no_download(lab, client, owner):
    project = lab["project"]
    job = exports.export_job_create(project=project, spec=ExportSpec(format="trl"))
    client.force_login(owner)
    page = client.get(reverse("export-detail", args=[project.slug, job.pk])).content.decode()
    assert "still running" in page and reverse("export-download", args=[project.slug, job.pk]) not in page


def test_the_criterion_is_a_drop_down_of_the_pinned_rubrics_pairwise_criteria(lab, client, owner):
    client.force_login(owner)
    slug = lab["project"].slug
    form = client.get(reverse("exports", args=[slug])).content.decode()
    select = form[form.index('<select name="criterion"'):]
    select = select[:select.index("</select>")]
    assert '<option value="" selected>overall preference (no criterion)</option>' in select
    assert '<option value="harmless">Harmless (harmless)</option>' in select
    assert 'value="helpful"' not in select  # a Likert criterion has no A/B choice


def test_an_unknown_criterion_is_refused_on_its_field_and_queues_nothing(lab, client, owner):
    client.force_login(owner)
    slug = lab["project"].slug
    resp = client.post(reverse("exports", args=[slug]),
                       {"format": "trl", "file_format": "jsonl", "aggregate": "all", "criterion": "helpful"})
    assert resp.status_code == 200
    errors = resp.context["form"].errors
    assert list(errors) == ["criterion"] and "helpful is not one of the available choices" in errors["criterion"][0]
    assert not ExportJob.objects.exists()


def test_a_pinned_criterion_exports_its_choices_from_the_form(lab, client, owner, celery_eager,
                                                               django_capture_on_commit_callbacks):
    client.force_login(owner)
    slug = lab["project"].slug
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post(reverse("exports", args=[slug]),
                           {"format": "trl", "file_format": "jsonl", "aggregate": "all", "criterion": "harmless"})
    assert resp.status_code == 302
    job = ExportJob.objects.get()
    assert job.options["criterion"] == "harmless" and job.rows_written == 1
    listing = client.get(reverse("export-jobs", args=[slug])).content.decode()
    assert "1 row ·" in listing and "1 rows" not in listing


def test_the_import_list_uses_singular_and_plural(project, client, owner):
    ImportJob.objects.create(
        project=project, format="jsonl", original_name="one.jsonl", status=ImportJob.Status.SUCCEEDED,
        counts={"prompts_created": 1, "responses_created": 2, "comparisons_created": 1, "judgments_created": 1,
                "ratings_created": 0, "rankings_created": 0},
    )
    client.force_login(owner)
    listing = client.get(reverse("import-jobs", args=[project.slug])).content.decode()
    assert "1 prompt, 2 responses, 1 comparison, 1 new judgment" in listing
