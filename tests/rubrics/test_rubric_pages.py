"""Rubric pages and REST endpoints: access, the editor with and without htmx,
inline errors, export/import, diff, pinning, and the derived-labels report."""

from __future__ import annotations

import json

import pytest
import yaml
from django.urls import reverse

from annotate.models import Comparison, Judgment, Rating, Role
from annotate.services import membership_set, project_pin_rubric
from rubrics import services as rubric_services
from rubrics.models import Criterion, Rubric, RubricVersion

from tests.factories import fill
from tests.helpers import db_snapshot

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def researcher(project, owner):
    membership_set(project=project, user=owner, role=Role.RESEARCHER)
    return owner


@pytest.fixture
def rclient(client, researcher):
    client.force_login(researcher)
    return client


@pytest.fixture
def draft(researcher):
    # the researcher's own rubric: only its owner (or a pinning project's researchers, or staff) may change it
    return rubric_services.rubric_create_from_template(template="helpsteer2", slug="hs", name="HS", created_by=researcher)


def _url(name, version, *extra):
    return reverse(name, args=[version.rubric.slug, version.number, *extra])


def test_annotators_and_outsiders_cannot_reach_rubrics(client, annotator, outsider, draft):
    for user in (annotator, outsider):
        client.force_login(user)
        for url in (reverse("rubric-list"), reverse("rubric-detail", args=["hs"]), _url("rubric-edit", draft),
                    _url("rubric-export", draft, "json"), reverse("api-rubric-list")):
            assert client.get(url).status_code == 404, url
        before = db_snapshot()
        r = client.post(_url("rubric-criterion-delete", draft, "helpfulness"))
        assert r.status_code == 404 and db_snapshot() == before
    client.logout()
    assert client.get(reverse("rubric-list")).status_code == 302  # to the log-in page
    assert client.get(reverse("api-rubric-list")).status_code in (401, 403)


def test_researcher_creates_from_template_and_lands_in_the_editor(rclient):
    r = rclient.post(reverse("rubric-create"), {"name": "My UF", "slug": "my-uf", "template": "ultrafeedback"})
    version = RubricVersion.objects.get(rubric__slug="my-uf")
    assert r.status_code == 302 and r["Location"] == _url("rubric-edit", version)
    page = rclient.get(r["Location"]).content.decode()
    assert "Instruction following" in page and "Publish v1" in page
    # The preview shows the annotator's rating form with the four criteria.
    assert page.count('data-criterion="') >= 4


def test_editor_adds_a_criterion_with_htmx_and_shows_errors_inline(rclient, draft):
    bad = {"key": "Bad Key", "name": "", "scale": "likert", "min": "4", "max": "2"}
    r = rclient.post(_url("rubric-criterion-add", draft), bad, **HX)
    html = r.content.decode()
    assert r.status_code == 200 and "<html" not in html  # a partial, not a page
    # errors in words, not pydantic's regular expressions
    assert 'Key <span class="error">— a key is lowercase letters, digits and _, starting with a letter' in html
    assert 'Name <span class="error">— cannot be empty' in html
    assert draft.criteria.count() == 5
    good = {"key": "safety", "name": "Safety", "scale": "binary", "kind": "hard_rule", "polarity": "higher_better",
            "anchor_yes": "Nothing unsafe", "anchor_no": "Helps with harm", "weight": "1", "priority": "1", "margin": "0"}
    r = rclient.post(_url("rubric-criterion-add", draft), good, **HX)
    assert r.status_code == 200
    crit = draft.criteria.get(key="safety")
    assert (crit.scale, crit.kind, crit.config["anchors"]) == ("binary", "hard_rule", {"yes": "Nothing unsafe", "no": "Helps with harm"})
    assert "Safety" in r.content.decode() and crit.principle.startswith("The response must satisfy: Safety")


def test_add_form_errors_are_named_beside_the_field(rclient, draft):
    r = rclient.post(_url("rubric-criterion-add", draft),
                     {"key": "x1", "name": "X", "scale": "likert", "min": "3", "max": "1", "weight": "abc"})
    html = r.content.decode()
    assert r.status_code == 400
    assert "Weight <span class=\"error\">— enter a number</span>" in html
    assert not draft.criteria.filter(key="x1").exists()


