"""Import throughput and peak memory on the real public datasets.

Each import runs as its own `manage.py import_data` process against a fresh
database (SQLite in a temporary folder by default, or DATABASE_URL when set and
--use-database-url is given), so the peak RSS is that import's alone.

    .venv/bin/python benchmarks/import_bench.py [--repeat 3] [--out var/benchmarks/import.json]

Prints a table and writes JSON. Reads ../shared/data (see its README).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("PREFLAB_SHARED_DATA", REPO.parent / "shared" / "data"))
CASES = [
    ("hh-rlhf harmless test", "hh-rlhf", "hh-rlhf/harmless-base-test.jsonl.gz"),
    ("summarize batch13", "summarize", "summarize-from-feedback/batch13.json"),
    ("pandalm testset", "pandalm", "pandalm/testset-v1.json"),
    ("oasst 100 trees", "oasst", "oasst/en_100_tree.jsonl"),
    ("finegrained dev", "finegrained", "finegrained-rlhf/dev_feedback.json"),
]


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out}")
    return elapsed, usage.ru_maxrss // 1024, (out.strip().splitlines() or [""])[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "var" / "benchmarks" / "import.json")
    parser.add_argument("--use-database-url", action="store_true", help="import into DATABASE_URL instead of a temp SQLite file")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} is absent")

    rows = []
    for label, fmt, rel in CASES:
        times, rss = [], []
        for i in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                env = {**os.environ, "DEBUG": "1", "PREFLAB_DATA_DIR": tmp}
                if not args.use_database_url:
                    env.pop("DATABASE_URL", None)
                _run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], env)
                slug = f"bench-{fmt}-{i}"
                elapsed, peak, last = _run(
                    [sys.executable, "manage.py", "import_data", slug, str(DATA / rel), "--format", fmt, "--create-project"], env
                )
                times.append(elapsed)
                rss.append(peak)
        rows.append({"case": label, "format": fmt, "file": rel, "runs": args.repeat,
                     "median_s": round(statistics.median(times), 2), "min_s": round(min(times), 2),
                     "peak_rss_mb": max(rss), "summary": last})

    print(f"{'case':26} {'median s':>9} {'min s':>7} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['case']:26} {r['median_s']:>9} {r['min_s']:>7} {r['peak_rss_mb']:>12}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"python": platform.python_version(), "machine": platform.machine(),
                                    "cpus": os.cpu_count(), "note": "wall time of the whole import_data process, start-up included",
                                    "results": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
