"""Imports of real public preference data from ../shared/data."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest

from annotate.imports import services as imports
from annotate.models import Comparison, ImportJob, Judgment, LabelSource, Prompt, Response

pytestmark = [pytest.mark.django_db, pytest.mark.shared_data]


def _run(project, fmt, path):
    job = imports.import_file(project=project, format=fmt, path=path)
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    return job


def test_hh_rlhf_gives_one_comparison_and_one_imported_judgment_per_pair(project, shared_data):
    path = shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz"
    job = _run(project, "hh-rlhf", path)

    assert Comparison.objects.filter(project=project).count() == 2312
    assert Judgment.objects.filter(comparison__project=project).count() == 2312
    per_comparison = Counter(Judgment.objects.filter(comparison__project=project).values_list("comparison", flat=True))
    assert set(per_comparison.values()) == {1}
    assert set(Judgment.objects.values_list("source", flat=True)) == {LabelSource.IMPORTED}
    assert job.counts["comparisons_created"] == 2312

    # Check every row against the raw file: the prompt is the shared dialogue, the
    # responses are only the final assistant turns, and the label points at "chosen".
    rows = [json.loads(line) for line in gzip.open(path, "rt", encoding="utf-8")]
    prompts = {p.pk: p for p in Prompt.objects.filter(project=project)}
    texts = {r.pk: r.text for r in Response.objects.filter(prompt__project=project)}
    by_pair = {}
    for j in Judgment.objects.filter(comparison__project=project).select_related("comparison"):
        c = j.comparison
        chosen_id = c.response_a_id if j.choice == "A" else c.response_b_id
        rejected_id = c.response_b_id if j.choice == "A" else c.response_a_id
        by_pair[(texts[chosen_id], texts[rejected_id])] = prompts[c.prompt_id]
    simple = 0
    for row in rows:
        c_last = row["chosen"].rsplit("\n\nAssistant: ", 1)
        r_last = row["rejected"].rsplit("\n\nAssistant: ", 1)
        if c_last[0] != r_last[0]:
            continue  # the few dialogues that differ before the last turn
        simple += 1
        prompt = by_pair[(c_last[1], r_last[1])]
        rebuilt = "".join(
            f"\n\n{'Human' if t['role'] == 'user' else 'Assistant'}: {t['content']}" for t in prompt.conversation
        )
        assert rebuilt == c_last[0]
        assert prompt.conversation[-1]["role"] == "user"
    assert simple >= 2300
    # Only the few responses that carry later turns (flagged) contain a turn marker.
    single = Response.objects.filter(prompt__project=project).exclude(metadata__hh_multi_turn=True)
    assert not any("\n\nHuman: " in r.text or "\n\nAssistant: " in r.text for r in single)
    multi = Response.objects.filter(prompt__project=project, metadata__hh_multi_turn=True).count()
    assert 0 < multi <= 10


def test_hh_rlhf_reimport_adds_nothing(project, shared_data):
    path = shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz"
    _run(project, "hh-rlhf", path)
    before = (Prompt.objects.count(), Response.objects.count(), Comparison.objects.count(), Judgment.objects.count())
    job = _run(project, "hh-rlhf", path)
    after = (Prompt.objects.count(), Response.objects.count(), Comparison.objects.count(), Judgment.objects.count())
    assert after == before
    assert job.counts["prompts_created"] == 0 and job.counts["judgments_created"] == 0


def test_summarize_keeps_all_workers_labels_and_confidence(project, shared_data):
    path = shared_data / "summarize-from-feedback" / "batch13.json"
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    _run(project, "summarize", path)

    judgments = Judgment.objects.filter(comparison__project=project).select_related("annotator", "comparison")
    assert judgments.count() == 1097
    workers = {j.annotator.username.removeprefix("summarize.") for j in judgments}
    assert workers == {r["worker"] for r in rows}
    assert len(workers) == 27
    assert not any(j.annotator.is_active or j.annotator.has_usable_password() for j in judgments)

    # Each row's label, direction and confidence survive, whatever the canonical order.
    texts = {r.pk: r.text for r in Response.objects.filter(prompt__project=project)}
    stored = {}
    for j in judgments:
        a, b = texts[j.comparison.response_a_id], texts[j.comparison.response_b_id]
        preferred = a if j.choice == "A" else b
        stored[(j.annotator.username, frozenset((a, b)))] = (preferred, j.metadata["confidence"], j.strength)
    for r in rows:
        s0, s1 = r["summaries"][0]["text"], r["summaries"][1]["text"]
        preferred, confidence, strength = stored[(f"summarize.{r['worker']}", frozenset((s0, s1)))]
        assert preferred == (s0 if r["choice"] == 0 else s1)
        assert confidence == r["extra"]["confidence"]
        # Strength sign: negative favours canonical A.
        assert strength != 0 and abs(strength) <= 3

    # The 40 items judged by several workers are single comparisons with several labels.
    multi = Counter(judgments.values_list("comparison", flat=True))
    assert sum(1 for n in multi.values() if n > 1) == 40


def test_pandalm_three_labels_per_pair_with_ties(project, shared_data):
    path = shared_data / "pandalm" / "testset-v1.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    _run(project, "pandalm", path)

    assert Comparison.objects.filter(project=project).count() == 999
    per = Counter(Judgment.objects.filter(comparison__project=project).values_list("comparison", flat=True))
    assert len(per) == 999 and set(per.values()) == {3}
    expected_ties = sum(1 for r in rows for k in ("annotator1", "annotator2", "annotator3") if r[k] == 0)
    ties = Judgment.objects.filter(comparison__project=project, choice="tie")
    assert ties.count() == expected_ties > 0
    assert set(ties.values_list("strength", flat=True)) == {0}
    assert set(Judgment.objects.values_list("annotator__username", flat=True)) == {
        "pandalm.annotator1", "pandalm.annotator2", "pandalm.annotator3"
    }
    # Row 0: all three annotators preferred response2.
    first = rows[0]
    r2 = Response.objects.get(prompt__project=project, external_id=f"{first['idx']}:2")
    labels = Judgment.objects.filter(comparison__response_a=r2) | Judgment.objects.filter(comparison__response_b=r2)
    for j in labels:
        assert (j.comparison.response_a_id if j.choice == "A" else j.comparison.response_b_id) == r2.pk


def test_summarize_cnndm_with_empty_summaries_imports(project, shared_data):
    job = _run(project, "summarize", shared_data / "summarize-from-feedback" / "batch0_cnndm.json")
    assert job.counts["judgments_created"] == 437
    assert Response.objects.filter(prompt__project=project, text="").exists()


def test_import_upload_page_runs_through_celery(client, owner, project, shared_data, settings, django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from preflab.celery import app

    app.conf.task_always_eager = True
    try:
        client.force_login(owner)
        with open(shared_data / "pandalm" / "testset-v1.json", "rb") as fh:
            with django_capture_on_commit_callbacks(execute=True):
                resp = client.post(f"/p/{project.slug}/import/", {"format": "pandalm", "file": fh})
        assert resp.status_code == 302
        page = client.get(f"/p/{project.slug}/")
        html = page.content.decode()
        assert "succeeded" in html and "999 comparisons" in html
        assert Judgment.objects.filter(comparison__project=project).count() == 2997
    finally:
        app.conf.task_always_eager = False
