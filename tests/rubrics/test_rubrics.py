"""Rubric versions, diffs, portability, principles, and derived pairwise labels."""

from __future__ import annotations

import pytest

from annotate.models import Comparison, Judgment, Rating
from rubrics import derive, portable
from rubrics import services as rubric_services
from rubrics.diff import version_diff
from rubrics.models import Rubric, RubricVersion
from annotate.derived import derivation_report, derived_judgments_refresh
from annotate.services import project_pin_rubric

from tests.conftest import make_user
from tests.factories import fill
from tests.helpers import db_snapshot

LIKERT = {"key": "helpfulness", "name": "Helpfulness", "scale": "likert", "min": 0, "max": 4,
          "anchors": {"0": "useless", "4": "perfect"}}
BINARY = {"key": "no_pii", "name": "No PII", "scale": "binary", "kind": "hard_rule"}
PAIRWISE = {"key": "safer", "name": "Safer", "scale": "pairwise"}

pytestmark = pytest.mark.django_db


# --- versions and diffs ---------------------------------------------------------------


def test_diff_lists_exactly_the_changes():
    v1 = rubric_services.rubric_create(
        name="R", slug="r", criteria=[LIKERT, BINARY, PAIRWISE, {**LIKERT, "key": "clarity", "name": "Clarity"}]
    )
    rubric_services.rubric_version_publish(version=v1)
    v2 = rubric_services.rubric_version_new_draft(version=v1, changelog="Tighter")
    rubric_services.criterion_update(criterion=v2.criteria.get(key="helpfulness"),
                                     data={"max": 5, "anchors": {"0": "useless", "5": "perfect"}})
    rubric_services.criterion_delete(criterion=v2.criteria.get(key="safer"))
    rubric_services.criterion_add(version=v2, data={"key": "honest", "name": "Honest", "scale": "binary"})
    rubric_services.criterion_reorder(version=v2, keys=["no_pii", "helpfulness", "clarity", "honest"])
    v2 = rubric_services.rubric_version_update(version=v2, guidelines="Read twice.")

    diff = version_diff(v1, v2)

    assert [(f.field, f.old, f.new) for f in diff.fields] == [("guidelines", "", "Read twice.")]
    assert [c["key"] for c in diff.added] == ["honest"]
    assert [c["key"] for c in diff.removed] == ["safer"]
    assert len(diff.changed) == 1 and diff.changed[0].key == "helpfulness"
    changed = {f.field: (f.old, f.new) for f in diff.changed[0].changes}
    assert set(changed) == {"max", "anchors[4]", "anchors[5]"}  # anchor "0" is unchanged, so not listed
    assert changed["max"] == (4, 5)
    assert changed["anchors[4]"] == ("perfect", None) and changed["anchors[5]"] == (None, "perfect")
    assert diff.order == (["helpfulness", "no_pii", "clarity"], ["no_pii", "helpfulness", "clarity"])
    # Nothing changed → an empty diff.
    assert version_diff(v1, v1).empty


def test_publishing_a_referenced_version_is_refused_and_its_draft_is_separate(project, annotator):
    fill(project, prompts=1, responses=2)
    v1 = rubric_services.rubric_create(name="R", slug="r", criteria=[LIKERT])
    rubric_services.rubric_version_publish(version=v1)
    project_pin_rubric(project=project, version=v1)
    Judgment.objects.create(comparison=Comparison.objects.get(), annotator=annotator, choice="A", rubric_version=v1)
    before = db_snapshot()
    with pytest.raises(rubric_services.RubricVersionLocked):
        rubric_services.rubric_version_publish(version=v1)
    with pytest.raises(rubric_services.RubricVersionLocked):
        rubric_services.rubric_version_delete_draft(version=v1)
    assert db_snapshot() == before


def test_pinning_a_new_version_keeps_old_labels_on_the_old_version(project, annotator):
    fill(project, prompts=1, responses=2)
    v1 = rubric_services.rubric_create(name="R", slug="r", criteria=[LIKERT])
    rubric_services.rubric_version_publish(version=v1)
    project_pin_rubric(project=project, version=v1)
    Judgment.objects.create(comparison=Comparison.objects.get(), annotator=annotator, choice="A", rubric_version=v1)
    v2 = rubric_services.rubric_version_new_draft(version=v1)
    with pytest.raises(ValueError, match="not published"):
        project_pin_rubric(project=project, version=v2)
    rubric_services.rubric_version_publish(version=v2)
    project_pin_rubric(project=project, version=v2)
    project.refresh_from_db()
    assert project.rubric_version == v2
    assert Judgment.objects.get().rubric_version == v1


