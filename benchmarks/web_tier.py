"""What the web tier's settings cost per request (issue #19 point 5): the database
connection around each request, and a worker's restart spread over max_requests.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/preflab_bench \\
        .venv/bin/python benchmarks/web_tier.py [--cycles 2000] [--starts 3]

1. Connection handling, as Django runs it around every request (request_started →
   one query → request_finished), --cycles times in a fresh process per mode:
   ``pool`` (preflab/settings.py's default: psycopg_pool, a health check per
   checkout), ``persistent`` (PREFLAB_DB_POOL_SIZE=0: one connection per thread
   kept 60 s, a health check per request) and ``new`` (no pool, CONN_MAX_AGE=0: a
   connection opened and closed per request). CPU is the process's own (all its
   threads, the pool's included); a new connection also starts a PostgreSQL
   backend process, whose CPU is not counted here.
2. A worker's start: CPU (user + system) of a process that imports
   preflab.wsgi and loads the URLconf, as a gunicorn worker does after its fork
   (preload_app off) before its first request; divided by max_requests
   (preflab/gunicorn.conf.py) it is the cost per request of recycling workers.

Prints a table, ends with one JSON line, writes benchmarks/results/web_tier.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _web  # noqa: E402

CYCLE = """
import json, os, sys, time
mode, n = sys.argv[1], int(sys.argv[2])
from django.conf import settings
import django
if mode == "new":
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0  # before the first connection reads it
django.setup()
from django.core.signals import request_finished, request_started
from django.db import connection

def cycle():
    request_started.send(sender=None)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    request_finished.send(sender=None)

for _ in range(50):
    cycle()
wall, cpu = time.perf_counter(), time.process_time()
for _ in range(n):
    cycle()
print(json.dumps({"cpu_ms": (time.process_time() - cpu) * 1000 / n, "wall_ms": (time.perf_counter() - wall) * 1000 / n,
                  "pool": bool(connection.settings_dict["OPTIONS"].get("pool")),
                  "conn_max_age": connection.settings_dict["CONN_MAX_AGE"]}))
"""

START = """
import preflab.wsgi
from django.urls import get_resolver
get_resolver().url_patterns
"""

POOL_SIZE = {"pool": "4", "persistent": "0", "new": "0"}


def _cycle(mode: str, cycles: int, env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", CYCLE, mode, str(cycles)], cwd=_web.REPO, capture_output=True, text=True,
                          env={**env, "PREFLAB_DB_POOL_SIZE": POOL_SIZE[mode]}, timeout=600)
    if done.returncode != 0:
        sys.exit(f"{mode}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _start_cpu_s(env: dict[str, str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", START], cwd=_web.REPO, capture_output=True, text=True, env=env, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"worker start: {done.stderr[-2000:]}")
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=2000, help="request cycles per connection mode (default 2000)")
    parser.add_argument("--starts", type=int, default=3, help="worker starts timed (default 3; the median is reported)")
    parser.add_argument("--out", type=Path, default=_web.REPO / "benchmarks" / "results" / "web_tier.json")
    args = parser.parse_args()

    _web.database_url_or_exit()
    with tempfile.TemporaryDirectory(prefix="preflab-bench-") as data_dir:
        env = _web.server_env(data_dir)
        _web.prepare(env)  # migrated, so the connection modes run against a real PrefLab database
        report = _web.report_header("web_tier")
        report["load_average_before"] = _web.load_average()
        modes = {mode: _cycle(mode, args.cycles, env) for mode in ("pool", "persistent", "new")}
        starts = sorted(_start_cpu_s(env) for _ in range(args.starts))
    max_requests = runpy.run_path(str(_web.REPO / "preflab" / "gunicorn.conf.py"))["max_requests"]
    start_s = starts[len(starts) // 2]
    report.update(
        cycles=args.cycles, connection={m: {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}
                                        for m, r in modes.items()},
        worker_start_cpu_s=round(start_s, 2), worker_start_cpu_s_all=[round(s, 2) for s in starts],
        max_requests=max_requests, worker_start_ms_per_request=round(start_s * 1000 / max_requests, 4),
        note="connection: CPU and wall time per request cycle of the Django process (PostgreSQL's side not counted); "
             "worker start: user+system CPU of a process importing preflab.wsgi and the URLconf",
    )
    print(f"\nconnection per request cycle ({args.cycles} cycles each; load average {report['load_average_before']})")
    print(f"{'mode':12}{'CPU ms':>9}{'wall ms':>9}")
    for mode, r in report["connection"].items():
        print(f"{mode:12}{r['cpu_ms']:>9}{r['wall_ms']:>9}")
    print(f"worker start: {start_s:.2f} s CPU (median of {args.starts}: {report['worker_start_cpu_s_all']}); "
          f"over max_requests={max_requests}: {report['worker_start_ms_per_request']} ms per request")
    _web.write_results(report, args.out)


if __name__ == "__main__":
    main()
