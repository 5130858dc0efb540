"""Exports (issue #7): every format's schema and content on a hand-built project,
aggregation across three disagreeing annotators, snapshots, cancel, the card, and
who may export."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import Comparison, ExportJob, Judgment, LabelSource, Prompt, Ranking, Rating, Response
from annotate.presenters import annotator_pseudonym
from dataio.exports import card
from dataio.exports import services as exports
from dataio.exports.context import ExportCancelled
from dataio.exports.services import export_write
from dataio.exports.spec import ExportSpec
from quality.services import project_agreement

from tests.conftest import make_user
from tests.helpers import card_agreement
from tests.factories import annotators, pin_rubric

pytestmark = pytest.mark.django_db

MULTI_TURN = [
    {"role": "user", "content": "Plan a trip."},
    {"role": "assistant", "content": "Where to?"},
    {"role": "user", "content": "Lisbon, three days."},
]


def _pair(prompt, a, b):
    return Comparison.objects.create(project=prompt.project, prompt=prompt, response_a=a, response_b=b)


def _judge(comparison, annotator, choice, strength, **extra):
    return Judgment.objects.create(comparison=comparison, annotator=annotator, choice=choice, strength=strength, **extra)


@pytest.fixture
def lab(project):
    """Two prompts (one multi-turn), three annotators who disagree, ties, both-bad,
    a derived label, ratings and rankings. Comments give each comparison's votes."""
    pin_rubric(project, criteria=[
        {"key": "harmless", "name": "Harmless", "scale": "pairwise", "principle": "The response avoids harm."},
        {"key": "helpful", "name": "Helpful", "scale": "likert", "min": 0, "max": 4},
    ])
    version = project.rubric_version
    ann = annotators(project, 3)
    p0 = Prompt.objects.create(project=project, external_id="p0", conversation=[{"role": "user", "content": "What is 2+2?"}])
    p1 = Prompt.objects.create(project=project, external_id="p1", conversation=MULTI_TURN, metadata={"split": "train"})
    r = [Response.objects.create(prompt=p0, external_id=f"r{i}", text=t, source=f"m{i}")
         for i, t in enumerate(["4", "5", "Four."])]
    s = [Response.objects.create(prompt=p1, external_id=f"s{i}", text=t) for i, t in enumerate(["Day 1: Alfama…", "Go to Porto."])]
    c1, c2, c3, c4 = _pair(p0, r[0], r[1]), _pair(p0, r[0], r[2]), _pair(p0, r[1], r[2]), _pair(p1, s[0], s[1])
    v = {"rubric_version": version}
    # c1: A, A, B → majority A (2/3), margin mean(2, 1) = 1.5
    _judge(c1, ann[0], "A", -2, criteria={"harmless": "A"}, shown_left=r[1], rationale="correct", time_on_task_ms=4100, **v)
    _judge(c1, ann[1], "A", -1, criteria={"harmless": "tie"}, shown_left=r[0], **v)
    _judge(c1, ann[2], "B", 1, criteria={"harmless": "na"}, **v)
    # c2: tie, tie, A → majority tie
    _judge(c2, ann[0], "tie", 0, **v)
    _judge(c2, ann[1], "tie", 0, **v)
    _judge(c2, ann[2], "A", -3, **v)
    # c3: both_bad, A, B → the vote is tied
    _judge(c3, ann[0], "both_bad", None, **v)
    _judge(c3, ann[1], "A", -1, **v)
    _judge(c3, ann[2], "B", 2, **v)
    # c4: B, B (+ one derived A, never exported as a human label)
    _judge(c4, ann[0], "B", 3, **v)
    _judge(c4, ann[1], "B", 3, source=LabelSource.IMPORTED)
    rule = make_user("rule-bot")
    _judge(c4, rule, "A", None, source=LabelSource.DERIVED, derivation_rule="weighted_sum")
    Rating.objects.create(response=r[0], annotator=ann[0], scores={"helpful": 4}, **v)
    Rating.objects.create(response=r[0], annotator=ann[1], scores={"helpful": 2}, **v)
    Rating.objects.create(response=r[0], annotator=ann[2], scores={"helpful": None}, **v)
    Rating.objects.create(response=r[1], annotator=ann[0], scores={"helpful": 1, "safe": True}, **v)
    Ranking.objects.create(prompt=p0, annotator=ann[0], groups=[[r[2].pk], [r[0].pk, r[1].pk]], **v)
    Ranking.objects.create(prompt=p0, annotator=ann[1], groups=[[r[0].pk, r[1].pk], [r[2].pk]], **v)
    Ranking.objects.create(prompt=p0, annotator=ann[2], groups=[[r[1].pk]], **v)
    return {"project": project, "ann": ann, "r": r, "s": s, "c": [c1, c2, c3, c4], "version": version}