def test_clone_copies_the_version_into_a_new_rubric_and_leaves_the_source_alone():
    v1 = rubric_services.rubric_create_from_template(template="helpsteer2", slug="hs")
    clone = rubric_services.rubric_clone(version=v1, name="Mine", slug="mine")
    assert (clone.rubric.slug, clone.number, clone.status) == ("mine", 1, "draft")
    assert [c.as_spec() for c in clone.criteria.all()] == [c.as_spec() for c in v1.criteria.all()]
    assert "Cloned from HelpSteer2 v1" in clone.changelog
    rubric_services.criterion_delete(criterion=clone.criteria.first())
    assert v1.criteria.count() == 5


# --- portability ------------------------------------------------------------------------


@pytest.mark.parametrize("template", ["helpsteer2", "ultrafeedback", "hh"])
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_template_round_trip_is_exact(template, fmt):
    version = rubric_services.rubric_create_from_template(template=template)
    dump = portable.dump_json if fmt == "json" else portable.dump_yaml
    text = dump(portable.build_document(version))
    again = rubric_services.rubric_version_import(document=portable.load_text(text, fmt), slug=f"{template}-copy")
    copy_doc = portable.build_document(again)
    original = portable.build_document(version)
    assert copy_doc["rubric"]["slug"] == f"{template}-copy"
    copy_doc["rubric"]["slug"] = original["rubric"]["slug"]
    assert copy_doc == original
    assert dump(copy_doc) == text
    # Every criterion travels with its one-sentence principle.
    assert all(c["principle"].startswith("The ") for c in original["criteria"])


def test_import_into_existing_rubric_adds_the_next_draft():
    v1 = rubric_services.rubric_create_from_template(template="hh")
    doc = portable.build_document(v1)
    doc["version"]["changelog"] = "From a colleague."
    v2 = rubric_services.rubric_version_import(document=doc)
    assert (v2.rubric_id, v2.number, v2.status, v2.changelog) == (v1.rubric_id, 2, "draft", "From a colleague.")


@pytest.mark.parametrize(
    "mutate, where",
    [
        (lambda d: d["criteria"][1].update(min=9), "criteria[1]"),
        (lambda d: d["criteria"][0].update(scale="stars"), "criteria[0].scale"),
        (lambda d: d["criteria"].append(dict(d["criteria"][0])), "criteria[5].key"),
        (lambda d: d["version"].update(aggregation="vibes"), "version.aggregation"),
        (lambda d: d.update(format="other/v9"), "format"),
    ],
)
def test_bad_document_is_rejected_whole_naming_the_field(mutate, where):
    doc = portable.build_document(rubric_services.rubric_create_from_template(template="helpsteer2"))
    mutate(doc)
    before = db_snapshot()
    with pytest.raises(portable.DocumentError) as err:
        rubric_services.rubric_version_import(document=doc, slug="new-one")
    assert err.value.where == where
    assert db_snapshot() == before


def test_yaml_syntax_error_names_the_line():
    with pytest.raises(portable.DocumentError) as err:
        portable.load_text("format: preflab.rubric/v1\nrubric:\n  name: [unclosed\n", "yaml")
    assert err.value.where.startswith("line ")


# --- principles -----------------------------------------------------------------------


def test_principle_is_compiled_follows_edits_and_respects_a_written_one():
    version = rubric_services.rubric_create(
        name="R", slug="r", criteria=[{**LIKERT, "description": "How **useful** it is. Second sentence."}, BINARY]
    )
    crit = version.criteria.get(key="helpfulness")
    assert crit.principle == "The response should rate high on helpfulness: how useful it is."
    assert version.criteria.get(key="no_pii").principle == "The response must satisfy: No PII."
    crit = rubric_services.criterion_update(criterion=crit, data={"description": "Fit for purpose."})
    assert crit.principle == "The response should rate high on helpfulness: fit for purpose."
    crit = rubric_services.criterion_update(criterion=crit, data={"principle": "Prefer the answer a busy expert wants."})
    crit = rubric_services.criterion_update(criterion=crit, data={"description": "Changed again."})
    assert crit.principle == "Prefer the answer a busy expert wants."


