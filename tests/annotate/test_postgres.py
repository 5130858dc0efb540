"""Behaviour under real concurrency, which only PostgreSQL shows honestly (SQLite
serialises every writer). Two imports of overlapping files racing into the same
project must not duplicate prompts, responses or comparisons, and two workers
handed the same job id must not both run it."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connection

from annotate import services
from annotate.models import Comparison, ImportJob, Judgment, Membership, Prompt, QueueSlot, Response
from dataio.imports import services as imports

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _run_in_threads(*funcs):
    errors, results = [], [None] * len(funcs)
    barrier = threading.Barrier(len(funcs))

    def wrap(i, f):
        try:
            barrier.wait(timeout=10)
            results[i] = f()
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrap, args=(i, f)) for i, f in enumerate(funcs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return results


def test_racing_imports_of_overlapping_files_do_not_duplicate(postgres, project, tmp_path):
    shared = [{"id": f"p{i}", "prompt": f"question {i}", "responses": [f"a{i}", f"b{i}", f"c{i}"]} for i in range(60)]
    first = shared + [{"id": "only-1", "prompt": "x", "responses": ["r1", "r2"],
                       "labels": [{"annotator": "ann-1", "a": 0, "b": 1, "choice": "A"}]}]
    second = shared + [{"id": "only-2", "prompt": "y", "responses": ["s1", "s2"],
                        "labels": [{"annotator": "ann-2", "a": 0, "b": 1, "choice": "B", "strength": 2}]}]
    f1, f2 = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    _write(f1, first)
    _write(f2, second)
    j1 = imports.import_job_create(project=project, format="jsonl", source_path=f1)
    j2 = imports.import_job_create(project=project, format="jsonl", source_path=f2)

    jobs = _run_in_threads(lambda: imports.import_job_run(job_id=j1.pk), lambda: imports.import_job_run(job_id=j2.pk))

    assert [j.status for j in jobs] == [ImportJob.Status.SUCCEEDED] * 2, [j.error for j in jobs]
    assert Prompt.objects.filter(project=project).count() == 62
    assert Response.objects.filter(prompt__project=project).count() == 60 * 3 + 4
    # imports create the labelled pairs; generation later fills the rest
    assert Comparison.objects.filter(project=project).count() == 2
    assert Judgment.objects.filter(comparison__project=project).count() == 2
    created = sorted(j.counts["prompts_created"] for j in jobs)
    assert created[0] + created[1] == 62 and created[0] in (1, 61)


def test_one_job_id_given_to_two_workers_runs_once(postgres, project, tmp_path):
    f = tmp_path / "data.jsonl"
    _write(f, [{"id": "p", "prompt": "q", "responses": ["a", "b"],
                "labels": [{"annotator": "ann", "a": 0, "b": 1, "choice": "tie"}]}])
    job = imports.import_job_create(project=project, format="jsonl", source_path=f)

    results = _run_in_threads(lambda: imports.import_job_run(job_id=job.pk), lambda: imports.import_job_run(job_id=job.pk))

    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED
    assert Judgment.objects.filter(comparison__project=project).count() == 1
    # exactly one of the two calls claimed the job and wrote the counts
    assert sum(1 for r in results if r.counts) >= 1
    assert Prompt.objects.filter(project=project).count() == 1


def test_32_concurrent_annotators_drain_100_comparisons_with_overlap_3(postgres, project):
    """Exact overlap under real concurrency: 300 labels, no duplicates, nothing
    over quota; every annotator also double-submits each answer."""
    from annotate import queue, submit
    from annotate.models import Assignment, Comparison

    from tests.factories import annotators

    project.overlap = 3
    project.save()
    for i in range(100):
        p = Prompt.objects.create(project=project, external_id=f"p{i}", conversation=[{"role": "user", "content": "q"}])
        Response.objects.bulk_create([Response(prompt=p, external_id=e, text=e) for e in ("a", "b")])
    services.comparisons_generate(project=project)
    assert Comparison.objects.filter(project=project).count() == 100
    users = annotators(project, 32)

    def drain(user):
        def run():
            done = 0
            while (a := queue.assignment_lease(project=project, annotator=user)) is not None:
                key = f"{user.pk}-{a.pk}"
                first = submit.judgment_submit(assignment=a, user=user, preference=1, idempotency_key=key)
                again = submit.judgment_submit(assignment=a, user=user, preference=1, idempotency_key=key)
                assert first.pk == again.pk
                done += 1
            return done
        return run

    done = _run_in_threads(*[drain(u) for u in users])

    judgments = Judgment.objects.filter(comparison__project=project)
    assert sum(done) == 300 == judgments.count()
    pairs = list(judgments.values_list("comparison_id", "annotator_id"))
    assert len(set(pairs)) == 300
    from collections import Counter

    per_comparison = Counter(c for c, _ in pairs)
    assert set(per_comparison.values()) == {3} and len(per_comparison) == 100
    assert not Assignment.objects.filter(project=project, state="active").exists()
    assert set(QueueSlot.objects.filter(project=project).values_list("open_slots", flat=True)) == {0}
    # the tallies kept in each transaction equal a recount from the raw rows
    from annotate import counters

    assert counters.tallies_equal_recount(project=project)
    assert counters.counters_reconcile(project=project) == {"wrong": 0}  # served counts included
    assert sum(r["labels"] for r in counters.project_tallies(project=project)["kinds"].values()) == 300
    served = dict(Membership.objects.filter(project=project).values_list("user__username", "served_count"))
    assert {u.username: served[u.username] for u in users} == {u.username: d for u, d in zip(users, done)}
