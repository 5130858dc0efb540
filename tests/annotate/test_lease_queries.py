"""A lean lease and submit (issue 19): a fixed, small number of queries whatever
the annotator's history, and the pages around them (work page, progress fragment)
as many queries at 10,000 prior labels as at one.

PostgreSQL runs the lease's pick, slot claim, served count and insert as one
statement and a submit's insert, close and tally as one; SQLite (no data-modifying CTEs)
runs the same steps as separate statements and logs BEGIN and COMMIT, so its
budgets are larger but just as fixed. Transactional tests, so no test-level savepoints add to the counts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from annotate import queue, slots, submit
from annotate.models import (
    Assignment, Comparison, Judgment, Prompt, QueueSlot, Ranking, RankingSlot, Rating, RatingSlot, Response, TaskKind,
)

from tests.factories import pin_rubric

pytestmark = pytest.mark.django_db(transaction=True)

# Statements, not counting the BEGIN and COMMIT that Django also logs (one transaction
# each). Before issue 19 a PostgreSQL lease ran 7 and a submit 7; the submit is the
# lock and one statement that stores the label, closes the lease and counts it.
PG = {"lease": 2, "submit": 2}
SQLITE = {"lease": 6, "submit": 4}
TRANSACTION = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT")


def _budget(what: str) -> int:
    return (PG if connection.vendor == "postgresql" else SQLITE)[what]


def _statements(captured) -> int:
    return sum(1 for q in captured.captured_queries if not q["sql"].startswith(TRANSACTION))


def _pool(project, n_prompts: int) -> list[int]:
    """n_prompts prompts with three responses and their three pairs, bulk-written,
    all in the queue; returns the pairs' ids."""
    start = Prompt.objects.count()
    prompts = Prompt.objects.bulk_create(
        [Prompt(project=project, external_id=f"p{start + i}", conversation=[{"role": "user", "content": "q"}])
         for i in range(n_prompts)])
    responses = Response.objects.bulk_create(
        [Response(prompt=p, external_id=f"r{j}", text=f"answer {j}") for p in prompts for j in range(3)])
    by_prompt: dict[int, list[int]] = {}
    for r in responses:
        by_prompt.setdefault(r.prompt_id, []).append(r.pk)
    pairs = Comparison.objects.bulk_create(
        [Comparison(project=project, prompt_id=pid, response_a_id=a, response_b_id=b)
         for pid, (x, y, z) in by_prompt.items() for a, b in ((x, y), (x, z), (y, z))])
    slots.queue_slots_open(project=project, kind=TaskKind.PAIRWISE, units=[(c.pk, c.prompt_id) for c in pairs])
    slots.queue_slots_open(project=project, kind=TaskKind.RATING, units=[(r.pk, r.prompt_id) for r in responses])
    slots.queue_slots_open(project=project, kind=TaskKind.RANKING, units=[(p.pk, p.pk) for p in prompts])
    return [c.pk for c in pairs]


def _history(project, annotator, comparison_ids: list[int]) -> None:
    """Prior labels of this annotator (their pairs full, as overlap 1 leaves them)."""
    Judgment.objects.bulk_create(
        [Judgment(comparison_id=c, annotator=annotator, choice="A", strength=-1, source="human")
         for c in comparison_ids], batch_size=2000)
    QueueSlot.objects.filter(pk__in=comparison_ids).update(open_slots=0)


def _cycle(project, annotator, key: str) -> tuple[int, int]:
    """One lease and one submit; returns the statements each ran."""
    with CaptureQueriesContext(connection) as lease_q:
        a = queue.assignment_lease(project=project, annotator=annotator)
    assert a is not None and a.state == Assignment.State.ACTIVE
    with CaptureQueriesContext(connection) as submit_q:
        submit.judgment_submit(assignment=a, user=annotator, preference=2, criteria={"clear": "A"},
                               time_on_task_ms=1500, idempotency_key=key)
    return _statements(lease_q), _statements(submit_q)


