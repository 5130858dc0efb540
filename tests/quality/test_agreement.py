"""Agreement statistics: each checked against a direct call of the reference
library, on hand-made cases and on real multi-annotator data."""

from __future__ import annotations

import io
import json
import random

import krippendorff
import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from annotate.models import ImportJob, Judgment, Rating
from dataio.imports import services as imports
from quality import agreement as stats
from quality.services import project_agreement

from tests.conftest import make_user
from tests.helpers import card_agreement
from tests.factories import fill, pin_rubric

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 3-coder
# example with missing values (also the krippendorff package's doctest).
KRIPP = [
    [np.nan, np.nan, np.nan, np.nan, np.nan, 3, 4, 1, 2, 1, 1, 3, 3, np.nan, 3],
    [1, np.nan, 2, 1, 3, 3, 4, 3, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan],
    [np.nan, np.nan, 2, 1, 3, 4, 4, np.nan, 2, 1, 1, 3, 3, np.nan, 4],
]


def _counts(reliability, domain):
    data = np.asarray(reliability, dtype=float)
    return np.array([[np.sum(data[:, j] == v) for v in domain] for j in range(data.shape[1])], dtype=float)


def test_alpha_from_counts_matches_krippendorff_on_reliability_data():
    counts = _counts(KRIPP, [1, 2, 3, 4])
    for level in ("nominal", "ordinal", "interval"):
        ours = stats.krippendorff_alpha(counts, level, domain=[1, 2, 3, 4])
        assert ours == pytest.approx(krippendorff.alpha(reliability_data=KRIPP, level_of_measurement=level))
    assert stats.krippendorff_alpha(counts, "nominal") == pytest.approx(0.691358, abs=1e-6)


def test_alpha_is_undefined_without_two_values_or_two_raters():
    assert stats.krippendorff_alpha(np.array([[3, 0], [2, 0]]), "nominal") is None
    assert stats.krippendorff_alpha(np.array([[1, 0], [0, 1]]), "nominal") is None  # no item has two ratings


def test_fleiss_kappa_matches_statsmodels_when_every_item_has_the_same_raters():
    # Fleiss (1971) via Wikipedia's worked example: 10 items, 14 raters, κ = 0.210.
    table = np.array([
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ])
    assert stats.fleiss_kappa(table) == pytest.approx(sm_fleiss(table))
    assert stats.fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)
    rng = np.random.default_rng(3)
    random_table = np.array([rng.multinomial(4, [0.5, 0.3, 0.2]) for _ in range(50)])
    assert stats.fleiss_kappa(random_table) == pytest.approx(sm_fleiss(random_table))


def _gwet_by_hand(ratings: list[list], categories: list, weights=None):
    """Gwet's coefficient written out item by item, an independent path to the
    vectorised one (varying raters, which irrCAC cannot take under pandas 3)."""
    q = len(categories)
    w = np.eye(q) if weights is None else weights
    pa_terms, pis = [], np.zeros(q)
    for answers in ratings:
        n = [answers.count(c) for c in categories]
        r = sum(n)
        if r == 0:
            continue
        pis += np.array(n) / r
        if r >= 2:
            pa_terms.append(sum(n[k] * (sum(w[k][l] * n[l] for l in range(q)) - 1) for k in range(q)) / (r * (r - 1)))
    pis /= sum(1 for a in ratings if a)
    pe = np.sum(w) / (q * (q - 1)) * float(np.sum(pis * (1 - pis)))
    pa = float(np.mean(pa_terms))
    return (pa - pe) / (1 - pe)


def test_gwet_ac1_and_ac2_match_irrcac_on_complete_data():
    from irrCAC.raw import CAC

    rng = np.random.default_rng(7)
    truth = rng.integers(1, 4, size=30)
    data = pd.DataFrame({f"r{k}": np.where(rng.random(30) < 0.7, truth, rng.integers(1, 4, size=30)) for k in range(4)})
    counts = np.array([[np.sum(row == v) for v in (1, 2, 3)] for row in data.to_numpy()], dtype=float)
    ac1 = CAC(data).gwet()["est"]["coefficient_value"]
    ac2 = CAC(data, weights="quadratic").gwet()["est"]["coefficient_value"]
    assert stats.gwet_ac(counts) == pytest.approx(ac1, abs=1e-4)  # irrCAC rounds to 5 places
    assert stats.gwet_ac(counts, stats.quadratic_weights([1, 2, 3])) == pytest.approx(ac2, abs=1e-4)


