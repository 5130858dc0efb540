"""The annotator's two API requests, whole (token auth, access check, service,
payload), run a fixed few statements (issue 19 point 2; benchmarks/profile_requests.py
measures their CPU). Before: a next-task request ran 12 statements on PostgreSQL
(the payload read the rubric version, its rubric, its criteria, the comparison,
both responses and the prompt one by one, and the access check read the project
and the role apart) and a submit 5 (the assignment was read, then read again to
lock it).

Transactional tests, so no test-level savepoints add to the counts; BEGIN and
COMMIT are not counted (SQLite logs them, PostgreSQL does not)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from annotate.models import Judgment
from tests.factories import fill, pin_rubric

pytestmark = pytest.mark.django_db(transaction=True)

# PostgreSQL: next = token, project with role, member lock, the lease statement, the
# payload; submit = token, lock, and one statement that inserts the label, closes
# the lease and counts it (annotate.compiled.CompiledInsert). SQLite runs the lease
# and the insert, close and tally as separate statements (see test_lease_queries.py).
PG = {"next": 5, "submit": 3}
SQLITE = {"next": 9, "submit": 5}
TRANSACTION = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT")


def _statements(captured) -> int:
    return sum(1 for q in captured.captured_queries if not q["sql"].startswith(TRANSACTION))


def _api(user) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")


def test_next_task_and_submit_run_a_fixed_few_statements_with_a_rubric(project, annotator):
    pin_rubric(project, criteria=[{"key": "clear", "name": "Clarity", "scale": "pairwise"},
                                  {"key": "safe", "name": "Safety", "scale": "pairwise"}])
    fill(project, prompts=6, responses=2)
    api = _api(annotator)
    budget = PG if connection.vendor == "postgresql" else SQLITE
    counts = []
    for i in range(3):  # the first cycle reads the published rubric's criteria once for the process
        with CaptureQueriesContext(connection) as nxt:
            task = api.post(f"/api/v1/projects/{project.slug}/tasks/next/", {"kind": "pairwise"},
                            content_type="application/json")
        assert task.status_code == 200, task.content
        body = task.json()
        assert [c["key"] for c in body["criteria"]] == ["clear", "safe"]
        assert body["rubric_version"]["rubric"] == f"R {project.slug}" and len(body["responses"]) == 2
        with CaptureQueriesContext(connection) as sub:
            done = api.post(f"/api/v1/tasks/{body['assignment']}/submit/",
                            {"preference": -1, "criteria": {"clear": "A", "safe": "tie"}, "idempotency_key": f"k{i}"},
                            content_type="application/json")
        assert done.status_code == 200, done.content
        assert done.json()["kind"] == "pairwise" and done.json()["assignment"] == body["assignment"]
        counts.append((_statements(nxt), _statements(sub)))
    assert counts[1] == counts[2], counts
    assert counts[2][0] <= budget["next"] and counts[2][1] <= budget["submit"], counts
    assert Judgment.objects.filter(annotator=annotator).count() == 3


def test_submitting_a_missing_or_someone_elses_task_is_the_same_404_and_stores_nothing(project, annotator, outsider):
    fill(project, prompts=2, responses=2)
    mine = _api(annotator).post(f"/api/v1/projects/{project.slug}/tasks/next/", {"kind": "pairwise"},
                                content_type="application/json").json()["assignment"]
    answer = {"preference": 1}
    stranger = _api(outsider).post(f"/api/v1/tasks/{mine}/submit/", answer, content_type="application/json")
    missing = _api(annotator).post("/api/v1/tasks/999999/submit/", answer, content_type="application/json")
    assert stranger.status_code == missing.status_code == 404
    assert stranger.content == missing.content
    assert not Judgment.objects.exists()