def test_lease_and_submit_run_a_fixed_few_queries_at_1_and_at_10000_prior_labels(
        project, annotator, django_assert_max_num_queries):
    pin_rubric(project, criteria=[{"key": "clear", "name": "Clarity", "scale": "pairwise"}])
    project.max_tasks_per_annotator = 50_000  # a cap set: counted from served_count, not recounted
    project.save()
    ids = _pool(project, 3400)  # 10,200 pairs
    _history(project, annotator, ids[:1])
    _cycle(project, annotator, "warm")  # a process reads a published rubric's criteria once
    small = _cycle(project, annotator, "k1")
    _history(project, annotator, ids[-9_999:])
    assert Judgment.objects.filter(annotator=annotator).count() >= 10_000
    large = _cycle(project, annotator, "k2")
    assert small == large, (small, large)
    assert large[0] <= _budget("lease") and large[1] <= _budget("submit"), large
    with django_assert_max_num_queries(_budget("lease") + 2):  # + BEGIN, COMMIT
        a = queue.assignment_lease(project=project, annotator=annotator)
    with django_assert_max_num_queries(_budget("submit") + 2):
        submit.judgment_submit(assignment=a, user=annotator, preference=0, criteria={"clear": "tie"},
                               idempotency_key="k3")
    assert Judgment.objects.get(idempotency_key="k3").assignment_id == a.pk


def test_the_work_page_and_the_progress_fragment_cost_the_same_at_10000_labels(project, annotator, owner):
    ids = _pool(project, 3400)
    _history(project, annotator, ids[:1])
    web, researcher = Client(), Client()
    web.force_login(annotator)
    researcher.force_login(owner)

    def costs() -> tuple[int, int]:
        Assignment.objects.filter(annotator=annotator, state="active").delete()  # a fresh lease each time
        with CaptureQueriesContext(connection) as work:
            assert web.get(f"/p/{project.slug}/work/pairwise/").status_code == 200
        with CaptureQueriesContext(connection) as fragment:
            assert researcher.get(f"/p/{project.slug}/progress/", HTTP_HX_REQUEST="true").status_code == 200
        return len(work), len(fragment)

    costs()
    small = costs()
    _history(project, annotator, ids[-9_999:])
    assert costs() == small
    assert small[1] <= 12, small


def _unit_history(project, annotator, kind: str, n: int) -> None:
    """n more prior labels of ``kind`` by this annotator, on the last units they have
    not labelled (their slots full)."""
    if kind == TaskKind.RATING:
        ids = list(Response.objects.filter(prompt__project=project).exclude(ratings__annotator=annotator)
                   .order_by("-id").values_list("pk", flat=True)[:n])
        Rating.objects.bulk_create([Rating(response_id=i, annotator=annotator, scores={"helpful": 2}, source="human")
                                    for i in ids], batch_size=2000)
        RatingSlot.objects.filter(pk__in=ids).update(open_slots=0)
    else:
        ids = list(Prompt.objects.filter(project=project).exclude(rankings__annotator=annotator)
                   .order_by("-id").values_list("pk", flat=True)[:n])
        Ranking.objects.bulk_create([Ranking(prompt_id=i, annotator=annotator, groups=[], source="human")
                                     for i in ids], batch_size=2000)
        RankingSlot.objects.filter(pk__in=ids).update(open_slots=0)


def _unit_cycle(project, annotator, kind: str, key: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as lease_q:
        a = queue.assignment_lease(project=project, annotator=annotator, kind=kind)
    assert a is not None and a.kind == kind and a.state == Assignment.State.ACTIVE
    with CaptureQueriesContext(connection) as submit_q:
        if kind == TaskKind.RATING:
            submit.rating_submit(assignment=a, user=annotator, scores={"helpful": 3}, idempotency_key=key)
        else:
            ids = sorted(Response.objects.filter(prompt_id=a.prompt_id).values_list("pk", flat=True))
            submit.ranking_submit(assignment=a, user=annotator, groups=[[i] for i in ids], idempotency_key=key)
    return _statements(lease_q), _statements(submit_q)


@pytest.mark.parametrize("kind", [TaskKind.RATING, TaskKind.RANKING])
def test_rating_and_ranking_leases_run_as_few_queries_as_pairwise_at_10000_prior_labels(
        project, annotator, kind, django_assert_max_num_queries):
    pin_rubric(project, criteria=[{"key": "helpful", "name": "Helpful", "scale": "likert", "min": 0, "max": 4}])
    project.task_kinds = ["pairwise", kind]
    project.max_tasks_per_annotator = 50_000
    project.save()
    _pool(project, 3_400 if kind == TaskKind.RATING else 10_010)  # over 10,000 units of the kind
    _unit_history(project, annotator, kind, 1)
    _unit_cycle(project, annotator, kind, "warm")
    small = _unit_cycle(project, annotator, kind, "k1")
    _unit_history(project, annotator, kind, 10_000)
    large = _unit_cycle(project, annotator, kind, "k2")
    assert small == large, (small, large)
    assert large[0] <= _budget("lease"), large
    with django_assert_max_num_queries(_budget("lease") + 2):  # + BEGIN, COMMIT
        a = queue.assignment_lease(project=project, annotator=annotator, kind=kind)
    assert a is not None and a.kind == kind
