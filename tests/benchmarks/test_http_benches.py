"""The HTTP benchmarks (benchmarks/load_queue.py, benchmarks/dashboards.py) at tiny
scale on PostgreSQL: each builds its project, starts gunicorn and ends with a JSON
line whose integrity fields and page checks must hold. They run in a database of
their own beside the test database (created by the script, kept for reuse)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.services


@pytest.fixture
def bench_env(postgres, tmp_path):
    from django.db import connection

    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    url = f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    parts = urlparse(url)
    name = parts.path.lstrip("/").removeprefix("test_") + "_http_bench"
    return {**os.environ, "DATABASE_URL": urlunparse(parts._replace(path=f"/{name}"))}


def _run(script: str, args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, dict]:
    done = subprocess.run([sys.executable, f"benchmarks/{script}", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"{script} printed no JSON line (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done, json.loads(lines[-1])


def test_load_queue_tiny_keeps_every_label_exactly_once(bench_env, tmp_path):
    out = tmp_path / "load.json"
    done, result = _run("load_queue.py", [
        "--pairs", "300", "--annotators", "3", "--seconds", "4", "--overlap", "2", "--fresh",
        "--double-rate", "0.3", "--skip-rate", "0.1", "--abandon-rate", "0.2", "--max-abandoned", "3", "--out", str(out),
    ], bench_env)
    assert done.returncode == 0, done.stderr[-3000:]
    checks = result["integrity"]
    assert checks["ok"] is True
    assert checks["successful_submits"] > 0
    assert checks["labels"] == checks["successful_submits"] == checks["submits_with_label"]
    assert checks["duplicates"] == 0 and checks["over_quota"] == 0 and checks["live_leases_over_quota"] == 0
    assert result["double_submits"] > 0 and result["double_submit_other_label"] == 0
    assert result["next_task_ms"]["p95"] is not None and result["submits_per_s"] > 0
    assert result["cpu_s"]["gunicorn"] > 0  # the server's processes were found and measured
    assert result["verdicts"]["next_task_p95"] in ("met", "missed")
    assert result["hot_updates"] and all(t["updates"] >= t["hot"] >= 0 for t in result["hot_updates"].values())
    assert json.loads(out.read_text())["integrity"] == checks
    assert "load average" in result["uptime"]


def test_dashboards_tiny_every_page_answers_with_content(bench_env, tmp_path):
    out = tmp_path / "dash.json"
    done, result = _run("dashboards.py", ["--judgments", "200", "--repeat", "2", "--no-report", "--out", str(out)],
                        bench_env)
    assert done.returncode == 0, done.stderr[-3000:]
    pages = {p["page"]: p for p in result["pages"]}
    assert set(pages) == {"project page", "progress page", "progress fragment", "quality dashboard", "annotator home",
                          "annotator work page"}
    for page in pages.values():
        assert page["ok"] is True and page["failures"] == [], page
        assert page["bytes"] > 200 and page["p95_ms"] is not None
    assert pages["progress fragment"]["bytes"] < pages["progress page"]["bytes"]  # the fragment, not the whole page
    assert result["all_ok"] is True


def test_profile_requests_tiny_measures_both_routes_and_profiles_by_layer(bench_env, tmp_path):
    out = tmp_path / "profile.json"
    done, result = _run("profile_requests.py", [
        "--pairs", "60", "--annotators", "2", "--cycles", "20", "--warmup", "5", "--profile", "--profile-cycles", "10",
        "--out", str(out),
    ], bench_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert result["failures"] == {} and result["submitted"] == 35  # warm-up, timed and profiled cycles
    for route, statements in (("lease", 5), ("submit", 4)):  # tests/annotate/test_api_queries.py's budgets
        figures = result["routes"][route]
        assert figures["requests"] == 20 and figures["statements"] <= statements
        assert figures["python_cpu_ms"] > 0 and figures["postgres_cpu_ms"] > 0  # both sides were measured
    assert result["cycle_bound_per_s_on_2_cores"] == round(2000 / result["server_cpu_ms_per_cycle"], 1)
    layers = {row["layer"]: row for row in result["profile"]["layers"]}
    assert abs(sum(row["share"] for row in layers.values()) - 1) < 0.01  # self time, nothing counted twice
    assert layers["ORM: query building and SQL compile"]["ms_per_request"] > 0
    assert json.loads(out.read_text())["routes"] == result["routes"]
    assert "load average" in result["uptime"]