def test_editor_edits_reorders_and_deletes_without_javascript(rclient, draft):
    crit = draft.criteria.get(key="correctness")
    r = rclient.get(_url("rubric-edit", draft) + "?edit=correctness")
    assert 'id="edit-form-correctness"' in r.content.decode()
    form = {"key": "correctness", "name": "Accuracy", "scale": "likert", "min": "0", "max": "4",
            "polarity": "higher_better", "kind": "principle", "weight": "0.8", "priority": "1", "margin": "0.5",
            "anchor_0": "Wrong", "anchor_4": "Right", "principle": crit.principle}
    r = rclient.post(_url("rubric-criterion-edit", draft, "correctness"), form)
    assert r.status_code == 302
    crit.refresh_from_db()
    assert (crit.name, crit.config["anchors"]) == ("Accuracy", {"0": "Wrong", "4": "Right"})
    assert crit.principle.startswith("The response should rate high on accuracy")
    rclient.post(_url("rubric-criterion-move", draft, "correctness"), {"direction": "up"})
    assert list(draft.criteria.values_list("key", flat=True))[:2] == ["correctness", "helpfulness"]
    rclient.post(_url("rubric-criterion-delete", draft, "verbosity"))
    assert not draft.criteria.filter(key="verbosity").exists()


def test_inline_edit_error_is_retargeted_to_its_row(rclient, draft):
    crit = draft.criteria.get(key="helpfulness")
    r = rclient.post(_url("rubric-criterion-edit", draft, "helpfulness"),
                     {"key": "helpfulness", "name": "Helpfulness", "scale": "likert", "min": "0", "max": "40"}, **HX)
    assert r["HX-Retarget"] == f"#crit-{crit.pk}"
    assert 'Max <span class="error">— at most 10<' in r.content.decode()
    crit.refresh_from_db()
    assert crit.config["max"] == 4


def test_changing_the_scale_rerenders_the_form_without_saving(rclient, draft):
    r = rclient.post(_url("rubric-criterion-edit", draft, "helpfulness"),
                     {"refresh": "1", "key": "helpfulness", "name": "Helpfulness", "scale": "severity"}, **HX)
    html = r.content.decode()
    for level in ("none", "minor", "moderate", "severe"):
        assert f'name="anchor_{level}"' in html
    assert 'name="min"' not in html
    assert draft.criteria.get(key="helpfulness").scale == "likert"


def test_published_version_edit_is_refused_and_new_draft_carries_changelog(rclient, draft):
    rclient.post(_url("rubric-publish", draft))
    draft.refresh_from_db()
    assert draft.status == "published"
    before = db_snapshot()
    r = rclient.post(_url("rubric-criterion-delete", draft, "helpfulness"), **HX)
    assert r["HX-Redirect"].endswith("?v=1") and db_snapshot() == before
    assert rclient.get(_url("rubric-edit", draft)).status_code == 302
    r = rclient.post(_url("rubric-new-draft", draft), {"changelog": "Drop verbosity"})
    v2 = RubricVersion.objects.get(rubric=draft.rubric, number=2)
    assert r["Location"] == _url("rubric-edit", v2) and v2.changelog == "Drop verbosity" and v2.parent == draft


def test_diff_page_lists_the_changes(rclient, draft):
    rubric_services.rubric_version_publish(version=draft)
    v2 = rubric_services.rubric_version_new_draft(version=draft)
    rubric_services.criterion_delete(criterion=v2.criteria.get(key="verbosity"))
    rubric_services.criterion_update(criterion=v2.criteria.get(key="coherence"), data={"weight": 0.9})
    html = rclient.get(reverse("rubric-diff", args=["hs"]) + "?from=1&to=2").content.decode()
    assert '<ul id="removed"><li data-key="verbosity">' in html
    assert 'id="added"' not in html
    assert '<table class="grid changed" data-key="coherence">' in html and "<td>weight</td><td class=\"old\">0.45</td><td class=\"new\">0.9</td>" in html


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_export_then_import_through_the_pages(rclient, draft, fmt):
    r = rclient.get(_url("rubric-export", draft, fmt))
    body = r.content
    assert r["Content-Disposition"] == f'attachment; filename="hs-v1.{fmt}"'
    doc = json.loads(body) if fmt == "json" else yaml.safe_load(body)
    assert [c["key"] for c in doc["criteria"]] == ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]
    from django.core.files.uploadedfile import SimpleUploadedFile

    r = rclient.post(reverse("rubric-import"), {"file": SimpleUploadedFile(f"x.{fmt}", body), "slug": "hs-copy"})
    copy = RubricVersion.objects.get(rubric__slug="hs-copy")
    assert r["Location"] == _url("rubric-edit", copy)
    assert rclient.get(_url("rubric-export", copy, fmt)).content.replace(b"hs-copy", b"hs") == body