def test_gwet_with_a_varying_number_of_raters_matches_the_item_by_item_formula():
    rng = random.Random(11)
    items = [[rng.choice("ABT") for _ in range(rng.randint(1, 6))] for _ in range(40)]
    counts = stats.counts_from_items(items, "ABT")
    assert stats.gwet_ac(counts) == pytest.approx(_gwet_by_hand(items, list("ABT")))
    w = stats.quadratic_weights([0, 1, 2])
    assert stats.gwet_ac(counts, w) == pytest.approx(_gwet_by_hand(items, list("ABT"), w))


def test_weighted_kappa_per_pair_is_sklearns_on_the_shared_items():
    by_rater = {"x": {1: 0, 2: 1, 3: 2, 4: 4, 5: 3}, "y": {2: 1, 3: 3, 4: 4, 5: 1, 6: 0}, "z": {9: 2}}
    [pair] = stats.pairwise_cohen_kappa(by_rater, [0, 1, 2, 3, 4])
    assert (pair.rater_a, pair.rater_b, pair.n_items) == ("x", "y", 4)
    expected = cohen_kappa_score([1, 2, 4, 3], [1, 3, 4, 1], labels=[0, 1, 2, 3, 4], weights="quadratic")
    assert pair.kappa == pytest.approx(expected)



def test_alpha_matches_krippendorff_on_random_tables_with_varying_raters():
    rng = np.random.default_rng(5)
    for level, domain in (("nominal", None), ("ordinal", [-3, -2, -1, 0, 1, 2, 3]), ("interval", [0, 1, 2, 3, 4, 5, 6])):
        counts = np.array([rng.multinomial(rng.integers(1, 6), rng.dirichlet(np.ones(7))) for _ in range(200)], dtype=float)
        want = krippendorff.alpha(value_counts=counts, level_of_measurement=level, value_domain=domain)
        assert stats.krippendorff_alpha(counts, level, domain) == pytest.approx(want, rel=1e-9)


def test_every_statistic_of_the_distinct_rows_with_their_frequencies_equals_the_full_tables():
    # what makes a million labels cheap: two raters, four answers give a few distinct rows
    rng = np.random.default_rng(9)
    counts = np.array([rng.multinomial(rng.integers(1, 4), [0.5, 0.3, 0.15, 0.05]) for _ in range(3000)], dtype=float)
    rows, freq = stats.compress(counts)
    assert len(rows) < 40 and freq.sum() == len(counts)
    assert stats.raw_agreement(rows, freq) == pytest.approx(stats.raw_agreement(counts))
    assert stats.n_pairable(rows, freq) == len(stats.pairable(counts))
    assert stats.fleiss_kappa(rows, freq) == pytest.approx(stats.fleiss_kappa(counts))
    w = stats.quadratic_weights([0, 1, 2, 3])
    assert stats.gwet_ac(rows, freq=freq) == pytest.approx(stats.gwet_ac(counts))
    assert stats.gwet_ac(rows, w, freq) == pytest.approx(stats.gwet_ac(counts, w))
    for level in ("nominal", "ordinal", "interval"):
        want = krippendorff.alpha(value_counts=counts, level_of_measurement=level)
        assert stats.krippendorff_alpha(rows, level, freq=freq) == pytest.approx(want, rel=1e-9)

# --- real multi-annotator data -----------------------------------------------------------


def _import(project, fmt, path):
    job = imports.import_file(project=project, format=fmt, path=path)
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    return project


def _reliability(project, flip_all=False):
    """raters × comparisons matrix of the stored choices (0 A, 1 B), straight from
    the database: the input krippendorff.alpha takes, built independently."""
    rows = list(Judgment.objects.filter(comparison__project=project).values_list("annotator_id", "comparison_id", "choice"))
    raters = sorted({r for r, _, _ in rows})
    items = sorted({c for _, c, _ in rows})
    m = np.full((len(raters), len(items)), np.nan)
    code = {"A": 0, "B": 1, "tie": 2, "both_bad": 3}
    for r, c, choice in rows:
        value = code[choice]
        if flip_all and value < 2:
            value = 1 - value
        m[raters.index(r), items.index(c)] = value
    return m


