"""Rubrics are a shared library, but only their owner, the researchers of a project
that pins them, and staff change them; and a rubric's page tells a viewer about
their own projects only (issue 18, point 6)."""

from __future__ import annotations

import pytest

from annotate.models import Comparison, Judgment, Role
from annotate.services import membership_set
from rubrics.models import Rubric, RubricVersion

from tests.conftest import make_user
from tests.factories import two_project_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(tmp_path):
    w = two_project_world(tmp_path)
    c = Comparison.objects.filter(project=w["here"]).first()
    Judgment.objects.create(comparison=c, annotator=w["users"]["annotator_here"], choice="A", strength=-2,
                            rubric_version=w["published"])
    return w


def _as(client, user):
    client.force_login(user)
    return client


def test_a_researcher_elsewhere_cannot_discard_or_publish_anothers_draft(client, world):
    draft, rob = world["draft"], world["users"]["researcher_elsewhere"]
    base = f"/rubrics/{draft.rubric.slug}/v/{draft.number}"
    missing = _as(client, rob).post("/rubrics/no-such-rubric/v/1/discard/")
    for path in (f"{base}/discard/", f"{base}/publish/", f"{base}/settings/", f"{base}/criteria/helpful/delete/"):
        resp = client.post(path, {"guidelines": "mine now"})
        assert (resp.status_code, resp.content) == (missing.status_code, missing.content) == (404, missing.content)
    api = client.post(f"/api/v1/rubrics/{draft.rubric.slug}/versions/{draft.number}/publish/")
    assert api.status_code == 404 and api.json() == {"detail": "Not found."}
    draft.refresh_from_db()
    assert draft.status == RubricVersion.Status.DRAFT and draft.guidelines != "mine now"
    assert draft.criteria.filter(key="helpful").exists()


def test_the_library_stays_shared(client, world):
    rob, rubric = world["users"]["researcher_elsewhere"], world["rubric"]
    _as(client, rob)
    assert client.get(f"/rubrics/{rubric.slug}/").status_code == 200
    assert client.get(f"/rubrics/{rubric.slug}/v/1/export.json").status_code == 200
    resp = client.post(f"/rubrics/{rubric.slug}/v/1/clone/", {"name": "Rob's", "slug": "robs"})
    assert resp.status_code == 302
    clone = Rubric.objects.get(slug="robs")
    assert clone.created_by == rob
    # the copy is his to change
    assert client.post(f"/rubrics/robs/v/1/settings/", {"guidelines": "mine"}).status_code == 302
    assert clone.versions.get(number=1).guidelines == "mine"


def test_a_researcher_of_a_pinning_project_may_change_it_and_the_owner_may(client, world):
    colleague = make_user("carl-colleague")
    membership_set(project=world["here"], user=colleague, role=Role.RESEARCHER)
    draft = world["draft"]
    resp = _as(client, colleague).post(f"/rubrics/{draft.rubric.slug}/v/{draft.number}/discard/")
    assert resp.status_code == 302
    assert not RubricVersion.objects.filter(pk=draft.pk).exists()


def test_pinned_on_and_label_counts_show_only_the_viewers_projects(client, world):
    rubric = world["rubric"]
    rob_page = _as(client, world["users"]["researcher_elsewhere"]).get(f"/rubrics/{rubric.slug}/").content.decode()
    assert "Here" not in rob_page and "/p/here/" not in rob_page
    assert "1 judgment" not in rob_page
    assert "Edit draft" not in rob_page and "clone it to make your own" in rob_page
    for who in ("researcher_here", "staff"):
        page = _as(client, world["users"][who]).get(f"/rubrics/{rubric.slug}/").content.decode()
        assert '<a href="/p/here/">Here</a>' in page, who
        assert "1 judgment</td>" in page, who
        assert "Edit draft" in page, who


def test_an_import_cannot_add_a_version_to_a_rubric_not_yours(client, world):
    from rubrics import portable

    rob, rubric = world["users"]["researcher_elsewhere"], world["rubric"]
    doc = portable.build_document(world["published"])
    before = rubric.versions.count()
    _as(client, rob)
    resp = client.post("/api/v1/rubrics/import/", {"document": doc}, content_type="application/json")
    assert resp.status_code == 400
    assert resp.json() == {"slug": ["the rubric 'shared' exists and is not yours to change; import it under another slug"]}
    assert rubric.versions.count() == before
    ok = client.post("/api/v1/rubrics/import/", {"document": doc, "slug": "robs-shared"}, content_type="application/json")
    assert ok.status_code == 201 and Rubric.objects.get(slug="robs-shared").created_by == rob
