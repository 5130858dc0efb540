"""Web processes plan without merge joins (PostgreSQL; preflab/settings.py,
PREFLAB_DB_NO_MERGEJOIN, set by gunicorn's post_fork).

PostgreSQL estimates how far a merge join reads from the join column's histogram,
not from the index, so after the last ANALYZE of annotate_assignment saw only older
pairs' ids it believed a merge join with the comparison index stops almost at once;
for a lease in a newer project it walked the whole index instead (120–280 ms per
task payload and submit lock at 1.5M pairs; docs/performance.md). Reproducing that
plan needs the benchmark's scale; this checks that the web tier's connections are
the ones without merge joins and that other processes keep them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

pytestmark = [pytest.mark.services, pytest.mark.django_db]

REPO = Path(__file__).resolve().parents[2]


def test_gunicorn_workers_connect_without_merge_joins_and_others_keep_them(postgres):
    env = {k: v for k, v in os.environ.items() if k != "PREFLAB_DB_NO_MERGEJOIN"}
    env.setdefault("SECRET_KEY", "x" * 60)
    code = ("import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'preflab.settings'); django.setup(); "
            "from django.db import connection; c = connection.cursor(); c.execute('SHOW enable_mergejoin'); "
            "print(c.fetchone()[0])")
    # a process gunicorn forked: its post_fork sets the variable before Django loads
    fork = ("import runpy, os; conf = runpy.run_path('preflab/gunicorn.conf.py'); "
            "conf['post_fork'](type('S', (), {'cfg': type('C', (), {'threads': 4})()})(), None); " + code)
    db = connection.settings_dict
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env["PREFLAB_DB_POOL_SIZE"] = "0"

    def show(program: str) -> str:
        out = subprocess.run([sys.executable, "-c", program], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.strip().splitlines()[-1]

    assert show(fork) == "off"
    assert show(code) == "on"  # a worker's exports and reports keep merge joins


def _plan(query) -> str:
    sql, params = (query, None) if isinstance(query, str) else query.query.sql_with_params()
    with connection.cursor() as cur:
        cur.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cur.fetchall())


def test_gold_scores_start_from_the_gold_pairs_not_from_every_judgment(postgres, project, annotator, outsider):
    """The progress page's gold column and the pause rule after a gold answer read
    a project's gold pairs through ``comparison_gold_idx`` and then each one's
    judgments by key. Before the index they hashed every judgment of the project:
    60–99 ms per progress request at 1M judgments, most of it for projects with no
    gold at all (docs/performance.md)."""
    from django.db.models import Count, F, Q

    from annotate.models import Comparison, Judgment, Prompt, Response
    from django.test.utils import CaptureQueriesContext

    from annotate.queue import gold_scores
    from annotate.services import annotator_gold_check

    prompt = Prompt.objects.create(project=project, external_id="p", conversation=[{"role": "user", "content": "Q"}])
    responses = Response.objects.bulk_create(
        Response(prompt=prompt, external_id=f"r{i}", source="m", text=f"answer {i}") for i in range(80))
    ids = sorted(r.pk for r in responses)
    pairs = Comparison.objects.bulk_create(
        Comparison(project=project, prompt=prompt, response_a_id=a, response_b_id=b)
        for i, a in enumerate(ids) for b in ids[i + 1:])
    Comparison.objects.filter(pk__in=[c.pk for c in pairs[:6]]).update(is_gold=True, gold_choice="A")
    Judgment.objects.bulk_create(
        Judgment(comparison=c, annotator=who, source="human",
                 **({"choice": "A", "strength": -1} if (c.pk + who.pk) % 2 else {"choice": "B", "strength": 1}))
        for c in pairs for who in (annotator, outsider))
    with connection.cursor() as cur:
        cur.execute("ANALYZE annotate_comparison")
        cur.execute("ANALYZE annotate_judgment")
        cur.execute("SET enable_mergejoin = off")  # as the web tier plans
    progress = (Judgment.objects.filter(comparison__project=project, comparison__is_gold=True, source="human")
                .values("annotator_id", "annotator__username")
                .annotate(answered=Count("id"), correct=Count("id", filter=Q(choice=F("comparison__gold_choice")))))
    project.pause_below_gold_accuracy, project.pause_after_gold = 0.1, 100
    with CaptureQueriesContext(connection) as sent:
        assert annotator_gold_check(project=project, user=annotator) is False  # 6 answers: too few to judge
    [pause_rule] = [q["sql"] for q in sent.captured_queries if "annotate_judgment" in q["sql"]]
    for query in (progress, pause_rule):
        plan = _plan(query)
        assert "comparison_gold_idx" in plan, plan
        assert "Seq Scan on annotate_judgment" not in plan, plan
    assert [(g["answered"], g["accuracy"] is not None) for g in gold_scores(project=project)] == [(6, True), (6, True)]
    with connection.cursor() as cur:
        cur.execute("RESET enable_mergejoin")