def test_bad_import_file_names_the_place_and_changes_nothing(rclient, draft):
    from django.core.files.uploadedfile import SimpleUploadedFile

    before = db_snapshot()
    r = rclient.post(reverse("rubric-import"), {"file": SimpleUploadedFile("r.yaml", b"format: [\n")}, follow=True)
    assert "r.yaml: line" in r.content.decode() and "Nothing was imported" in r.content.decode()
    assert db_snapshot() == before


def test_pin_from_rubric_page_and_annotation_uses_pinned_version(rclient, draft, project, annotator, client):
    rubric_services.rubric_version_publish(version=draft)
    project.task_kinds = ["pairwise", "rating"]
    project.save()
    fill(project, prompts=1, responses=2)
    r = rclient.post(_url("rubric-pin", draft), {"project": project.slug})
    project.refresh_from_db()
    assert r.status_code == 302 and project.rubric_version == draft
    client.force_login(annotator)
    html = client.get(reverse("work", args=[project.slug, "rating"])).content.decode()
    keys = [k for k in ("helpfulness", "correctness", "coherence", "complexity", "verbosity")]
    positions = [html.index(f'data-criterion="{k}"') for k in keys]
    assert positions == sorted(positions)
    # A project the researcher does not run cannot be pinned.
    rubric_services.rubric_create(name="Other", slug="other")
    assert rclient.post(_url("rubric-pin", draft), {"project": "secret"}).status_code == 404


def test_derived_report_page(rclient, project, owner, celery_eager, django_capture_on_commit_callbacks):
    version = rubric_services.rubric_create(name="R", slug="r", aggregation="hierarchical", criteria=[
        {"key": "correct", "name": "Correct", "scale": "likert", "min": 0, "max": 4}])
    rubric_services.rubric_version_publish(version=version)
    project_pin_rubric(project=project, version=version)
    fill(project, prompts=1, responses=2)
    c = Comparison.objects.get()
    Rating.objects.create(response=c.response_a, annotator=owner, rubric_version=version, scores={"correct": 4})
    Rating.objects.create(response=c.response_b, annotator=owner, rubric_version=version, scores={"correct": 1})
    Judgment.objects.create(comparison=c, annotator=owner, choice="A", rubric_version=version)
    with django_capture_on_commit_callbacks(execute=True):
        r = rclient.post(reverse("project-derived", args=[project.slug]), {"rule": "hierarchical"})
    assert r.status_code == 302
    html = rclient.get(r["Location"]).content.decode()
    assert '<b id="derived-count">1</b>' in html and '<b id="agreement">100%</b>' in html
    assert "<li>correct: 1</li>" in html


def test_annotator_cannot_open_the_derived_report(client, annotator, project):
    client.force_login(annotator)
    resp = client.get(reverse("project-derived", args=[project.slug]))
    assert resp.status_code == 403 and "researchers may open this page" in resp.content.decode()


def test_rest_create_get_publish_and_import(rclient):
    r = rclient.post(reverse("api-rubric-list"), {"name": "API HH", "slug": "api-hh", "template": "hh"},
                     content_type="application/json")
    assert r.status_code == 201 and r.json()["status"] == "draft"
    doc = r.json()["document"]
    assert [c["key"] for c in doc["criteria"]] == ["harmless", "helpful"]
    r = rclient.post(reverse("api-rubric-publish", args=["api-hh", 1]))
    assert r.json()["status"] == "published"
    assert rclient.post(reverse("api-rubric-publish", args=["api-hh", 1])).status_code == 409
    r = rclient.post(reverse("api-rubric-import"), {"document": doc}, content_type="application/json")
    assert r.status_code == 201 and (r.json()["number"], r.json()["parent"]) == (2, None)
    bad = {**doc, "criteria": [{**doc["criteria"][0], "scale": "stars"}]}
    before = db_snapshot()
    r = rclient.post(reverse("api-rubric-import"), {"document": bad}, content_type="application/json")
    assert r.status_code == 400 and "criteria[0].scale" in r.json()
    assert db_snapshot() == before
    listing = rclient.get(reverse("api-rubric-list")).json()
    assert [(x["slug"], len(x["versions"])) for x in listing] == [("api-hh", 2)]
    assert Rubric.objects.count() == 1 and Criterion.objects.count() == 4


def test_likert_max_must_exceed_min_and_says_so(rclient, draft):
    r = rclient.post(_url("rubric-criterion-add", draft), {"key": "x2", "name": "X", "scale": "likert", "min": "3", "max": "3"})
    assert "max (3) must be greater than min (3)" in r.content.decode()
    assert not draft.criteria.filter(key="x2").exists()
