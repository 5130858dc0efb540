"""Database rules: one label per (comparison, annotator), canonical pairs, strength
sign, and rubric-version immutability."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from annotate.models import Comparison, Judgment, Prompt, Response
from rubrics import services as rubric_services
from rubrics.models import Criterion, RubricVersion
from rubrics.schema import CriterionError

from tests.helpers import db_snapshot

pytestmark = pytest.mark.django_db

LIKERT = {"key": "helpfulness", "name": "Helpfulness", "scale": "likert", "min": 0, "max": 4,
          "anchors": {"0": "useless", "4": "perfect"}}
BINARY = {"key": "no_pii", "name": "No personal data", "scale": "binary", "kind": "hard_rule"}


@pytest.fixture
def comparison(project):
    prompt = Prompt.objects.create(project=project, external_id="p", conversation=[{"role": "user", "content": "q"}])
    r1 = Response.objects.create(prompt=prompt, external_id="1", text="a")
    r2 = Response.objects.create(prompt=prompt, external_id="2", text="b")
    return Comparison.objects.create(project=project, prompt=prompt, response_a=r1, response_b=r2)


def test_second_judgment_by_same_annotator_on_same_comparison_is_refused(comparison, annotator):
    Judgment.objects.create(comparison=comparison, annotator=annotator, choice="A", strength=-2)
    with pytest.raises(IntegrityError), transaction.atomic():
        Judgment.objects.create(comparison=comparison, annotator=annotator, choice="B", strength=1)
    assert list(Judgment.objects.values_list("choice", flat=True)) == ["A"]


def test_other_annotator_may_label_the_same_comparison(comparison, annotator, owner):
    Judgment.objects.create(comparison=comparison, annotator=annotator, choice="A")
    Judgment.objects.create(comparison=comparison, annotator=owner, choice="tie", strength=0)
    assert comparison.judgments.count() == 2


def test_comparison_must_be_in_canonical_order(comparison):
    with pytest.raises(IntegrityError), transaction.atomic():
        Comparison.objects.create(
            project=comparison.project, prompt=comparison.prompt,
            response_a=comparison.response_b, response_b=comparison.response_a,
        )


@pytest.mark.parametrize("choice,strength", [("A", 2), ("B", -1), ("tie", 1), ("both_bad", 0)])
def test_strength_sign_must_match_choice(comparison, annotator, choice, strength):
    with pytest.raises(IntegrityError), transaction.atomic():
        Judgment.objects.create(comparison=comparison, annotator=annotator, choice=choice, strength=strength)


def test_criterion_settings_are_validated_by_scale():
    with pytest.raises(CriterionError) as err:
        rubric_services.rubric_create(name="R", slug="r", criteria=[{**LIKERT, "min": 4, "max": 0}])
    assert "max" in str(err.value)
    with pytest.raises(CriterionError) as err:
        rubric_services.rubric_create(name="R", slug="r2", criteria=[{**LIKERT, "anchors": {"9": "x"}}])
    assert "outside 0..4" in str(err.value)
    with pytest.raises(CriterionError) as err:
        rubric_services.rubric_create(name="R", slug="r3", criteria=[{"key": "s", "name": "S", "scale": "spans"}])
    assert "error_types" in err.value.errors
    with pytest.raises(CriterionError):
        rubric_services.rubric_create(name="R", slug="r4", criteria=[{**LIKERT, "bogus": 1}])


def test_published_version_cannot_change_and_database_is_unchanged():
    version = rubric_services.rubric_create(name="R", slug="r", criteria=[LIKERT])
    rubric_services.rubric_version_publish(version=version)
    before = db_snapshot()
    crit = version.criteria.get()
    with pytest.raises(rubric_services.RubricVersionLocked):
        rubric_services.criterion_add(version=version, data=BINARY)
    with pytest.raises(rubric_services.RubricVersionLocked):
        rubric_services.criterion_update(criterion=crit, data={"name": "Changed"})
    with pytest.raises(rubric_services.RubricVersionLocked):
        rubric_services.criterion_delete(criterion=crit)
    with pytest.raises(rubric_services.RubricVersionLocked):
        rubric_services.rubric_version_update(version=version, guidelines="new")
    assert db_snapshot() == before


def test_draft_referenced_by_a_label_is_frozen(comparison, annotator):
    version = rubric_services.rubric_create(name="R", slug="r", criteria=[LIKERT])
    Judgment.objects.create(comparison=comparison, annotator=annotator, choice="A", rubric_version=version)
    before = db_snapshot()
    with pytest.raises(rubric_services.RubricVersionLocked, match="referenced by labels"):
        rubric_services.criterion_update(criterion=version.criteria.get(), data={"max": 6})
    assert db_snapshot() == before


def test_editing_makes_a_new_draft_and_keeps_the_old_version(comparison, annotator):
    v1 = rubric_services.rubric_create(name="R", slug="r", criteria=[LIKERT, BINARY])
    rubric_services.rubric_version_publish(version=v1)
    Judgment.objects.create(comparison=comparison, annotator=annotator, choice="A", rubric_version=v1)
    v2 = rubric_services.rubric_version_new_draft(version=v1, changelog="Stricter anchors")
    rubric_services.criterion_update(criterion=v2.criteria.get(key="helpfulness"), data={"anchors": {"0": "harmful"}})
    assert (v2.number, v2.status, v2.parent_id) == (2, RubricVersion.Status.DRAFT, v1.pk)
    assert v1.criteria.get(key="helpfulness").config["anchors"] == {"0": "useless", "4": "perfect"}
    assert v2.criteria.get(key="helpfulness").config["anchors"] == {"0": "harmful"}
    assert list(v2.criteria.values_list("key", flat=True)) == ["helpfulness", "no_pii"]
    assert Judgment.objects.get().rubric_version == v1


def test_changing_scale_drops_old_scale_settings():
    version = rubric_services.rubric_create(name="R", slug="r", criteria=[LIKERT])
    crit = rubric_services.criterion_update(criterion=version.criteria.get(), data={"scale": "pairwise"})
    assert crit.scale == "pairwise" and crit.config == {}
    assert Criterion.objects.get(pk=crit.pk).as_spec()["scale"] == "pairwise"


def test_helpsteer2_template_has_five_likert_criteria():
    version = rubric_services.rubric_create_from_template(template="helpsteer2")
    keys = list(version.criteria.values_list("key", flat=True))
    assert keys == ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]
    for c in version.criteria.all():
        assert (c.scale, c.config["min"], c.config["max"]) == ("likert", 0, 4)
        assert set(c.config["anchors"]) == {"0", "1", "2", "3", "4"}
