"""Export and re-import at scale (DESIGN §8, issue #19: export 1M judgments in ≤ 60 s
with a peak RSS ≤ 150 MB; import 1M rows in ≤ 120 s).

    createdb -h 127.0.0.1 -U postgres preflab_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/preflab_bench \\
        .venv/bin/python benchmarks/export_import.py --rows 1000000

Generates N judgments in DATABASE_URL (PostgreSQL only; written with COPY, reused
by later runs with the same N), then runs each step as its own ``manage.py``
process so its wall time and peak RSS are that step's alone (start-up included):
TRL JSONL and Parquet exports (every label), a majority-vote TRL export, a generic
CSV export, the import of that CSV into a new project, and the drop of that
project (timed: deleting a large project once took minutes, issue #19).
Prints a table, then one JSON line, and writes the JSON to benchmarks/results/.

To work on the import alone, ``--import-only --csv /tmp/bench-1m.csv`` skips the
TRL exports and keeps the generic CSV at that path (exported on the first run,
reused by later ones); the JSON then holds the steps that ran (default file
benchmarks/results/export_import-<rows>-import.json, so the full run's file stays).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._machine import uptime as _uptime  # noqa: E402

FORBIDDEN_DATABASES = {"preflab", "test_preflab"}  # shared with other people's work on this machine
ANNOTATORS = 20
RESPONSES_PER_PROMPT = 3  # → 3 pairs per prompt
WORDS = ("the model answers with a short and careful explanation of the question that was asked and then gives an "
         "example that shows the idea in practice before it closes with a summary of the main point").split()


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "preflab.settings")
    import django

    django.setup()


def _child_env(data_dir: str) -> dict[str, str]:
    # Production-like settings (DEBUG off: Django keeps no query log), a throwaway key.
    env = {k: v for k, v in os.environ.items() if k != "DEBUG"}
    env.update(SECRET_KEY=secrets.token_urlsafe(50), PREFLAB_DATA_DIR=data_dir, PREFLAB_SECURE="0")
    return env


# The child reports its own peak RSS: VmHWM, which exec resets. wait4's ru_maxrss
# is not it: a forked child starts with its parent's resident pages counted, so
# every step read at least this process's own peak (193 MB after generating 1M rows).
_PEAK = (
    "import atexit, runpy, sys\n"
    "out, sys.argv = sys.argv[1], sys.argv[2:]\n"
    "def peak():\n"
    "    with open('/proc/self/status') as f:\n"
    "        kb = next(int(line.split()[1]) for line in f if line.startswith('VmHWM:'))\n"
    "    with open(out, 'w') as f:\n"
    "        f.write(str(kb))\n"
    "atexit.register(peak)\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str, float]:
    """Wall seconds, peak RSS in MB (the child's own VmHWM), its output and its CPU
    seconds (user + system: on a shared machine, steadier than the wall time; the
    database server's own CPU is not in it). ``cmd``: [python, script, args…]."""
    with tempfile.NamedTemporaryFile("r", suffix=".hwm") as hwm:
        start = time.perf_counter()
        proc = subprocess.Popen([cmd[0], "-c", _PEAK, hwm.name, *cmd[1:]], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{out}")
        peak_mb = int(hwm.read() or 0) // 1024
    return elapsed, peak_mb, out.strip(), round(usage.ru_utime + usage.ru_stime, 1)


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def _generate(slug: str, rows: int, overlap: int, seed: int) -> None:
    """N judgments: N / overlap comparisons, three per prompt, ``overlap`` annotators each."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from annotate.models import Project

    rng = random.Random(seed)
    User = get_user_model()
    names = [f"bench-annotator-{i}" for i in range(ANNOTATORS)]
    existing = set(User.objects.filter(username__in=names).values_list("username", flat=True))
    User.objects.bulk_create([User(username=n, is_active=False, password="!") for n in names if n not in existing])
    users = list(User.objects.filter(username__in=names).order_by("id").values_list("id", flat=True))
    comparisons = rows // overlap
    prompts = -(-comparisons // RESPONSES_PER_PROMPT)
    now = datetime.now(timezone.utc).isoformat()
    with transaction.atomic():
        project = Project.objects.create(name=f"Export benchmark {rows}", slug=slug)
        with connection.cursor() as cur:
            pg = cur.connection.cursor()
            with pg.copy("COPY annotate_prompt (project_id, external_id, conversation, metadata, created_at) FROM STDIN") as copy:
                for i in range(prompts):
                    conv = [{"role": "user", "content": f"Question {i}: {_text(rng, 18)}"}]
                    copy.write_row((project.pk, f"q{i}", json.dumps(conv), "{}", now))
            pg.execute("SELECT id FROM annotate_prompt WHERE project_id = %s ORDER BY id", (project.pk,))
            prompt_ids = [r[0] for r in pg.fetchall()]
            with pg.copy("COPY annotate_response (prompt_id, external_id, text, source, metadata, created_at) FROM STDIN") as copy:
                for pid in prompt_ids:
                    for k in range(RESPONSES_PER_PROMPT):
                        copy.write_row((pid, f"r{k}", _text(rng, 45), f"model-{k}", "{}", now))
            pg.execute("SELECT r.id, r.prompt_id FROM annotate_response r JOIN annotate_prompt p ON p.id = r.prompt_id "
                       "WHERE p.project_id = %s ORDER BY r.id", (project.pk,))
            by_prompt: dict[int, list[int]] = {}
            for rid, pid in pg.fetchall():
                by_prompt.setdefault(pid, []).append(rid)
            # fully labelled: no queue state (annotate_queueslot, _ratingslot, _rankingslot) to write
            with pg.copy("COPY annotate_comparison (project_id, prompt_id, response_a_id, response_b_id, "
                         "is_gold, gold_choice, created_at) FROM STDIN") as copy:
                made = 0
                for pid in prompt_ids:
                    ids = by_prompt[pid]
                    for a, b in ((ids[0], ids[1]), (ids[0], ids[2]), (ids[1], ids[2])):
                        if made < comparisons:
                            copy.write_row((project.pk, pid, a, b, False, "", now))
                            made += 1
            pg.execute("SELECT id FROM annotate_comparison WHERE project_id = %s ORDER BY id", (project.pk,))
            comparison_ids = [r[0] for r in pg.fetchall()]
            with pg.copy("COPY annotate_judgment (comparison_id, annotator_id, choice, strength, criteria, rationale, spans, "
                         "flags, time_on_task_ms, source, derivation_rule, metadata, created_at, updated_at) FROM STDIN") as copy:
                for cid in comparison_ids:
                    for annotator in rng.sample(users, overlap):
                        choice = rng.choices(("A", "B", "tie", "both_bad"), (45, 40, 10, 5))[0]
                        strength = {"A": -rng.randint(1, 3), "B": rng.randint(1, 3), "tie": 0, "both_bad": None}[choice]
                        criteria = json.dumps({"helpful": rng.choice("AB"), "harmless": rng.choice(("A", "B", "tie"))})
                        copy.write_row((cid, annotator, choice, strength, criteria, "", "[]", "[]", rng.randint(2000, 60000),
                                        "human", "", "{}", now, now))
    with connection.cursor() as cur:
        cur.execute("ANALYZE annotate_prompt, annotate_response, annotate_comparison, annotate_judgment")


def _drop_project(pk: int) -> None:
    """Raw deletes: the ORM's cascade would collect a million objects first."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("DELETE FROM annotate_judgment WHERE comparison_id IN (SELECT id FROM annotate_comparison WHERE project_id = %s)", [pk])
        cur.execute("DELETE FROM annotate_rating WHERE response_id IN (SELECT r.id FROM annotate_response r "
                    "JOIN annotate_prompt p ON p.id = r.prompt_id WHERE p.project_id = %s)", [pk])
        for table in ("annotate_queueslot", "annotate_ratingslot", "annotate_rankingslot"):
            cur.execute(f"DELETE FROM {table} WHERE project_id = %s", [pk])
        cur.execute("DELETE FROM annotate_comparison WHERE project_id = %s", [pk])
        cur.execute("DELETE FROM annotate_response WHERE prompt_id IN (SELECT id FROM annotate_prompt WHERE project_id = %s)", [pk])
        for table in ("annotate_prompt", "annotate_importjob", "annotate_exportjob", "annotate_membership",
                      "annotate_annotatorcount", "annotate_unitcount"):
            cur.execute(f"DELETE FROM {table} WHERE project_id = %s", [pk])
        cur.execute("DELETE FROM annotate_project WHERE id = %s", [pk])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="judgments to export (default 100000)")
    parser.add_argument("--overlap", type=int, default=2, help="labels per comparison (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-import", action="store_true", help="export only")
    parser.add_argument("--import-only", action="store_true", help="skip the TRL exports (the generic CSV is still needed)")
    parser.add_argument("--csv", type=Path, help="keep the generic CSV export here and reuse it when it already exists")
    parser.add_argument("--out", type=Path, help="JSON results (default benchmarks/results/export_import-<rows>.json)")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("set DATABASE_URL=postgres://…/preflab_bench (this benchmark writes with COPY)")
    if url.rstrip("/").rsplit("/", 1)[-1].split("?")[0] in FORBIDDEN_DATABASES:
        sys.exit("use a database of its own (e.g. preflab_bench), not one the test suite or the app uses")
    data_dir = tempfile.mkdtemp(prefix="preflab-bench-")
    try:
        _bench(args, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)  # the exports of 1M labels take gigabytes


def _bench(args: argparse.Namespace, data_dir: str) -> None:
    env = _child_env(data_dir)
    os.environ.update(SECRET_KEY=env["SECRET_KEY"], PREFLAB_DATA_DIR=data_dir)
    os.environ.pop("DEBUG", None)
    _run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], env)
    load_before, uptime_before = os.getloadavg()[0], _uptime()
    _setup_django()
    from annotate.models import Judgment, Project

    slug = f"bench-export-{args.rows}-o{args.overlap}"
    project = Project.objects.filter(slug=slug).first()
    if project is not None and Judgment.objects.filter(comparison__project=project).count() != args.rows // args.overlap * args.overlap:
        _drop_project(project.pk)
        project = None
    if project is None:
        start = time.perf_counter()
        _generate(slug, args.rows, args.overlap, args.seed)
        print(f"generated {args.rows} judgments in {time.perf_counter() - start:.1f} s", flush=True)
    labels = Judgment.objects.filter(comparison__project__slug=slug).count()

    steps = [
        ("export trl jsonl (all)", ["--format", "trl", "--file-format", "jsonl"]),
        ("export trl parquet (all)", ["--format", "trl", "--file-format", "parquet"]),
        ("export trl jsonl (majority)", ["--format", "trl", "--file-format", "jsonl", "--aggregate", "majority"]),
        ("export generic csv", ["--format", "generic", "--file-format", "csv"]),
    ]
    if args.import_only:
        steps = steps[-1:]
    results = []
    generic_csv = None
    if args.csv is not None and args.csv.is_file():
        steps, generic_csv = [], args.csv
        print(f"reusing {generic_csv}", flush=True)
    for name, extra in steps:
        out = Path(data_dir) / name.replace(" ", "-").replace("(", "").replace(")", "")
        elapsed, rss, output, cpu = _run([sys.executable, "manage.py", "export_data", slug, "--out", str(out), *extra], env)
        rows = int(output.rsplit("Wrote ", 1)[1].split(" ", 1)[0])
        data = next(p for p in out.iterdir() if p.name != "README.md")
        if "generic" in name:
            generic_csv = data
            if args.csv is not None:
                args.csv.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(data, args.csv)
                generic_csv = data = args.csv
        results.append({"step": name, "labels": labels, "rows": rows, "wall_s": round(elapsed, 2),
                        "labels_per_s": round(labels / elapsed), "peak_rss_mb": rss, "cpu_s": cpu,
                        "file_mb": round(data.stat().st_size / 2**20, 1)})
        print(f"{name}: {elapsed:.1f} s, {rss} MB", flush=True)
    if not args.skip_import:
        target = f"bench-import-{args.rows}-{secrets.token_hex(3)}"
        try:
            elapsed, rss, output, cpu = _run([sys.executable, "manage.py", "import_data", target, str(generic_csv),
                                         "--format", "csv", "--create-project"], env)
            results.append({"step": "import generic csv", "labels": labels, "rows": labels, "wall_s": round(elapsed, 2),
                            "labels_per_s": round(labels / elapsed), "peak_rss_mb": rss, "cpu_s": cpu,
                            "file_mb": round(generic_csv.stat().st_size / 2**20, 1)})
            print(f"import generic csv: {elapsed:.1f} s, {rss} MB, {cpu} CPU s\n{output}", flush=True)
        finally:
            imported = Project.objects.filter(slug=target).first()
            if imported is not None:
                start = time.perf_counter()
                _drop_project(imported.pk)
                elapsed = time.perf_counter() - start
                # in this process: no start-up, and no RSS or CPU of its own (the work is the server's)
                results.append({"step": "drop imported project", "labels": labels, "rows": labels,
                                "wall_s": round(elapsed, 2), "labels_per_s": round(labels / elapsed),
                                "peak_rss_mb": None, "cpu_s": None, "file_mb": None})
                print(f"drop imported project: {elapsed:.1f} s", flush=True)

    print(f"\n{'step':30} {'labels':>9} {'rows':>9} {'wall s':>8} {'CPU s':>7} {'labels/s':>9} {'peak RSS MB':>12} {'file MB':>8}")
    for r in results:
        cell = {k: "-" if v is None else v for k, v in r.items()}
        print(f"{cell['step']:30} {cell['labels']:>9} {cell['rows']:>9} {cell['wall_s']:>8} {cell['cpu_s']:>7} "
              f"{cell['labels_per_s']:>9} {cell['peak_rss_mb']:>12} {cell['file_mb']:>8}")
    report = {
        "benchmark": "export_import", "command": "DATABASE_URL=… " + shlex.join(["python", *sys.argv]),
        "rows": args.rows, "overlap": args.overlap, "python": platform.python_version(),
        "cpus": os.cpu_count(), "database": "postgresql", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "note": "wall time, CPU time (user + system, the database server's not included) and peak RSS of each "
                "manage.py process, start-up included; the drop of the imported project (raw DELETEs in one "
                "transaction, its deferred foreign-key checks included) runs in this process: wall time only",
        "uptime": {"before": uptime_before, "after": _uptime()},
        "load_average_1m": {"before": round(load_before, 1), "after": round(os.getloadavg()[0], 1)},
        "targets": {"export_1m_s": 60, "export_rss_mb": 150, "import_1m_s": 120}, "results": results,
    }
    suffix = "-import" if args.import_only or (args.csv is not None and not steps) else ""
    out = args.out or REPO / "benchmarks" / "results" / f"export_import-{args.rows}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
