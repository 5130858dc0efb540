"""The project page's figures come from the maintained tallies (issue #19 point 3):
prompts, responses, comparisons (gold included) and, per kind, the labels of every
source (human, imported, model, adjudicated, derived; people's gold answers too)
with how many were derived — the very figures of rubrics' ``label_counts``, the
one definition — in a fixed number of queries that count no label."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotate import counters, derived, queue, submit
from annotate.models import Comparison, Judgment, LabelSource, Prompt, Ranking, Rating, Response, TaskKind
from dataio.imports import services as imports
from quality import review
from quality.models import ReviewItem
from rubrics.models import label_counts
from tests.conftest import make_user
from tests.factories import annotators, fill, make_gold, pin_rubric

pytestmark = pytest.mark.django_db

HELPFUL = {"key": "helpful", "name": "Helpful", "scale": "likert", "min": 0, "max": 4,
           "anchors": {"0": "useless", "4": "perfect"}}
STAT = re.compile(r'<div(?: id="stat-(\w+)")?><b>(\d+)</b><span>([^<]*)</span></div>')


def _page_figures(client, project) -> dict:
    """The figures as the page shows them: prompts, responses, comparisons, and per
    label relation its total and the derived count named in brackets."""
    html = client.get(f"/p/{project.slug}/").content.decode()
    shown = {}
    for stat, number, words in STAT.findall(html):
        if stat:
            derived_n = re.search(r"\((\d+) derived\)", words)
            shown[stat] = {"total": int(number), "derived": int(derived_n.group(1)) if derived_n else 0}
        else:
            shown[words.rstrip("s")] = int(number)
    return {"prompts": shown["prompt"], "responses": shown["response"], "comparisons": shown["comparison"],
            **{name: shown[name] for name in ("judgments", "ratings", "rankings")}}


def _truth(project) -> dict:
    return {
        "prompts": Prompt.objects.filter(project=project).count(),
        "responses": Response.objects.filter(prompt__project=project).count(),
        "comparisons": Comparison.objects.filter(project=project).count(),
        **label_counts(projects=[project]),
    }


def _assert_page_agrees(client, project) -> dict:
    truth = _truth(project)
    assert counters.project_figures(project=project) == truth
    assert _page_figures(client, project) == truth
    assert counters.tallies_equal_recount(project=project)
    return truth


def _import_pairs(project, tmp_path) -> None:
    """Two prompts of three responses with two labellers' answers: imported labels
    (an import ends with the reconcile)."""
    rows = [{"id": f"imp{i}", "prompt": f"imported question {i}", "responses": ["one", "two", "three"],
             "labels": [{"annotator": "ext-1", "a": 0, "b": 1, "choice": "A"},
                        {"annotator": "ext-2", "a": 1, "b": 2, "choice": "B"}]} for i in range(2)]
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    job = imports.import_file(project=project, format="jsonl", path=path)
    assert job.status == "succeeded", job.error


@pytest.fixture
def every_source(project, owner, tmp_path):
    """A project with labels of every source, gold answers among them. What no
    service writes (model labels; imported ratings and rankings, which the generic
    import has no field for) is written first and counted by the reconcile, as an
    import's own end does; everything after it goes through the services and must
    keep the tallies exact by itself."""
    project.task_kinds = ["pairwise", "rating", "ranking"]
    project.save(update_fields=["task_kinds"])
    pin_rubric(project, criteria=[HELPFUL])
    version = project.rubric_version
    prompts = fill(project, prompts=3, responses=3)
    gold = make_gold(project, 2)  # two of p0's pairs
    _import_pairs(project, tmp_path)

    bot, ext = make_user("some-model"), make_user("ext-3")
    first = prompts[0]
    p0_responses = list(Response.objects.filter(prompt=first).order_by("id"))
    for n, response in enumerate(p0_responses):  # every p0 pair derivable, gold ones included
        Rating.objects.create(response=response, annotator=ext, scores={"helpful": n}, rubric_version=version,
                              source=LabelSource.IMPORTED)
    Judgment.objects.create(comparison=gold[0], annotator=ext, choice="A", source=LabelSource.IMPORTED)
    Judgment.objects.create(comparison=gold[1], annotator=bot, choice="B", source=LabelSource.MODEL)
    plain = Comparison.objects.filter(project=project, is_gold=False).order_by("id").first()
    Judgment.objects.create(comparison=plain, annotator=bot, choice="A", source=LabelSource.MODEL)
    Rating.objects.create(response=p0_responses[0], annotator=bot, scores={"helpful": 1}, source=LabelSource.MODEL)
    Ranking.objects.create(prompt=first, annotator=bot, groups=[[r.pk] for r in p0_responses],
                           source=LabelSource.MODEL)
    Ranking.objects.create(prompt=first, annotator=ext, groups=[[r.pk] for r in p0_responses],
                           source=LabelSource.IMPORTED)
    counters.counters_reconcile(project=project)

    # through the services from here on
    crew = annotators(project, 2)
    project.gold_rate = 1.0
    project.save(update_fields=["gold_rate"])
    for person in crew:  # one gold answer each
        a = queue.assignment_lease(project=project, annotator=person, kind=TaskKind.PAIRWISE)
        assert a.comparison.is_gold
        submit.judgment_submit(assignment=a, user=person, preference=-1, time_on_task_ms=900)
    project.gold_rate = 0.0
    project.save(update_fields=["gold_rate"])
    for person in crew:
        for _ in range(2):
            a = queue.assignment_lease(project=project, annotator=person, kind=TaskKind.PAIRWISE)
            submit.judgment_submit(assignment=a, user=person, preference=2, time_on_task_ms=1200)
        a = queue.assignment_lease(project=project, annotator=person, kind=TaskKind.RATING)
        submit.rating_submit(assignment=a, user=person, scores={"helpful": 3})
        a = queue.assignment_lease(project=project, annotator=person, kind=TaskKind.RANKING)
        ids = list(Response.objects.filter(prompt=a.prompt).values_list("id", flat=True))
        submit.ranking_submit(assignment=a, user=person, groups=[[i] for i in ids])
    derived.derived_judgments_refresh(project=project)
    items = [ReviewItem.objects.create(project=project, comparison=c)
             for c in Comparison.objects.filter(project=project, is_gold=False).order_by("id")[:2]]
    for item in items:
        review.review_item_adjudicate(item=item, user=owner, choice="B", strength=2)
    return {"project": project, "crew": crew, "items": items}


def test_the_project_page_shows_label_counts_figures_from_the_tallies(every_source, client, owner):
    project = every_source["project"]
    client.force_login(owner)
    truth = _assert_page_agrees(client, project)

    # every source is there, and people's gold answers count in the totals
    sources = set(Judgment.objects.filter(comparison__project=project).values_list("source", flat=True))
    assert sources == set(LabelSource.values)
    assert Judgment.objects.filter(comparison__project=project, comparison__is_gold=True,
                                   source__in=("human", "imported")).count() == 3
    assert Judgment.objects.filter(comparison__project=project, comparison__is_gold=True,
                                   source="derived").exists()
    assert truth["judgments"]["derived"] == 3  # p0's pairs, its two gold ones among them
    assert truth["ratings"]["total"] == 3 + 1 + 2 and truth["rankings"]["total"] == 2 + 2
    # progress still counts people's labels on non-gold units only
    pairwise = counters.project_tallies(project=project)["kinds"][TaskKind.PAIRWISE]
    assert pairwise["labels"] == 4 and pairwise["imported"] == 4


def test_the_figures_hold_after_a_derived_rewrite_and_an_adjudication_redo(every_source, client, owner):
    project, crew, (first, second) = every_source["project"], every_source["crew"], every_source["items"]
    client.force_login(owner)
    before = _assert_page_agrees(client, project)["judgments"]

    for _ in range(3):  # more rated responses: more pairs to derive from
        a = queue.assignment_lease(project=project, annotator=crew[0], kind=TaskKind.RATING)
        submit.rating_submit(assignment=a, user=crew[0], scores={"helpful": 1})
    assert derived.derived_judgments_refresh(project=project)["derived"] > before["derived"]
    rewritten = _assert_page_agrees(client, project)["judgments"]
    assert rewritten["derived"] > before["derived"] and rewritten["total"] > before["total"]
    derived.derived_judgments_refresh(project=project)  # the same rewrite again changes no figure
    assert _assert_page_agrees(client, project)["judgments"] == rewritten

    review.review_item_adjudicate(item=first, user=owner, choice="A", strength=-1)  # replaces the first
    assert _assert_page_agrees(client, project)["judgments"] == rewritten
    review.review_item_request_labels(item=second, user=owner, extra=1)  # withdraws the second
    review.review_item_mark_ambiguous(item=first, user=owner)  # and the first
    assert _assert_page_agrees(client, project)["judgments"]["total"] == rewritten["total"] - 2
    review.review_item_adjudicate(item=second, user=owner, choice="tie", strength=0)
    assert _assert_page_agrees(client, project)["judgments"]["total"] == rewritten["total"] - 1
    assert counters.counters_reconcile(project=project) == {"wrong": 0}


def _page_queries(client, project) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(f"/p/{project.slug}/").status_code == 200
    return [q["sql"] for q in ctx.captured_queries]


def test_the_project_page_runs_the_same_queries_at_one_label_and_at_many(
        project, owner, annotator, client, django_assert_max_num_queries):
    fill(project, prompts=2, responses=3)
    a = queue.assignment_lease(project=project, annotator=annotator)
    submit.judgment_submit(assignment=a, user=annotator, preference=1)
    client.force_login(owner)
    _page_queries(client, project)  # sessions and caches warm
    one = _page_queries(client, project)

    many = annotators(project, 40, prefix="bulk")
    pairs = list(Comparison.objects.filter(project=project))
    Judgment.objects.bulk_create([Judgment(comparison=c, annotator=u, choice="A", source=src)
                                  for c in pairs for u, src in zip(many, ["human", "imported", "derived"] * 14)])
    counters.counters_reconcile(project=project)
    assert label_counts(projects=[project])["judgments"]["total"] == 1 + 40 * len(pairs)
    with django_assert_max_num_queries(len(one)):
        more = _page_queries(client, project)
    assert len(more) == len(one)
    for sql in more:  # no count over the labels: the page reads no label table at all
        assert not re.search(r"\bannotate_(judgment|rating|ranking)\b", sql), sql
    assert _page_figures(client, project)["judgments"] == label_counts(projects=[project])["judgments"]
