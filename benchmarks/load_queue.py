"""The annotation queue under load, over HTTP (issue #19: a lease p95 ≤ 25 ms and
≥ 500 submits/s with zero loss, at 1M open comparisons and 64 annotators).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/preflab_bench \\
        .venv/bin/python benchmarks/load_queue.py --pairs 1000000 --annotators 64 --seconds 60 [--think-s 3]

Builds a pairwise project of --pairs open comparisons with COPY (in DATABASE_URL,
PostgreSQL only; the database is created and migrated when missing; a project of
the same size is reused and reset), starts gunicorn on 127.0.0.1 exactly as the
Dockerfile's CMD runs it (preflab/gunicorn.conf.py; --worker-class, --workers and
--threads override it to compare), DEBUG off, plain HTTP, and drives --annotators API
clients, one thread and one kept-alive connection each, for --seconds:

    POST /api/v1/projects/<slug>/tasks/next/  →  think  →  POST /api/v1/tasks/<id>/submit/

With --think-s each client first waits a random part of the think time, so the
annotators arrive spread over it (--no-stagger: all at once, a start burst that
queues 64 first requests behind the server's threads and dominates the p95 of a
one-minute run). With, at random, a double submit (the same body and idempotency key again: it
must return the same label), a skip (POST …/skip/), and an abandoned lease (a
walk-away account leases one task and never comes back; with the 30 s lease
TTL such leases expire back into the queue during a long run).

Prints p50/p95/p99 of next-task and submit, submits/s, CPU-ms per request of the
gunicorn processes (master + workers) and of the PostgreSQL backends serving this
database (utime + stime from /proc), each next to the issue's targets; then checks
the database: stored labels = successful submits, no duplicate (annotator,
comparison), no comparison over its overlap. Exits 1 when that check fails. Also
prints how many row updates each table took during the run and which share were
HOT (pg_stat_user_tables; issue #19 point 4). Ends
with one JSON line and writes benchmarks/results/load_queue-<pairs>-<annotators>[-think].json.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bulk  # noqa: E402
import _web  # noqa: E402

TARGETS = {"next_task_p95_ms": 25, "submits_per_s": 500}


@dataclass
class Tally:
    """One client thread's record (merged at the end; no locks on the hot path)."""

    next_s: list[float] = field(default_factory=list)
    submit_s: list[float] = field(default_factory=list)
    submitted: set[int] = field(default_factory=set)  # assignments whose submit answered 200
    statuses: dict[str, int] = field(default_factory=dict)
    doubles: int = 0
    double_mismatch: int = 0
    skips: int = 0
    abandoned: int = 0
    empty: int = 0
    requests: int = 0

    def count(self, what: str, status: int) -> None:
        key = f"{what} {status}"
        self.statuses[key] = self.statuses.get(key, 0) + 1
        self.requests += 1