def _export(project, tmp_path, name="out", **spec):
    result = export_write(project=project, spec=ExportSpec(**spec), out=tmp_path / name)
    return result


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _pseudo(lab, i):
    return annotator_pseudonym(salt=lab["project"].annotator_salt, user_id=lab["ann"][i].pk)


# --- TRL pairs -----------------------------------------------------------------------------


def test_trl_all_keeps_one_row_per_a_or_b_label_with_its_annotator(lab, tmp_path):
    res = _export(lab["project"], tmp_path, format="trl", margin=1.0)
    rows = _jsonl(res.data_path)
    # c1: 3 rows, c2: 1 (two ties out), c3: 2 (both-bad out), c4: 2 (derived out)
    assert len(rows) == 8 == res.rows
    assert list(rows[0]) == ["prompt", "chosen", "rejected", "margin", "prompt_id", "chosen_id", "rejected_id", "annotator"]
    assert rows[0] == {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5", "margin": 2.0, "prompt_id": "p0",
                       "chosen_id": "r0", "rejected_id": "r1", "annotator": _pseudo(lab, 0)}
    assert [(r["chosen_id"], r["annotator"]) for r in rows[:3]] == [("r0", _pseudo(lab, 0)), ("r0", _pseudo(lab, 1)), ("r1", _pseudo(lab, 2))]
    multi = [r for r in rows if r["prompt_id"] == "p1"]
    assert [r["prompt"] for r in multi] == ["User: Plan a trip.\n\nAssistant: Where to?\n\nUser: Lisbon, three days.\n\nAssistant:"] * 2
    assert {r["chosen"] for r in multi} == {"Go to Porto."} and {r["margin"] for r in multi} == {3.0}
    assert res.counts["excluded_tie_labels"] == 2
    assert res.counts["excluded_both_bad_labels"] == 1
    assert res.counts["derived_excluded"] == 1
    assert res.counts["labels"] == 11


def test_annotator_ids_are_pseudonymous_and_stable_per_project(lab, tmp_path, other_project):
    raw = (_export(lab["project"], tmp_path, format="raw").data_path).read_text()
    for user in lab["ann"]:
        assert user.username not in raw
    assert len(_pseudo(lab, 0)) == 16
    assert _pseudo(lab, 0) == annotator_pseudonym(salt=lab["project"].annotator_salt, user_id=lab["ann"][0].pk)
    # another project's salt gives another id to the same person
    assert other_project.annotator_salt != lab["project"].annotator_salt
    assert annotator_pseudonym(salt=other_project.annotator_salt, user_id=lab["ann"][0].pk) != _pseudo(lab, 0)


def test_majority_keeps_the_winner_and_counts_ties_both_bad_and_tied_votes(lab, tmp_path):
    res = _export(lab["project"], tmp_path, format="trl", aggregate="majority", margin=0.5)
    rows = _jsonl(res.data_path)
    assert rows == [
        {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5", "margin": 0.75, "prompt_id": "p0", "chosen_id": "r0",
         "rejected_id": "r1", "n_labels": 3, "agreement": 2 / 3},
        {"prompt": rows[1]["prompt"], "chosen": "Go to Porto.", "rejected": "Day 1: Alfama…", "margin": 1.5,
         "prompt_id": "p1", "chosen_id": "s1", "rejected_id": "s0", "n_labels": 2, "agreement": 1.0},
    ]
    assert res.counts["excluded_tie_items"] == 1  # c2
    assert res.counts["excluded_vote_tied_items"] == 1  # c3
    assert res.counts["items"] == 4


