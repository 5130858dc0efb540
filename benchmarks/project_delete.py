"""Deleting a large project (issue #19): build one with ``_bulk.project_with_pairs``
(three responses per prompt, every pair, two labels each, every slot row), then
delete it one way and print the wall time.

    createdb -h 127.0.0.1 -U postgres preflab_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/preflab_bench \\
        .venv/bin/python benchmarks/project_delete.py orm --pairs 50000

``orm``: ``project.delete()`` in one transaction, as the admin's delete does;
``raw``: ``export_import._drop_project`` (raw DELETEs); ``explain``: those DELETEs
under ``SET CONSTRAINTS ALL IMMEDIATE`` and ``EXPLAIN ANALYZE``, printing the time
of each foreign-key check (a check without an index scans its table per row).
PostgreSQL only (COPY); the database must be migrated. Writes the figures to
benchmarks/results/project_delete-<mode>-<pairs>.json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._machine import uptime  # noqa: E402

EXPLAINED = (
    "DELETE FROM annotate_judgment WHERE comparison_id IN (SELECT id FROM annotate_comparison WHERE project_id = %s)",
    "DELETE FROM annotate_queueslot WHERE project_id = %s",
    "DELETE FROM annotate_ratingslot WHERE project_id = %s",
    "DELETE FROM annotate_rankingslot WHERE project_id = %s",
    "DELETE FROM annotate_comparison WHERE project_id = %s",
    "DELETE FROM annotate_response WHERE prompt_id IN (SELECT id FROM annotate_prompt WHERE project_id = %s)",
    "DELETE FROM annotate_prompt WHERE project_id = %s",
    "DELETE FROM annotate_membership WHERE project_id = %s",
    "DELETE FROM annotate_annotatorcount WHERE project_id = %s",
    "DELETE FROM annotate_unitcount WHERE project_id = %s",
    "DELETE FROM annotate_project WHERE id = %s",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("orm", "raw", "explain"))
    parser.add_argument("--pairs", type=int, default=50_000, help="comparisons (a third as many prompts; default 50000)")
    parser.add_argument("--out", type=Path, help="JSON results (default benchmarks/results/project_delete-<mode>-<pairs>.json)")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL=postgres://…/preflab_bench (this benchmark writes with COPY)")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "preflab.settings")
    import django

    django.setup()
    from django.db import connection, transaction

    from benchmarks import _bulk
    from benchmarks.export_import import _drop_project

    before = uptime()
    print(before, flush=True)
    labellers = [u.pk for u in _bulk.accounts("delete-bench", 10, active=False)]
    start = time.perf_counter()
    project = _bulk.project_with_pairs(slug=f"delete-bench-{os.getpid()}", pairs=args.pairs, overlap=2,
                                       responses_per_prompt=3, labels_per_pair=2, labellers=labellers)
    prompts = project.prompts.count()
    print(f"built {prompts} prompts, {args.pairs} pairs, {2 * args.pairs} labels "
          f"in {time.perf_counter() - start:.1f} s", flush=True)
    start = time.perf_counter()
    if args.mode == "orm":
        with transaction.atomic():
            project.delete()
    elif args.mode == "raw":
        _drop_project(project.pk)
    else:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for sql in EXPLAINED:
                cur.execute("EXPLAIN ANALYZE " + sql, [project.pk])
                lines = [row[0] for row in cur.fetchall() if row[0].startswith(("Trigger", "Execution"))]
                print(sql.split(" WHERE")[0], "|", "; ".join(lines), flush=True)
    elapsed = time.perf_counter() - start
    print(f"{args.mode} delete: {elapsed:.2f} s", flush=True)
    report = {"benchmark": "project_delete", "command": "DATABASE_URL=… " + shlex.join(["python", *sys.argv]),
              "mode": args.mode, "prompts": prompts, "pairs": args.pairs, "labels": 2 * args.pairs,
              "delete_wall_s": round(elapsed, 2), "python": platform.python_version(), "cpus": os.cpu_count(),
              "database": "postgresql", "uptime": {"before": before, "after": uptime()}}
    out = args.out or Path(__file__).resolve().parent / "results" / f"project_delete-{args.mode}-{args.pairs}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