class Driver:
    def __init__(self, server: _web.Gunicorn, slug: str, args: argparse.Namespace, walkaways: list[str]) -> None:
        self.server, self.slug, self.args = server, slug, args
        self.walkaways = walkaways  # tokens of accounts that lease once and vanish
        self.walk_lock = threading.Lock()
        self.deadline = 0.0
        self.submit_budget = args.max_submits
        self.budget_lock = threading.Lock()

    def _take_submit(self) -> bool:
        if self.submit_budget is None:
            return True
        with self.budget_lock:
            if self.submit_budget <= 0:
                return False
            self.submit_budget -= 1
            return True

    def _next(self, conn, token: str, tally: Tally) -> tuple[int, dict | None]:
        status, body, secs = _web.request(conn, "POST", f"/api/v1/projects/{self.slug}/tasks/next/",
                                          body={"kind": "pairwise"}, headers={"Authorization": f"Token {token}"})
        tally.count("next", status)
        if status in (200, 204):
            tally.next_s.append(secs)
        return status, (_json(body) if status == 200 else None)

    def annotator(self, token: str, seed: int, tally: Tally) -> None:
        rng = random.Random(seed)
        args = self.args
        conn = self.server.connection()
        auth = {"Authorization": f"Token {token}"}
        try:
            if args.think_s and args.stagger:
                # annotators arrive over the first think time, as people do; all 64 at
                # the same millisecond would measure a start burst, not the queue
                time.sleep(rng.uniform(0, args.think_s))
            while time.monotonic() < self.deadline:
                if rng.random() < args.abandon_rate:
                    self._walk_away(tally)
                status, task = self._next(conn, token, tally)
                if status == 204:
                    tally.empty += 1
                    break
                if task is None:
                    continue
                if args.think_s:
                    time.sleep(rng.uniform(0.5, 1.5) * args.think_s)
                aid = task["assignment"]
                if rng.random() < args.skip_rate:
                    status, _, _ = _web.request(conn, "POST", f"/api/v1/tasks/{aid}/skip/", body={"reason": "benchmark skip"},
                                                headers=auth)
                    tally.count("skip", status)
                    tally.skips += status == 200
                    continue
                if not self._take_submit():
                    break
                answer = {"preference": rng.randint(-3, 3), "idempotency_key": uuid.uuid4().hex,
                          "time_on_task_ms": rng.randint(2000, 30000)}
                status, body, secs = _web.request(conn, "POST", f"/api/v1/tasks/{aid}/submit/", body=answer, headers=auth)
                tally.count("submit", status)
                tally.submit_s.append(secs)
                if status != 200:
                    continue
                tally.submitted.add(aid)
                if rng.random() < args.double_rate:
                    again, body2, _ = _web.request(conn, "POST", f"/api/v1/tasks/{aid}/submit/", body=answer, headers=auth)
                    tally.count("double submit", again)
                    tally.doubles += 1
                    tally.double_mismatch += again == 200 and _json(body2).get("id") != _json(body).get("id")
        finally:
            conn.close()

    def _walk_away(self, tally: Tally) -> None:
        with self.walk_lock:
            token = self.walkaways.pop() if self.walkaways else None
        if token is None:
            return
        conn = self.server.connection()
        try:
            status, _ = self._next(conn, token, tally)
            tally.abandoned += status == 200
        finally:
            conn.close()

    def run(self, tokens: list[str], seconds: float) -> tuple[list[Tally], float]:
        tallies = [Tally() for _ in tokens]
        threads = [threading.Thread(target=self.annotator, args=(tok, i, tallies[i]), daemon=True)
                   for i, tok in enumerate(tokens)]
        start = time.monotonic()
        self.deadline = start + seconds
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=seconds + 180)
        return tallies, time.monotonic() - start


def _json(body: bytes) -> dict:
    try:
        return json.loads(body)
    except ValueError:
        return {}


def integrity(project, submitted: set[int]) -> dict:
    """What the database holds after the run, against what the clients were told."""
    from django.db.models import Count, F

    from annotate.models import Assignment, Judgment

    labels = Judgment.objects.filter(comparison__project=project, source="human")
    per_pair = labels.values("comparison", "annotator").annotate(n=Count("id")).filter(n__gt=1)
    over = (labels.values("comparison", "comparison__extra_labels").annotate(n=Count("id"))
            .filter(n__gt=project.overlap + F("comparison__extra_labels")))
    live = (Assignment.objects.filter(project=project, state__in=Assignment.LIVE_STATES, comparison__is_gold=False)
            .values("comparison", "comparison__extra_labels").annotate(n=Count("id"))
            .filter(n__gt=project.overlap + F("comparison__extra_labels")))
    found = labels.filter(assignment_id__in=submitted).count() if submitted else 0
    report = {
        "labels": labels.count(), "successful_submits": len(submitted), "submits_with_label": found,
        "duplicates": per_pair.count(), "over_quota": over.count(), "live_leases_over_quota": live.count(),
    }
    report["ok"] = (report["labels"] == len(submitted) == found and report["duplicates"] == 0
                    and report["over_quota"] == 0 and report["live_leases_over_quota"] == 0)
    return report


def _prepare_project(args: argparse.Namespace):
    from annotate import services
    from annotate.models import Comparison, Project, Role

    slug = f"bench-queue-{args.pairs}"
    project = Project.objects.filter(slug=slug).first()
    if project is not None and (args.fresh or Comparison.objects.filter(project=project).count() != args.pairs
                                or project.overlap != args.overlap):
        _bulk.project_drop(slug)
        project = None
    if project is None:
        start = time.perf_counter()
        project = _bulk.project_with_pairs(slug=slug, pairs=args.pairs, overlap=args.overlap, seed=args.seed)
        print(f"built {args.pairs} comparisons in {time.perf_counter() - start:.1f} s", flush=True)
    else:
        _reset(project)
    annotators = _bulk.accounts("bench-annotator", args.annotators)
    walkaways = _bulk.accounts(f"bench-walkaway-{uuid.uuid4().hex[:6]}", args.max_abandoned)
    for user in [*annotators, *walkaways]:
        services.membership_set(project=project, user=user, role=Role.ANNOTATOR)
    _bulk.counters_refresh(project)
    return project, [u.api_token for u in annotators], [u.api_token for u in walkaways]