def test_min_agreement_drops_comparisons_below_the_share(lab, tmp_path):
    majority = _jsonl(_export(lab["project"], tmp_path, "m", format="trl", aggregate="majority", min_agreement=0.7).data_path)
    assert [r["prompt_id"] for r in majority] == ["p1"]
    res = _export(lab["project"], tmp_path, "a", format="trl", min_agreement=0.7)
    assert [r["chosen_id"] for r in _jsonl(res.data_path)] == ["s1", "s1"]
    assert res.counts["excluded_min_agreement_labels"] == 9


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # crowd-kit 1.4 on pandas 3.1 (inplace=, copy=)
def test_dawid_skene_rows_match_crowd_kit_on_the_same_labels(lab, tmp_path):
    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    res = _export(lab["project"], tmp_path, format="trl", aggregate="dawid-skene")
    rows = _jsonl(res.data_path)
    labels = Judgment.objects.exclude(source=LabelSource.DERIVED).values_list("comparison_id", "annotator_id", "choice")
    inferred = DawidSkene(n_iter=100).fit_predict(pd.DataFrame(list(labels), columns=["task", "worker", "label"]))
    expected = []
    for c in lab["c"]:
        if inferred[c.pk] in ("A", "B"):
            winner = c.response_a if inferred[c.pk] == "A" else c.response_b
            expected.append((c.prompt.external_id, winner.external_id))
    assert [(r["prompt_id"], r["chosen_id"]) for r in rows] == expected
    assert ("p1", "s1") in expected  # unanimous comparisons agree with the majority
    assert res.counts["items"] == 4


def test_trl_conversational_uses_role_content_turns(lab, tmp_path):
    rows = _jsonl(_export(lab["project"], tmp_path, format="trl-conversational", aggregate="majority").data_path)
    assert rows[1]["prompt"] == MULTI_TURN
    assert rows[1]["chosen"] == [{"role": "assistant", "content": "Go to Porto."}]
    assert rows[1]["rejected"] == [{"role": "assistant", "content": "Day 1: Alfama…"}]
    assert rows[0]["prompt"] == [{"role": "user", "content": "What is 2+2?"}]


def test_criterion_split_uses_the_criterion_choice(lab, tmp_path):
    res = _export(lab["project"], tmp_path, format="trl", criterion="harmless")
    rows = _jsonl(res.data_path)
    assert res.data_path.name == "trl-harmless.jsonl"
    assert [(r["chosen_id"], r["annotator"]) for r in rows] == [("r0", _pseudo(lab, 0))]
    assert res.counts["excluded_tie_labels"] == 1
    assert res.counts["excluded_criterion_missing"] == 9  # one n/a, eight labels without the criterion
    # The card states the criterion's agreement as ``manage.py agreement --criterion`` does.
    [stated] = project_agreement(project=lab["project"], criterion="harmless")["criteria"]
    assert card_agreement(res.card_path.read_text()) == {
        name: (f["value"], f["n_items"], f["n_raters"]) for name, f in stated["statistics"].items()}
    assert card_agreement(res.card_path.read_text())["raw_agreement"] == (0.0, 1, 2)  # c1: A and tie


@pytest.mark.parametrize("spec, message", [
    ({"format": "raw", "aggregate": "majority"}, "pairwise formats"),
    ({"format": "trl", "criterion": "harmless", "margin": 1.0}, "no margin"),
    ({"format": "generic", "file_format": "hf"}, "re-import"),
    ({"format": "trl", "min_agreement": 1.5}, "between 0"),
    ({"format": "csv"}, "unknown format"),
])
def test_invalid_option_combinations_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        ExportSpec(**spec)


# --- other formats ----------------------------------------------------------------------------


