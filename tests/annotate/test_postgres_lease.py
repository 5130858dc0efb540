"""One annotator's concurrent requests on PostgreSQL (issue 18 point 9): the cap
and "one live lease" hold inside the lease transaction, under the lock on the
annotator's membership row. Each thread is a request on its own connection."""

from __future__ import annotations

import pytest

from annotate import counters, queue, submit
from annotate.models import Assignment, Judgment, Membership

from tests.annotate.test_postgres import _run_in_threads
from tests.factories import annotators, fill

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_six_concurrent_next_task_calls_under_a_cap_of_one_hand_out_one_task(postgres, project, annotator):
    project.max_tasks_per_annotator = 1
    project.save()
    fill(project, prompts=10)

    def request():
        a = queue.assignment_lease(project=project, annotator=annotator)
        if a is not None:
            submit.judgment_submit(assignment=a, user=annotator, preference=1)
        return a and a.pk

    got = _run_in_threads(*[request] * 6)

    assert Assignment.objects.filter(annotator=annotator).count() == 1
    assert Judgment.objects.filter(annotator=annotator).count() == 1
    assert {pk for pk in got if pk} == {Assignment.objects.get(annotator=annotator).pk}
    assert queue.assignment_lease(project=project, annotator=annotator) is None
    assert Membership.objects.get(project=project, user=annotator).served_count == 1


def test_concurrent_double_requests_never_hold_two_live_leases(postgres, project):
    """Two threads per annotator drain the queue together (lease, submit, repeat).
    Right after each lease, the annotator holds one live lease, never two; both
    threads' work adds up to exact overlap."""
    project.overlap = 2
    project.save()
    fill(project, prompts=30)
    users = annotators(project, 6, prefix="twin")
    most_live: dict[str, int] = {}

    def drain(user):
        def run():
            n = 0
            while (a := queue.assignment_lease(project=project, annotator=user)) is not None:
                live = Assignment.objects.filter(annotator=user, state="active").count()
                most_live[user.username] = max(most_live.get(user.username, 0), live)
                submit.judgment_submit(assignment=a, user=user, preference=-1, idempotency_key=f"{user.pk}-{a.pk}")
                n += 1
            return n
        return run

    _run_in_threads(*[drain(u) for u in users for _ in range(2)])

    assert set(most_live.values()) == {1}, most_live
    assert not Assignment.objects.filter(project=project).exclude(state="submitted").exists()
    assert Judgment.objects.filter(comparison__project=project).count() == 30 * 2
    assert counters.tallies_equal_recount(project=project)