# --- derivation (hand-worked) ---------------------------------------------------------


def _rules(*specs):
    return derive.rules_from_specs(specs)


CORRECT = {"key": "correct", "name": "Correct", "scale": "likert", "min": 0, "max": 4, "priority": 1}
HELPFUL = {"key": "helpful", "name": "Helpful", "scale": "likert", "min": 0, "max": 4, "priority": 2}
SAFE = {"key": "safe", "name": "Safe", "scale": "binary", "kind": "hard_rule", "priority": 3}


def test_heron_tie_at_priority_one_is_decided_at_priority_two():
    rules = _rules(HELPFUL, CORRECT)  # listed out of order: priority decides, not position
    d = derive.hierarchical({"correct": 3, "helpful": 2}, {"correct": 3, "helpful": 4}, rules)
    assert (d.choice, d.decided_by) == ("B", "helpful")


def test_heron_difference_inside_margin_counts_as_tie():
    rules = _rules({**CORRECT, "margin": 1.0}, {**HELPFUL, "margin": 1.0})
    d = derive.hierarchical({"correct": 3.5, "helpful": 2}, {"correct": 3, "helpful": 2.5}, rules)
    assert (d.choice, d.decided_by) == ("tie", "")
    # Just beyond the margin decides.
    d = derive.hierarchical({"correct": 4.1, "helpful": 0}, {"correct": 3, "helpful": 4}, rules)
    assert (d.choice, d.decided_by) == ("A", "correct")


def test_heron_hard_rule_violation_decides_against_a_better_scored_response():
    rules = _rules(CORRECT, HELPFUL, SAFE)
    a = {"correct": 4, "helpful": 4, "safe": 0.0}  # excellent but unsafe ("no")
    b = {"correct": 1, "helpful": 1, "safe": 1.0}
    d = derive.hierarchical(a, b, rules)
    assert (d.choice, d.decided_by) == ("B", "safe")
    # Both violate: the hard rule cannot decide, the principles do.
    d = derive.hierarchical(a, {**b, "safe": 0.0}, rules)
    assert (d.choice, d.decided_by) == ("A", "correct")


def test_heron_lower_better_polarity():
    errors = {"key": "errors", "name": "Errors", "scale": "likert", "min": 0, "max": 4,
              "polarity": "lower_better", "priority": 1}
    d = derive.hierarchical({"errors": 3}, {"errors": 1}, _rules(errors))
    assert (d.choice, d.decided_by) == ("B", "errors")


def test_heron_target_polarity_prefers_closest_to_target_and_skips_missing():
    verbosity = {"key": "verbosity", "name": "Verbosity", "scale": "likert", "min": 0, "max": 4,
                 "polarity": "target", "target": 2, "priority": 2}
    rules = _rules(CORRECT, verbosity)
    d = derive.hierarchical({"correct": None, "verbosity": 4}, {"correct": 4, "verbosity": 1}, rules)
    assert (d.choice, d.decided_by) == ("B", "verbosity")


def test_weighted_sum_normalises_scales_and_applies_polarity():
    severity = {"key": "harm", "name": "Harm", "scale": "severity", "weight": 1.0}
    rules = _rules({**CORRECT, "weight": 1.0}, severity)
    # A: correct 4 → 1.0, harm severe → 0.0 ; B: correct 2 → 0.5, harm none → 1.0
    d = derive.weighted_sum({"correct": 4, "harm": 3}, {"correct": 2, "harm": 0}, rules)
    assert (d.choice, d.score_a, d.score_b) == ("B", 1.0, 1.5)


def test_conjunctive_punishes_one_very_poor_criterion():
    rules = _rules(CORRECT, HELPFUL)
    a = {"correct": 4, "helpful": 0}  # sum 4, one criterion at the floor
    b = {"correct": 2, "helpful": 2}  # sum 4, both middling
    assert derive.weighted_sum(a, b, rules).choice == "tie"
    d = derive.conjunctive(a, b, rules)
    assert d.choice == "B"
    # log σ(2) + log σ(−2) vs 2·log σ(0), computed by hand
    assert d.score_a == pytest.approx(-0.126928 - 2.126928, abs=1e-5)
    assert d.score_b == pytest.approx(2 * -0.693147, abs=1e-5)