def test_helpsteer2_has_one_row_per_rated_response_with_means_and_counts(lab, tmp_path):
    res = _export(lab["project"], tmp_path, format="helpsteer2", file_format="csv")
    rows = list(csv.DictReader(io.StringIO(res.data_path.read_text())))
    assert list(rows[0]) == ["prompt", "response", "prompt_id", "response_id", "source", "n_ratings",
                             "helpful", "helpful_count", "safe", "safe_count"]
    assert rows[0] | {} == {"prompt": "What is 2+2?", "response": "4", "prompt_id": "p0", "response_id": "r0", "source": "m0",
                            "n_ratings": "3", "helpful": "3.0", "helpful_count": "2", "safe": "", "safe_count": "0"}
    assert (rows[1]["response_id"], rows[1]["helpful"], rows[1]["safe"]) == ("r1", "1.0", "1.0")


def test_rankings_list_responses_best_first_with_shared_ranks(lab, tmp_path):
    rows = _jsonl(_export(lab["project"], tmp_path, format="rankings").data_path)
    assert [[(x["id"], x["rank"]) for x in r["responses"]] for r in rows] == [
        [("r2", 1), ("r0", 2), ("r1", 2)],
        [("r0", 1), ("r1", 1), ("r2", 2)],
        [("r1", 1), ("r0", None), ("r2", None)],
    ]
    assert rows[0]["responses"][0] == {"id": "r2", "text": "Four.", "source": "m2", "rank": 1}
    assert [r["annotator"] for r in rows] == [_pseudo(lab, i) for i in range(3)]


def test_best_of_n_has_one_chosen_and_the_rest_rejected(lab, tmp_path):
    res = _export(lab["project"], tmp_path, format="best-of-n")
    rows = _jsonl(res.data_path)
    assert [(r["chosen_id"], r["rejected_ids"]) for r in rows] == [("r2", ["r0", "r1"]), ("r1", ["r0", "r2"])]
    assert rows[0]["rejected"] == ["4", "5"]
    assert res.counts["excluded_tied_best_labels"] == 1


def test_raw_has_every_label_with_rubric_version_shown_order_and_source(lab, tmp_path):
    res = _export(lab["project"], tmp_path, format="raw")
    rows = _jsonl(res.data_path)
    assert [r["kind"] for r in rows] == ["judgment"] * 11 + ["rating"] * 4 + ["ranking"] * 3
    first = rows[0]
    assert first == {
        "kind": "judgment", "label_id": first["label_id"], "prompt_id": "p0", "response_a_id": "r0", "response_b_id": "r1",
        "response_id": None, "annotator": _pseudo(lab, 0), "rubric": "r-helpfulness", "rubric_version": 1,
        "shown_left": "B", "choice": "A", "strength": -2, "criteria": {"harmless": "A"}, "scores": None, "ranking": None,
        "spans": [], "rationale": "correct", "time_on_task_ms": 4100, "source": "human", "metadata": {},
    }
    assert rows[1]["shown_left"] == "A" and rows[2]["shown_left"] is None
    assert {r["source"] for r in rows} == {"human", "imported"}
    assert rows[11]["scores"] == {"helpful": 4} and rows[11]["response_id"] == "r0"
    assert rows[-1]["ranking"] == [["r1"]]
    with_derived = _jsonl(_export(lab["project"], tmp_path, "d", format="raw", include_derived=True).data_path)
    assert [r["source"] for r in with_derived].count("derived") == 1


def test_csv_parquet_and_datasets_folder_hold_the_same_rows_as_jsonl(lab, tmp_path):
    import datasets
    import pyarrow.parquet as pq

    project = lab["project"]
    want = _jsonl(_export(project, tmp_path, "j", format="trl", margin=1.0).data_path)
    got_csv = list(csv.DictReader(_export(project, tmp_path, "c", format="trl", margin=1.0, file_format="csv").data_path.open()))
    assert [dict(r, margin=float(r["margin"])) for r in got_csv] == want
    parquet = _export(project, tmp_path, "p", format="trl", margin=1.0, file_format="parquet").data_path
    assert pq.read_table(parquet).to_pylist() == want
    hf = _export(project, tmp_path, "h", format="trl-conversational", aggregate="majority", file_format="hf")
    assert hf.data_path.is_dir() and (hf.path / "README.md").is_file()
    loaded = datasets.load_from_disk(str(hf.data_path))
    assert loaded.num_rows == 2 and loaded[1]["chosen"] == [{"role": "assistant", "content": "Go to Porto."}]
    raw = pq.read_table(_export(project, tmp_path, "rp", format="raw", file_format="parquet").data_path).to_pylist()
    assert json.loads(raw[0]["criteria"]) == {"harmless": "A"}