@pytest.mark.django_db
@pytest.mark.shared_data
def test_summarize_batch13_agreement_and_renaming_invariance(project, shared_data, tmp_path):
    _import(project, "summarize", shared_data / "summarize-from-feedback" / "batch13.json")
    overall = project_agreement(project=project)["criteria"][0]
    assert overall["key"] == "overall"
    s = overall["statistics"]
    # The independent count of the issue: 773 worker pairs on 40 comparisons, 27 workers.
    assert s["raw_agreement"] == {"value": 0.7257, "n_items": 40, "n_raters": 27, "n_pairs": 773}
    # α counts each comparison in both namings: krippendorff.alpha on the matrix and its mirror.
    both = np.hstack([_reliability(project), _reliability(project, flip_all=True)])
    assert s["krippendorff_alpha_nominal"]["value"] == pytest.approx(
        krippendorff.alpha(reliability_data=both, level_of_measurement="nominal"), abs=5e-5)

    # Name A the response most workers chose, as a file listing the winner first
    # would: the one-direction α moves; ours does not. Then rename a random half.
    one_way_before = krippendorff.alpha(reliability_data=_reliability(project), level_of_measurement="nominal")
    votes = {}
    for cid, choice in Judgment.objects.values_list("comparison_id", "choice"):
        votes[cid] = votes.get(cid, 0) + (1 if choice == "B" else -1)
    _rename(cid for cid, v in votes.items() if v > 0)
    one_way_after = krippendorff.alpha(reliability_data=_reliability(project), level_of_measurement="nominal")
    assert abs(one_way_after - one_way_before) > 0.05
    assert project_agreement(project=project)["criteria"][0]["statistics"] == s
    rng = random.Random(5)
    _rename(cid for cid in votes if rng.random() < 0.5)
    assert project_agreement(project=project)["criteria"][0]["statistics"] == s

    # The export's dataset card states quality's figures, every one of them (Fleiss' κ,
    # AC1 and α ordinal included, which no other code computes), as the command does.
    from dataio.exports.services import export_write
    from dataio.exports.spec import ExportSpec

    card = export_write(project=project, spec=ExportSpec(format="trl"), out=tmp_path / "export").card_path.read_text()
    out = io.StringIO()
    call_command("agreement", project.slug, "--criterion", "overall", "--json", stdout=out)
    command = json.loads(out.getvalue())["criteria"][0]["statistics"]
    assert command == s
    assert card_agreement(card) == {name: (f["value"], f["n_items"], f["n_raters"]) for name, f in s.items()}
    assert set(card_agreement(card)) >= {"raw_agreement", "krippendorff_alpha_nominal", "krippendorff_alpha_ordinal",
                                         "fleiss_kappa", "gwet_ac1"}


def _rename(comparison_ids):
    """Swap what A and B mean on these comparisons' labels."""
    for j in Judgment.objects.filter(comparison_id__in=list(comparison_ids)):
        j.choice = {"A": "B", "B": "A"}.get(j.choice, j.choice)
        j.strength = -j.strength if j.strength else j.strength
        j.save(update_fields=["choice", "strength"])


@pytest.mark.django_db
@pytest.mark.shared_data
def test_pandalm_fleiss_and_gwet_match_the_reference_libraries(project, shared_data):
    from irrCAC.raw import CAC

    _import(project, "pandalm", shared_data / "pandalm" / "testset-v1.json")
    s = project_agreement(project=project)["criteria"][0]["statistics"]
    assert s["raw_agreement"]["n_items"] == 999 and s["raw_agreement"]["n_raters"] == 3
    # Every PandaLM pair has its three annotators: the libraries take it as it is.
    m = _reliability(project)
    both = np.hstack([m, _reliability(project, flip_all=True)])
    counts = np.array([[np.sum(both[:, j] == v) for v in range(4)] for j in range(both.shape[1])])
    assert s["fleiss_kappa"]["value"] == pytest.approx(sm_fleiss(counts), abs=5e-5)
    ac1 = CAC(pd.DataFrame(both.T)).gwet()["est"]["coefficient_value"]
    assert s["gwet_ac1"]["value"] == pytest.approx(ac1, abs=2e-4)


