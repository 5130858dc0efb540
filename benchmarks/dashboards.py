"""Page times at scale, over HTTP (issue #19: every page ≤ 300 ms at 1M judgments).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/preflab_bench \\
        .venv/bin/python benchmarks/dashboards.py --judgments 1000000 [--repeat 20]

Builds a pairwise project holding --judgments imported judgments (2 per
comparison from 20 labellers, one of whom is the annotator whose pages are timed,
so they hold about a tenth of them) with COPY in DATABASE_URL (PostgreSQL only;
created and migrated when missing; a project of the same size is reused), makes a
quality report for it in this process (its build time is printed, not judged),
then starts gunicorn on 127.0.0.1 as the Dockerfile's CMD runs it and times, one
request at a time over a kept-alive connection with a logged-in session:

    researcher: the project page, the progress page, the progress fragment the page
                polls every 5 s (HX-Request), the quality dashboard
    annotator:  the home page (every project with "remaining"), the work page

Each page is requested twice untimed, then --repeat times; p50/p95 are printed next
to the 300 ms target, with the CPU-ms per request of gunicorn and of this
database's PostgreSQL backends (from /proc). A stored report is reused by later
runs on the same project. Every timed answer must be 200 with the page's content
(checked); the script exits 1 otherwise. Ends with one JSON line and writes
benchmarks/results/dashboards-<judgments>.json.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bulk  # noqa: E402
import _web  # noqa: E402

TARGET_MS = 300
LABELLERS = 20
LABELS_PER_PAIR = 2


def pages(slug: str, name: str, annotator: str) -> list[tuple[str, str, str, dict[str, str], str]]:
    """(name, who, path, extra headers, text the answer must contain: the project's
    name on a page, the timed annotator's row in the progress tables)."""
    return [
        ("project page", "researcher", f"/p/{slug}/", {}, name),
        ("progress page", "researcher", f"/p/{slug}/progress/", {}, annotator),
        ("progress fragment", "researcher", f"/p/{slug}/progress/", {"HX-Request": "true"}, annotator),
        ("quality dashboard", "researcher", f"/p/{slug}/quality/", {}, name),
        ("annotator home", "annotator", "/", {}, name),
        ("annotator work page", "annotator", f"/p/{slug}/work/pairwise/", {}, name),
    ]


def _prepare(args: argparse.Namespace):
    from django.contrib.auth import get_user_model

    from annotate import services
    from annotate.models import Judgment, Project, Role

    slug = f"bench-dash-{args.judgments}"
    User = get_user_model()
    researcher, _ = User.objects.get_or_create(username="bench-dash-researcher")
    annotator = _bulk.accounts("bench-dash-annotator", 1)[0]
    labellers = [annotator.pk, *(u.pk for u in _bulk.accounts("bench-dash-labeller", LABELLERS - 1, active=False))]
    project = Project.objects.filter(slug=slug).first()
    pairs = args.judgments // LABELS_PER_PAIR
    if project is not None and (args.fresh or Judgment.objects.filter(comparison__project=project).count()
                                != pairs * LABELS_PER_PAIR):
        _bulk.project_drop(slug)
        project = None
    if project is None:
        start = time.perf_counter()
        project = _bulk.project_with_pairs(slug=slug, pairs=pairs, overlap=LABELS_PER_PAIR + 1, labels_per_pair=LABELS_PER_PAIR,
                                           labellers=labellers, seed=args.seed, created_by=researcher)
        print(f"built {pairs * LABELS_PER_PAIR} judgments in {time.perf_counter() - start:.1f} s", flush=True)
    services.membership_set(project=project, user=researcher, role=Role.RESEARCHER)
    services.membership_set(project=project, user=annotator, role=Role.ANNOTATOR)
    _bulk.counters_refresh(project)
    report_s = _quality_report(project, researcher) if not args.no_report else None
    cookies = {"researcher": _session(researcher), "annotator": _session(annotator)}
    return project, annotator.username, cookies, report_s


def _quality_report(project, researcher) -> float | None:
    """One quality report, made here as a worker would make it (the dashboard shows
    the last one; without it the page would time an empty state); its seconds, or
    None when an earlier run made it."""
    from quality import reports

    if reports.latest_reports(project=project)[0] is not None:
        return None  # made by an earlier run on this project
    start = time.perf_counter()
    report = reports.quality_report_enqueue(project=project, created_by=researcher)
    reports.quality_report_run(report_id=report.pk)
    seconds = time.perf_counter() - start
    print(f"quality report made in {seconds:.1f} s", flush=True)
    return round(seconds, 1)


def _session(user) -> str:
    """A session cookie for ``user``, stored where the server reads sessions."""
    from django.conf import settings
    from django.test import Client

    logging.getLogger("axes").setLevel(logging.WARNING)  # a log line per log-in here says nothing
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def measure(server: _web.Gunicorn, pg_pids, project, annotator: str, cookies: dict[str, str], repeat: int) -> list[dict]:
    """Each page: 2 untimed requests, then ``repeat`` timed, with the CPU the server
    and the database spent on them (per request: the figure the machine's load
    does not change)."""
    rows = []
    conn = server.connection()
    try:
        for name, who, path, headers, marker in pages(project.slug, project.name, annotator):
            hdrs = {"Cookie": cookies[who], **headers}
            times, failures = [], []
            for i in range(repeat + 2):
                if i == 2:
                    web_cpu, db_cpu = _web.CpuMeter(server.pids).start(), _web.CpuMeter(pg_pids).start()
                status, body, secs = _web.request(conn, "GET", path, headers=hdrs)
                if status != 200 or marker.encode() not in body:
                    failures.append(f"{status} ({len(body)} bytes)")
                if i >= 2:
                    times.append(secs)
            web_s, db_s = web_cpu.stop(), db_cpu.stop()
            p50, p95 = _web.percentile(times, 50), _web.percentile(times, 95)
            rows.append({"page": name, "as": who, "path": path, "htmx": bool(headers), "p50_ms": p50, "p95_ms": p95,
                         "cpu_ms_per_request": {"gunicorn": round(web_s * 1000 / repeat, 1),
                                                "postgres": round(db_s * 1000 / repeat, 1)},
                         "bytes": len(body), "ok": not failures, "failures": failures[:5],
                         # a fast error page meets no target
                         "verdict": _web.verdict(p95, TARGET_MS, at_most=True) if not failures else "failed"})
    finally:
        conn.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judgments", type=int, default=1_000_000, help="judgments in the project (default 1000000)")
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per page (default 20)")
    parser.add_argument("--no-report", action="store_true", help="time the quality dashboard without a stored report")
    parser.add_argument("--fresh", action="store_true", help="rebuild the project even when one of this size exists")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="results file (default benchmarks/results/dashboards-<judgments>.json)")
    args = parser.parse_args()

    url = _web.database_url_or_exit()
    data_dir = tempfile.mkdtemp(prefix="preflab-bench-")
    try:
        env = _web.server_env(data_dir)
        _web.prepare(env)
        report = _web.report_header("dashboards")
        project, annotator, cookies, report_s = _prepare(args)
        pg_pids = _web.PgBackendPids(url)
        with _web.Gunicorn(env) as server:
            report["server"], report["server_settings"] = server.command, server.settings()
            load_before = _web.load_average()
            rows = measure(server, pg_pids, project, annotator, cookies, args.repeat)
        pg_pids.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    print(f"\n{args.judgments} judgments; through gunicorn over HTTP, one request at a time; "
          f"load average {load_before} → {_web.load_average()}")
    print(f"{'page':22}{'p50 ms':>9}{'p95 ms':>9}{'target':>10}{'':>8}{'CPU ms web+db':>15}{'KB':>6}  answers")
    for r in rows:
        cpu = r["cpu_ms_per_request"]
        print(f"{r['page']:22}{r['p50_ms']!s:>9}{r['p95_ms']!s:>9}{'≤ 300':>10}{r['verdict']:>8}"
              f"{cpu['gunicorn']:>8}+{cpu['postgres']:<6}{r['bytes'] // 1024:>6}  "
              f"{'200 with content' if r['ok'] else 'FAILED ' + ', '.join(r['failures'])}")
    report.update(judgments=args.judgments, repeat=args.repeat, quality_report_s=report_s,
                  measured="through gunicorn (the Dockerfile's CMD) over HTTP, one request at a time, after 2 untimed; "
                           "CPU from /proc utime+stime of gunicorn and of this database's PostgreSQL backends",
                  load_average_before=load_before, target_ms=TARGET_MS, pages=rows, all_ok=all(r["ok"] for r in rows))
    out = args.out or _web.REPO / "benchmarks" / "results" / f"dashboards-{args.judgments}.json"
    _web.write_results(report, out)
    sys.exit(0 if report["all_ok"] else 1)


if __name__ == "__main__":
    main()