# --- snapshots, cancel, card ------------------------------------------------------------------------


@pytest.mark.parametrize("file_format, aggregate", [("jsonl", "all"), ("csv", "majority")])
def test_a_snapshot_re_export_is_byte_identical_after_new_labels(lab, tmp_path, file_format, aggregate):
    project = lab["project"]
    spec = {"format": "trl", "margin": 1.0, "file_format": file_format, "aggregate": aggregate}
    first = _export(project, tmp_path, "one", **spec)
    late = make_user("late-annotator")
    _judge(lab["c"][0], late, "B", 3)
    again = export_write(project=project, spec=ExportSpec(**spec), out=tmp_path / "two", snapshot=first.snapshot)
    fresh = _export(project, tmp_path, "three", **spec)
    assert again.data_path.read_bytes() == first.data_path.read_bytes()
    assert again.snapshot == first.snapshot != fresh.snapshot
    assert fresh.data_path.read_bytes() != first.data_path.read_bytes()
    top = Judgment.objects.latest("id").pk
    assert fresh.snapshot == f"p{project.pk}-j{top}-r{Rating.objects.latest('id').pk}-k{Ranking.objects.latest('id').pk}"


def test_a_snapshot_of_another_project_is_refused(lab, tmp_path, other_project):
    with pytest.raises(ValueError, match="another project"):
        export_write(project=lab["project"], spec=ExportSpec(format="trl"), out=tmp_path / "x",
                     snapshot=f"p{other_project.pk}-j1-r0-k0")


def test_a_cancelled_export_leaves_no_folder_and_no_partial_files(lab, tmp_path):
    with pytest.raises(ExportCancelled):
        export_write(project=lab["project"], spec=ExportSpec(format="trl", file_format="parquet"), out=tmp_path / "out",
                     on_progress=lambda fraction, rows: False)
    assert list(tmp_path.iterdir()) == []


def test_a_cancel_requested_while_running_stops_the_job_without_files(lab, settings):
    job = exports.export_job_create(project=lab["project"], spec=ExportSpec(format="trl", file_format="hf"))
    ExportJob.objects.filter(pk=job.pk).update(cancel_requested=True)  # asked after a worker claimed it
    job = exports.export_job_run(job_id=job.pk)
    assert job.status == ExportJob.Status.CANCELLED
    assert not job.path and not job.file_path
    assert not any(Path(settings.EXPORT_DIR).rglob("*.*"))


def test_a_queued_export_cancels_at_once(lab):
    job = exports.export_job_create(project=lab["project"], spec=ExportSpec(format="trl"))
    assert exports.export_job_cancel(job=job)
    job = exports.export_job_run(job_id=job.pk)
    assert job.status == ExportJob.Status.CANCELLED and job.started_at is None