def _reset(project) -> None:
    """A reused project starts again with no labels or leases (earlier runs' walk-away
    accounts are deleted with their leases)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from annotate import queue

    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("DELETE FROM annotate_judgment WHERE comparison_id IN (SELECT id FROM annotate_comparison "
                    "WHERE project_id = %s)", [project.pk])
        cur.execute("DELETE FROM annotate_assignment WHERE project_id = %s", [project.pk])
    get_user_model().objects.filter(username__startswith="bench-walkaway-").delete()
    queue.queue_slots_rebuild(project=project)
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1_000_000, help="open comparisons (default 1000000)")
    parser.add_argument("--annotators", type=int, default=64, help="client threads, one account each (default 64)")
    parser.add_argument("--seconds", type=float, default=60, help="how long the clients run (default 60)")
    parser.add_argument("--think-s", type=float, default=0.0, help="mean pause between lease and submit (default 0)")
    parser.add_argument("--no-stagger", dest="stagger", action="store_false",
                        help="with --think-s: every client's first request at the same moment (default: each "
                             "starts after a random pause of up to the think time)")
    parser.add_argument("--overlap", type=int, default=2, help="labels wanted per comparison (default 2)")
    parser.add_argument("--max-submits", type=int, help="stop after this many submits in all (default: no limit)")
    parser.add_argument("--double-rate", type=float, default=0.05, help="share of submits sent twice (default 0.05)")
    parser.add_argument("--skip-rate", type=float, default=0.03, help="share of leases skipped (default 0.03)")
    parser.add_argument("--abandon-rate", type=float, default=0.01, help="chance per cycle of a walk-away lease (default 0.01)")
    parser.add_argument("--max-abandoned", type=int, default=32, help="walk-away accounts, one lease each (default 32)")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: preflab/gunicorn.conf.py's)")
    parser.add_argument("--worker-class", help="gunicorn worker class, e.g. sync (default: the config file's)")
    parser.add_argument("--threads", type=int, help="threads per gunicorn worker (sync needs 1; default: the config file's)")
    parser.add_argument("--fresh", action="store_true", help="rebuild the project even when one of this size exists")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="results file (default benchmarks/results/load_queue-<pairs>-<annotators>.json)")
    args = parser.parse_args()

    url = _web.database_url_or_exit()
    data_dir = tempfile.mkdtemp(prefix="preflab-bench-")
    try:
        ok = _bench(args, url, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    sys.exit(0 if ok else 1)


def _bench(args: argparse.Namespace, url: str, data_dir: str) -> bool:
    env = _web.server_env(data_dir)
    _web.prepare(env)
    report = _web.report_header("load_queue")
    project, tokens, walkaways = _prepare_project(args)
    pg_pids = _web.PgBackendPids(url)
    with _web.Gunicorn(env, workers=args.workers, worker_class=args.worker_class, threads=args.threads) as server:
        report["server"], report["server_settings"] = server.command, server.settings()
        load_before = _web.load_average()
        time.sleep(1.5)  # let the set-up's table statistics reach pg_stat_user_tables first (flushed once a second)
        tables_before = _web.table_updates(url)
        web_cpu = _web.CpuMeter(server.pids).start()
        db_cpu = _web.CpuMeter(pg_pids).start()
        client_before = resource.getrusage(resource.RUSAGE_SELF)
        tallies, elapsed = Driver(server, project.slug, args, walkaways).run(tokens, args.seconds)
        client_after = resource.getrusage(resource.RUSAGE_SELF)
        web_s, db_s = web_cpu.stop(), db_cpu.stop()
    pg_pids.close()
    time.sleep(1.5)  # backends flush their table statistics at most once a second
    hot = _web.hot_updates(tables_before, _web.table_updates(url))

    merged = Tally()
    for t in tallies:
        merged.next_s += t.next_s
        merged.submit_s += t.submit_s
        merged.submitted |= t.submitted
        for k, v in t.statuses.items():
            merged.statuses[k] = merged.statuses.get(k, 0) + v
        for name in ("doubles", "double_mismatch", "skips", "abandoned", "empty", "requests"):
            setattr(merged, name, getattr(merged, name) + getattr(t, name))
    requests = max(merged.requests, 1)
    client_s = (client_after.ru_utime + client_after.ru_stime) - (client_before.ru_utime + client_before.ru_stime)
    checks = integrity(project, merged.submitted)
    figures = {
        "next_task_ms": {q: _web.percentile(merged.next_s, n) for q, n in (("p50", 50), ("p95", 95), ("p99", 99))},
        "submit_ms": {q: _web.percentile(merged.submit_s, n) for q, n in (("p50", 50), ("p95", 95), ("p99", 99))},
        "submits_per_s": round(len(merged.submitted) / elapsed, 1),
        "requests": merged.requests, "requests_per_s": round(merged.requests / elapsed, 1),
        "cpu_ms_per_request": {"gunicorn": round(web_s * 1000 / requests, 2), "postgres": round(db_s * 1000 / requests, 2),
                               "client": round(client_s * 1000 / requests, 2)},
        "cpu_s": {"gunicorn": round(web_s, 1), "postgres": round(db_s, 1), "client": round(client_s, 1)},
        "elapsed_s": round(elapsed, 1), "statuses": dict(sorted(merged.statuses.items())),
        "double_submits": merged.doubles, "double_submit_other_label": merged.double_mismatch,
        "skips": merged.skips, "abandoned_leases": merged.abandoned, "clients_out_of_tasks": merged.empty,
    }
    report.update(
        pairs=args.pairs, annotators=args.annotators, seconds=args.seconds, think_s=args.think_s, overlap=args.overlap,
        staggered_start=bool(args.think_s and args.stagger),
        load_average_before=load_before, targets=TARGETS, **figures,
        verdicts={"next_task_p95": _web.verdict(figures["next_task_ms"]["p95"], TARGETS["next_task_p95_ms"], at_most=True),
                  "submits_per_s": _web.verdict(figures["submits_per_s"], TARGETS["submits_per_s"], at_most=False)},
        integrity=checks, hot_updates=hot,
        note="CPU from /proc utime+stime: gunicorn master and workers; the PostgreSQL backends of this database "
             "(sampled every 0.5 s); the client is this process (it shares the machine's cores with the server)",
    )
    _print(report)
    out = args.out or _web.REPO / "benchmarks" / "results" / (
        f"load_queue-{args.pairs}-{args.annotators}{'-think' if args.think_s else ''}"
        f"{'-' + args.worker_class if args.worker_class else ''}.json")
    _web.write_results(report, out)
    if not checks["ok"]:
        print(f"INTEGRITY CHECK FAILED: {checks}", file=sys.stderr)
    return checks["ok"] and merged.double_mismatch == 0


def _print(r: dict) -> None:
    n, s = r["next_task_ms"], r["submit_ms"]
    print(f"\ngunicorn {r['server_settings']}")
    print(f"{r['pairs']} pairs, {r['annotators']} annotators, think {r['think_s']} s, {r['elapsed_s']} s; "
          f"load average {r['load_average_before']} → {_web.load_average()}")
    print(f"{'':24}{'p50':>9}{'p95':>9}{'p99':>9}{'target':>12}{'':>9}")
    print(f"{'next task (ms)':24}{n['p50']!s:>9}{n['p95']!s:>9}{n['p99']!s:>9}{'p95 ≤ 25':>12}{r['verdicts']['next_task_p95']:>9}")
    print(f"{'submit (ms)':24}{s['p50']!s:>9}{s['p95']!s:>9}{s['p99']!s:>9}")
    print(f"{'submits/s':24}{r['submits_per_s']:>27}{'≥ 500':>12}{r['verdicts']['submits_per_s']:>9}")
    c = r["cpu_ms_per_request"]
    print(f"CPU ms per request: gunicorn {c['gunicorn']}, PostgreSQL {c['postgres']}, client {c['client']} "
          f"({r['requests']} requests, {r['requests_per_s']}/s)")
    print(f"double submits {r['double_submits']}, skips {r['skips']}, abandoned leases {r['abandoned_leases']}; "
          f"statuses {r['statuses']}")
    print("updates (HOT share): " + ", ".join(f"{t.removeprefix('annotate_')} {h['updates']} ({h['hot_ratio']:.0%})"
                                             for t, h in r["hot_updates"].items()))
    i = r["integrity"]
    print(f"integrity: labels {i['labels']} = successful submits {i['successful_submits']}, duplicates {i['duplicates']}, "
          f"over quota {i['over_quota']} → {'ok' if i['ok'] else 'FAILED'}")


if __name__ == "__main__":
    main()