# --- ratings, the command --------------------------------------------------------------


@pytest.mark.django_db
def test_likert_and_binary_ratings_get_their_own_statistics(project):
    pin_rubric(project, criteria=[
        {"key": "helpful", "name": "Helpful", "scale": "likert", "min": 0, "max": 4},
        {"key": "safe", "name": "Safe", "scale": "binary"},
    ])
    fill(project, prompts=6, responses=2)
    raters = [make_user(f"rater{i}") for i in range(3)]
    rng = random.Random(2)
    matrix = np.full((3, 12), np.nan)
    responses = list(project.prompts.all().values_list("responses__id", flat=True).order_by("responses__id"))
    for j, rid in enumerate(responses):
        base = rng.randint(0, 4)
        for i, rater in enumerate(raters):
            if i == 2 and j % 3 == 0:
                continue  # a missing rating
            value = max(0, min(4, base + rng.choice([-1, 0, 0, 1])))
            matrix[i, j] = value
            Rating.objects.create(response_id=rid, annotator=rater, rubric_version=project.rubric_version,
                                  scores={"helpful": value, "safe": value >= 2}, source="human")
    result = {c["key"]: c for c in project_agreement(project=project)["criteria"]}
    helpful = result["helpful"]["statistics"]
    assert result["helpful"]["scale"] == "likert" and result["safe"]["scale"] == "binary"
    assert helpful["krippendorff_alpha_interval"]["value"] == pytest.approx(
        krippendorff.alpha(reliability_data=matrix, level_of_measurement="interval", value_domain=[0, 1, 2, 3, 4]),
        abs=5e-5)
    assert helpful["krippendorff_alpha_ordinal"]["value"] == pytest.approx(
        krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal", value_domain=[0, 1, 2, 3, 4]),
        abs=5e-5)
    assert helpful["cohen_kappa_quadratic"]["n_annotator_pairs"] == 3
    assert helpful["krippendorff_alpha_interval"]["n_items"] == 12
    assert set(result["safe"]["statistics"]) == {"raw_agreement", "krippendorff_alpha_nominal", "gwet_ac1"}


@pytest.mark.django_db
def test_derived_labels_never_count(project):
    fill(project, prompts=2, responses=2)
    raters = [make_user("h1"), make_user("h2"), make_user("bot")]
    for c in project.comparisons.all():
        Judgment.objects.create(comparison=c, annotator=raters[0], choice="A", source="human")
        Judgment.objects.create(comparison=c, annotator=raters[1], choice="A", source="imported")
        Judgment.objects.create(comparison=c, annotator=raters[2], choice="B", source="derived")
    s = project_agreement(project=project)["criteria"][0]["statistics"]
    assert s["raw_agreement"] == {"value": 1.0, "n_items": 2, "n_raters": 2, "n_pairs": 2}


@pytest.mark.django_db
def test_agreement_command_prints_named_statistics_as_json(project):
    fill(project, prompts=3, responses=2)
    raters = [make_user("h1"), make_user("h2")]
    for k, c in enumerate(project.comparisons.all()):
        Judgment.objects.create(comparison=c, annotator=raters[0], choice="A", strength=-2, source="human")
        Judgment.objects.create(comparison=c, annotator=raters[1], choice="A" if k else "B",
                                strength=-1 if k else 1, source="human")
    out = io.StringIO()
    call_command("agreement", project.slug, "--json", stdout=out)
    data = json.loads(out.getvalue())
    stats_ = data["criteria"][0]["statistics"]
    assert stats_["raw_agreement"]["value"] == pytest.approx(2 / 3, abs=1e-4)
    for name in ("krippendorff_alpha_nominal", "krippendorff_alpha_ordinal", "fleiss_kappa", "gwet_ac1"):
        assert set(stats_[name]) >= {"value", "n_items", "n_raters"} and stats_[name]["n_raters"] == 2
    table = io.StringIO()
    call_command("agreement", project.slug, stdout=table)
    assert "raw_agreement" in table.getvalue() and "0.6667" in table.getvalue()
    with pytest.raises(CommandError, match="no labels answer criterion 'nope'"):
        call_command("agreement", project.slug, "--criterion", "nope")
    with pytest.raises(CommandError, match="no project"):
        call_command("agreement", "missing-project")