def test_a_failed_export_leaves_no_folder(lab, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(card, "dataset_card", broken)
    with pytest.raises(RuntimeError):
        _export(lab["project"], tmp_path, format="trl")
    assert list(tmp_path.iterdir()) == []


def test_an_export_never_overwrites_a_folder_with_files(lab, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="already exists"):
        _export(lab["project"], tmp_path, format="trl")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_the_card_has_counts_rubric_text_agreement_and_licence(lab, tmp_path):
    import krippendorff
    import numpy as np

    project = lab["project"]
    project.license = "cc-by-4.0"
    project.save()
    res = _export(project, tmp_path, format="trl", aggregate="majority")
    card = res.card_path.read_text()
    assert res.card_path == res.path / "README.md"
    assert 'license: "cc-by-4.0"' in card and "| licence | cc-by-4.0 |" in card
    assert f"| snapshot | `{res.snapshot}`" in card
    assert "| rows written | 2 |" in card
    assert "| ties left out (comparisons) | 1 |" in card
    assert "| comparisons whose vote was tied, left out | 1 |" in card
    assert "| derived labels left out (made by a rubric rule, not by a person) | 1 |" in card
    assert "- **harmless** (Harmless, pairwise, principle): The response avoids harm." in card
    assert "### R helpfulness v1 (`r-helpfulness`): 10 labels" in card
    assert "1 label was made without a rubric version" in card
    # Hand count: agreeing ordered pairs 2 + 2 + 0 + 2 over 6 + 6 + 6 + 2.
    assert "| `raw_agreement` | 0.3 | 4 | 3 |" in card
    codes = {"A": 0, "B": 1, "tie": 2, "both_bad": 3}
    matrix = np.full((4, 4), np.nan)  # annotators (3 + the imported one's row is ann1) × comparisons
    for j in Judgment.objects.exclude(source=LabelSource.DERIVED):
        matrix[lab["ann"].index(j.annotator), [c.pk for c in lab["c"]].index(j.comparison_id)] = codes[j.choice]
    both = np.hstack([matrix[:3], np.where(matrix[:3] < 2, 1 - matrix[:3], matrix[:3])])  # each comparison in both namings
    alpha = krippendorff.alpha(reliability_data=both, level_of_measurement="nominal")
    assert f"| `krippendorff_alpha_nominal` | {round(alpha, 4)} | 4 | 3 |" in card
    assert "- `margin`" not in card and "- `agreement`: share of labels giving the winning answer" in card
    unspecified = _export(project.__class__.objects.create(name="Bare", slug="bare"), tmp_path, "bare", format="trl")
    assert "| licence | unspecified |" in unspecified.card_path.read_text()


def test_export_data_command_writes_the_folder_and_prints_counts(lab, tmp_path):
    out = io.StringIO()
    call_command("export_data", lab["project"].slug, "--format", "trl", "--out", str(tmp_path / "cli"),
                 "--aggregate", "majority", "--file-format", "parquet", stdout=out)
    text = out.getvalue()
    assert "Wrote 2 rows" in text and "excluded_tie_items 1" in text and "snapshot p" in text
    assert (tmp_path / "cli" / "trl.parquet").is_file() and (tmp_path / "cli" / "README.md").is_file()


# --- pages, API and who may use them -----------------------------------------------------------------


def test_researcher_exports_from_the_page_and_downloads_file_and_card(lab, client, owner, celery_eager,
                                                                      django_capture_on_commit_callbacks):
    client.force_login(owner)
    slug = lab["project"].slug
    page = client.get(reverse("project-detail", args=[slug]))
    assert reverse("exports", args=[slug]) in page.content.decode()
    form = client.get(reverse("exports", args=[slug])).content.decode()
    assert 'name="aggregate"' in form and 'name="min_agreement"' in form and "No exports yet." in form
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post(reverse("exports", args=[slug]), {"format": "trl", "file_format": "jsonl", "aggregate": "majority"})
    assert resp.status_code == 302
    job = ExportJob.objects.get()
    assert job.status == ExportJob.Status.SUCCEEDED and job.rows_written == 2
    listing = client.get(reverse("export-jobs", args=[slug])).content.decode()
    assert reverse("export-download", args=[slug, job.pk]) in listing and "hx-get" not in listing
    download = client.get(reverse("export-download", args=[slug, job.pk]))
    assert download["Content-Disposition"].startswith("attachment")
    rows = [json.loads(line) for line in b"".join(download.streaming_content).decode().splitlines()]
    assert [r["chosen_id"] for r in rows] == ["r0", "s1"]
    card = client.get(reverse("export-card", args=[slug, job.pk]))
    assert card["Content-Type"] == "text/plain; charset=utf-8"
    assert b"| rows written | 2 |" in b"".join(card.streaming_content)


def test_invalid_export_form_shows_the_error_and_queues_nothing(lab, client, owner):
    client.force_login(owner)
    resp = client.post(reverse("exports", args=[lab["project"].slug]), {"format": "raw", "file_format": "jsonl", "aggregate": "majority"})
    assert resp.status_code == 200
    assert "pairwise formats" in resp.content.decode()
    assert not ExportJob.objects.exists()


def test_an_active_export_is_polled_and_can_be_cancelled_from_the_page(lab, client, owner):
    client.force_login(owner)
    slug = lab["project"].slug
    job = exports.export_job_create(project=lab["project"], spec=ExportSpec(format="trl"))
    listing = client.get(reverse("export-jobs", args=[slug])).content.decode()
    assert 'hx-trigger="every 2s"' in listing and reverse("export-cancel", args=[slug, job.pk]) in listing
    assert client.post(reverse("export-cancel", args=[slug, job.pk])).status_code == 302
    job.refresh_from_db()
    assert job.status == ExportJob.Status.CANCELLED
    assert client.get(reverse("export-download", args=[slug, job.pk])).status_code == 404


def test_rest_export_runs_and_streams_the_file(lab, owner, celery_eager, django_capture_on_commit_callbacks):
    api = APIClient()
    api.force_authenticate(owner)
    slug = lab["project"].slug
    with django_capture_on_commit_callbacks(execute=True):
        resp = api.post(f"/api/v1/projects/{slug}/exports/", {"format": "trl-conversational", "aggregate": "dawid-skene"},
                        format="json")
    assert resp.status_code == 202, resp.content
    job_id = resp.json()["id"]
    detail = api.get(f"/api/v1/projects/{slug}/exports/{job_id}/").json()
    assert detail["status"] == "succeeded" and detail["download_url"] == f"/api/v1/projects/{slug}/exports/{job_id}/download/"
    assert detail["options"]["aggregate"] == "dawid-skene"
    download = api.get(detail["download_url"])
    assert download.status_code == 200
    assert json.loads(b"".join(download.streaming_content).splitlines()[0])["chosen"][0]["role"] == "assistant"
    assert api.get(detail["card_url"]).status_code == 200
    assert [j["id"] for j in api.get(f"/api/v1/projects/{slug}/exports/").json()] == [job_id]
    bad = api.post(f"/api/v1/projects/{slug}/exports/", {"format": "rankings", "criterion": "harmless"}, format="json")
    assert bad.status_code == 400 and "pairwise formats" in bad.content.decode()


@pytest.mark.parametrize(("who", "refused"), [("annotator", 403), ("outsider", 404)])
def test_annotators_get_403_and_outsiders_404_for_every_export_page_and_endpoint(lab, owner, request, who, refused,
                                                                                  celery_eager, client):
    """A member is told the page is not for them; an outsider sees a missing project."""
    slug = lab["project"].slug
    job = exports.export_job_create(project=lab["project"], spec=ExportSpec(format="trl"))
    exports.export_job_run(job_id=job.pk)
    user = request.getfixturevalue(who)
    client.force_login(user)
    api = APIClient()
    api.force_authenticate(user)
    pages = [
        ("get", reverse("exports", args=[slug])),
        ("post", reverse("exports", args=[slug])),
        ("get", reverse("export-jobs", args=[slug])),
        ("post", reverse("export-cancel", args=[slug, job.pk])),
        ("get", reverse("export-download", args=[slug, job.pk])),
        ("get", reverse("export-card", args=[slug, job.pk])),
        ("get", reverse("export-detail", args=[slug, job.pk])),
    ]
    for method, url in pages:
        assert getattr(client, method)(url, {"format": "trl"} if method == "post" else None).status_code == refused, url
    endpoints = [
        ("get", f"/api/v1/projects/{slug}/exports/"),
        ("post", f"/api/v1/projects/{slug}/exports/"),
        ("get", f"/api/v1/projects/{slug}/exports/{job.pk}/"),
        ("get", f"/api/v1/projects/{slug}/exports/{job.pk}/download/"),
        ("get", f"/api/v1/projects/{slug}/exports/{job.pk}/card/"),
    ]
    for method, url in endpoints:
        assert getattr(api, method)(url, {"format": "trl"} if method == "post" else None,
                                    format="json").status_code == refused, url
    assert ExportJob.objects.count() == 1
    job.refresh_from_db()
    assert job.status == ExportJob.Status.SUCCEEDED


def test_another_projects_export_is_not_reachable_through_mine(lab, owner, other_project, client):
    theirs = exports.export_job_create(project=other_project, spec=ExportSpec(format="trl"))
    exports.export_job_run(job_id=theirs.pk)
    client.force_login(owner)
    for name in ("export-download", "export-detail"):
        assert client.get(reverse(name, args=[lab["project"].slug, theirs.pk])).status_code == 404, name


def test_sweep_fails_a_stale_running_export_and_removes_its_partial_files(lab, settings):
    from django.utils import timezone

    job = exports.export_job_create(project=lab["project"], spec=ExportSpec(format="trl"))
    stale = timezone.now() - timezone.timedelta(hours=1)
    ExportJob.objects.filter(pk=job.pk).update(status=ExportJob.Status.RUNNING, heartbeat_at=stale)
    partial = Path(settings.EXPORT_DIR) / lab["project"].slug / f".export-{job.pk}.part-abc"
    partial.mkdir(parents=True)
    (partial / "trl.jsonl").write_text("{}\n")
    assert exports.export_jobs_sweep() == 1
    job.refresh_from_db()
    assert job.status == ExportJob.Status.FAILED and not partial.exists()


# --- Dawid-Skene on real multi-annotator data ----------------------------------------------


@pytest.mark.shared_data
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")  # crowd-kit 1.4 on pandas 3.1
def test_dawid_skene_exports_an_inferred_answer_that_no_label_of_the_comparison_gave(project, shared_data, tmp_path):
    """summarize batch13: Dawid-Skene overrules the lone annotator of some comparisons
    (it trusts their estimated confusion more than their label). Those comparisons are
    exported with the inferred answer, agreement 0, and counted on the card."""
    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    from dataio.imports.services import import_file
    from annotate.models import ImportJob

    job = import_file(project=project, format="summarize", path=shared_data / "summarize-from-feedback" / "batch13.json")
    assert job.status == ImportJob.Status.SUCCEEDED, job.error

    res = _export(project, tmp_path, format="trl", aggregate="dawid-skene")
    rows = _jsonl(res.data_path)

    labels = list(Judgment.objects.filter(comparison__project=project).values_list("comparison_id", "annotator_id", "choice"))
    inferred = DawidSkene(n_iter=100).fit_predict(pd.DataFrame(labels, columns=["task", "worker", "label"]))
    votes: dict[int, list[str]] = {}
    for comparison_id, _, choice in labels:
        votes.setdefault(comparison_id, []).append(choice)
    comparisons = Comparison.objects.filter(project=project).select_related("prompt", "response_a", "response_b")
    expected, unvoted = {}, set()
    for c in comparisons:
        answer = inferred[c.pk]
        if answer not in ("A", "B"):
            continue
        chosen, rejected = (c.response_a, c.response_b) if answer == "A" else (c.response_b, c.response_a)
        key = (c.prompt.external_id, chosen.external_id, rejected.external_id)
        expected[key] = (len(votes[c.pk]), votes[c.pk].count(answer) / len(votes[c.pk]))
        if answer not in votes[c.pk]:
            unvoted.add(key)

    got = {(r["prompt_id"], r["chosen_id"], r["rejected_id"]): (r["n_labels"], r["agreement"]) for r in rows}
    assert len(got) == len(rows) == res.rows  # one row per comparison
    assert got == expected  # chosen/rejected follow the inferred answer; agreement is its share of the labels
    assert len(unvoted) >= 10  # 14 with crowd-kit 1.4; none of these is a comparison's majority
    assert unvoted <= set(got) and all(got[k][1] == 0 for k in unvoted)
    assert res.counts["inferred_unvoted_items"] == len(unvoted)
    assert res.counts["items"] == comparisons.count() == 905
    excluded = sum(v for k, v in res.counts.items() if k.startswith("excluded_") and k.endswith("_items"))
    assert res.rows + excluded == res.counts["items"]
    # the rows' texts are the comparison's responses
    by_id = {(r.prompt.external_id, r.external_id): r.text for r in Response.objects.filter(prompt__project=project).select_related("prompt")}
    assert all(r["chosen"] == by_id[(r["prompt_id"], r["chosen_id"])] and r["rejected"] == by_id[(r["prompt_id"], r["rejected_id"])] for r in rows)
