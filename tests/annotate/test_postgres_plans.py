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

