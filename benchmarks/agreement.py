"""Agreement figures of the real multi-annotator datasets, and how long they take.

Each dataset is imported with `manage.py import_data` into a fresh SQLite database
in a temporary folder, then measured with `manage.py agreement --json`, each as its
own process (so the time is the command's, start-up included).

    .venv/bin/python benchmarks/agreement.py [--out benchmarks/results/agreement.json]

Prints a table, ends with one JSON line, writes the results file. Reads
../shared/data (see its README).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("PREFLAB_SHARED_DATA", REPO.parent / "shared" / "data"))
CASES = [
    ("summarize batch13", "summarize", "summarize-from-feedback/batch13.json"),
    ("summarize cnndm", "summarize", "summarize-from-feedback/batch0_cnndm.json"),
    ("pandalm testset", "pandalm", "pandalm/testset-v1.json"),
]
SHOWN = ("raw_agreement", "krippendorff_alpha_nominal", "fleiss_kappa", "gwet_ac1")


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return time.perf_counter() - start, out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "agreement.json")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} is absent")
    rows = []
    for label, fmt, rel in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "DEBUG": "1", "PREFLAB_DATA_DIR": tmp}
            env.pop("DATABASE_URL", None)
            _run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], env)
            _run([sys.executable, "manage.py", "import_data", "bench", str(DATA / rel), "--format", fmt,
                  "--create-project"], env)
            seconds, out = _run([sys.executable, "manage.py", "agreement", "bench", "--json"], env)
        overall = json.loads(out)["criteria"][0]["statistics"]
        rows.append({"case": label, "file": rel, "command_s": round(seconds, 2),
                     "n_items": overall["raw_agreement"]["n_items"], "n_raters": overall["raw_agreement"]["n_raters"],
                     "n_pairs": overall["raw_agreement"]["n_pairs"],
                     **{name: overall[name]["value"] for name in SHOWN}})
    print(f"{'case':20} {'items':>6} {'raters':>6} {'pairs':>6} " + " ".join(f"{n[:14]:>14}" for n in SHOWN) + f" {'s':>6}")
    for r in rows:
        print(f"{r['case']:20} {r['n_items']:>6} {r['n_raters']:>6} {r['n_pairs']:>6} "
              + " ".join(f"{r[n]:>14}" for n in SHOWN) + f" {r['command_s']:>6}")
    load = os.getloadavg()
    result = {"benchmark": "agreement", "python": platform.python_version(), "machine": platform.machine(),
              "cpus": os.cpu_count(), "load_average": [round(x, 2) for x in load],
              "command": "python benchmarks/agreement.py", "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