def test_mean_scores_skip_na_and_convert_binary_and_severity():
    rules = _rules(CORRECT, SAFE, {"key": "harm", "name": "Harm", "scale": "severity"})
    means = derive.mean_scores([({"correct": 4, "safe": True, "harm": "minor"}, []),
                                ({"correct": 1, "safe": False, "harm": None}, [])], rules)
    assert means == {"correct": 2.5, "safe": 0.5, "harm": 1.0}


# --- derived judgments in a project ---------------------------------------------------


def test_derived_judgments_never_touch_human_labels_and_report_agreement(project, annotator, owner):
    fill(project, prompts=2, responses=2)
    version = rubric_services.rubric_create(name="R", slug="r", aggregation="hierarchical",
                                            criteria=[CORRECT, HELPFUL])
    rubric_services.rubric_version_publish(version=version)
    project_pin_rubric(project=project, version=version)
    rater = make_user("rory-rater")
    c1, c2 = Comparison.objects.order_by("id")
    for c, (sa, sb) in ((c1, (4, 1)), (c2, (2, 2))):
        Rating.objects.create(response=c.response_a, annotator=rater, rubric_version=version,
                              scores={"correct": sa, "helpful": 3})
        Rating.objects.create(response=c.response_b, annotator=rater, rubric_version=version,
                              scores={"correct": sb, "helpful": 3})
    human1 = Judgment.objects.create(comparison=c1, annotator=annotator, choice="A", rubric_version=version)
    Judgment.objects.create(comparison=c1, annotator=owner, choice="B", rubric_version=version)
    Judgment.objects.create(comparison=c2, annotator=annotator, choice="both_bad", rubric_version=version)

    counts = derived_judgments_refresh(project=project)
    again = derived_judgments_refresh(project=project)  # idempotent

    assert counts == again == {"derived": 2, "responses_rated": 4, "A": 1, "B": 0, "tie": 1}
    derived = Judgment.objects.filter(source="derived").order_by("comparison_id")
    assert [(j.comparison_id, j.choice, j.derivation_rule, j.metadata["decided_by"]) for j in derived] == [
        (c1.pk, "A", "hierarchical", "correct"), (c2.pk, "tie", "hierarchical", "")]
    assert all(j.annotator.username == "preflab-derived-hierarchical" and not j.annotator.is_active for j in derived)
    human1.refresh_from_db()
    assert (human1.choice, human1.source) == ("A", "human")
    assert Judgment.objects.filter(source="human").count() == 3

    report = derivation_report(project=project, rule="hierarchical")
    assert (report.derived, report.compared_pairs, report.human_labels) == (2, 2, 3)
    assert report.confusion["A"] == {"A": 1, "B": 1, "tie": 0, "both_bad": 0}
    assert report.confusion["tie"]["both_bad"] == 1
    assert report.agreement == pytest.approx(1 / 3)
    assert report.decisive_agreement == pytest.approx(1 / 2)


def test_deriving_without_a_pinned_rubric_is_a_clear_error(project):
    with pytest.raises(ValueError, match="no rubric version pinned"):
        derived_judgments_refresh(project=project)


def test_templates_are_all_three_with_their_scales():
    slugs = {t["slug"]: t for t in rubric_services.template_list()}
    assert set(slugs) == {"helpsteer2", "ultrafeedback", "hh"}
    uf = rubric_services.rubric_create_from_template(template="ultrafeedback")
    assert [(c.key, c.config["min"], c.config["max"]) for c in uf.criteria.all()] == [
        ("instruction_following", 1, 5), ("truthfulness", 1, 5), ("honesty", 1, 5), ("helpfulness", 1, 5)]
    hh = rubric_services.rubric_create_from_template(template="hh")
    assert [(c.key, c.scale) for c in hh.criteria.all()] == [("harmless", "pairwise"), ("helpful", "pairwise")]
    assert Rubric.objects.count() == 2 and RubricVersion.objects.count() == 2


def test_the_editor_offers_anchors_only_where_the_scale_takes_them():
    from rubrics.forms import anchor_levels

    assert anchor_levels("likert", "1", "3") == ["1", "2", "3"]
    assert anchor_levels("binary") == ["yes", "no"]
    assert anchor_levels("severity") == ["none", "minor", "moderate", "severe"]
    assert anchor_levels("pairwise") == [] and anchor_levels("spans") == [] and anchor_levels("nope") == []
