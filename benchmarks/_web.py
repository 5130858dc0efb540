"""What the HTTP benchmarks (load_queue.py, dashboards.py) share: a database of
their own, gunicorn started as the Dockerfile starts it (its config file,
preflab/gunicorn.conf.py), CPU time of the server
and database processes from /proc, percentiles, and the results file.

Only the set-up touches the app's internals (Django in this process, to migrate,
bulk-load and create accounts); everything measured goes over HTTP to gunicorn.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import secrets
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse, urlunparse

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN_DATABASES = {"preflab", "test_preflab"}  # shared with other people's work on this machine
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the database ----------------------------------------------------------------------


def database_url_or_exit() -> str:
    """DATABASE_URL, which must name a PostgreSQL database of the benchmark's own;
    it is created when missing (the benchmarks write with COPY and measure
    PostgreSQL's CPU, so SQLite has no place here)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("set DATABASE_URL=postgres://…/preflab_bench (these benchmarks run on PostgreSQL only)")
    name = urlparse(url).path.lstrip("/").split("?")[0]
    if not name or name in FORBIDDEN_DATABASES:
        sys.exit("use a database of its own (e.g. preflab_bench), not one the test suite or the app uses")
    _create_database(url, name)
    return url


def _create_database(url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlparse(url)
    maintenance = urlunparse(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def server_env(data_dir: str) -> dict[str, str]:
    """Production settings (DEBUG off, so Django keeps no query log, and static files
    come from the manifest) with a throwaway key; plain HTTP on 127.0.0.1."""
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "PREFLAB_ENV_FILE")}
    env.update(
        DEBUG="0", SECRET_KEY=secrets.token_urlsafe(50), PREFLAB_DATA_DIR=data_dir, PREFLAB_SECURE="0",
        ALLOWED_HOSTS="127.0.0.1,localhost", DJANGO_SETTINGS_MODULE="preflab.settings", HF_HUB_OFFLINE="1",
        # a .env beside the code (scripts/dev.sh writes DEBUG=1 there) must not change what is measured
        PREFLAB_ENV_FILE=os.devnull,
    )
    return env


def prepare(env: dict[str, str]) -> None:
    """Migrate and collect static files (the manifest storage needs them), as the
    image does at build time; then set Django up in this process with the same
    settings as the server."""
    for cmd in (["migrate", "--noinput", "-v", "0"], ["collectstatic", "--noinput", "-v", "0"]):
        done = subprocess.run([sys.executable, "manage.py", *cmd], cwd=REPO, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"manage.py {' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


# --- gunicorn --------------------------------------------------------------------------


def production_command() -> list[str]:
    """The Dockerfile's CMD (the production server), so the benchmark follows it
    when it changes."""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD "):
            cmd = json.loads(line[4:])
            if cmd and cmd[0] == "gunicorn":
                return cmd
    sys.exit("Dockerfile has no CMD [\"gunicorn\", …] line to start the server as production does")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """gunicorn as production runs it, bound to a free port on 127.0.0.1; the access
    log goes to a file (as a container's stdout would), not to this terminal."""

    def __init__(self, env: dict[str, str], workers: int | None = None, worker_class: str | None = None,
                 threads: int | None = None) -> None:
        cmd = production_command()
        args = cmd[1:]
        if "--bind" in args:
            i = args.index("--bind")
            del args[i : i + 2]
        # options on the command line win over the config file (preflab/gunicorn.conf.py)
        for flag, value in (("--workers", workers), ("--worker-class", worker_class), ("--threads", threads)):
            if value is not None:
                args[:0] = [flag, str(value)]
        self.port = _free_port()
        self.argv = [sys.executable, "-m", "gunicorn", *args, "--bind", f"127.0.0.1:{self.port}"]
        self.log_path = Path(tempfile.mkstemp(prefix="preflab-bench-gunicorn-", suffix=".log")[1])
        self.env = env
        self.proc: subprocess.Popen | None = None

    @property
    def command(self) -> str:
        return shlex.join(["gunicorn", *self.argv[3:]])

    def settings(self) -> dict:
        """The worker class, workers and threads gunicorn runs with (the config file
        with the command line's overrides), as gunicorn itself resolves them."""
        code = ("import json, sys; from gunicorn.app.wsgiapp import WSGIApplication; "
                "sys.argv = ['gunicorn', *sys.argv[1:]]; c = WSGIApplication().cfg; "
                "print(json.dumps({'worker_class': c.worker_class_str, 'workers': c.workers, 'threads': c.threads}))")
        done = subprocess.run([sys.executable, "-c", code, *self.argv[3:]], cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=60)
        return json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {"error": done.stderr[-500:]}

    def __enter__(self) -> Gunicorn:
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.argv, cwd=REPO, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"gunicorn exited ({self.proc.returncode}):\n{self.log_path.read_text()[-3000:]}")
            try:
                status, _, _ = request(http.client.HTTPConnection("127.0.0.1", self.port, timeout=5), "GET", "/healthz")
                if status == 200 and len(self.worker_pids()) >= 1:
                    self._warm_up()
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        self.__exit__(None, None, None)
        sys.exit(f"gunicorn did not answer /healthz in 120 s:\n{self.log_path.read_text()[-3000:]}")

    def _warm_up(self) -> None:
        """Concurrent requests until every worker has answered one: a worker's first
        request loads the URLconf and opens its database connection (seconds), which
        a long-running production worker paid long ago."""
        def hit() -> None:
            for _ in range(3):
                request(self.connection(), "GET", "/healthz")

        threads = [threading.Thread(target=hit) for _ in range(4 * max(1, len(self.worker_pids())))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def worker_pids(self) -> list[int]:
        return children(self.proc.pid)

    def pids(self) -> list[int]:
        return [self.proc.pid, *self.worker_pids()]

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)


def request(conn: http.client.HTTPConnection, method: str, path: str, *, body: dict | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes, float]:
    """One request on a kept-alive connection: (status, body, seconds). A connection
    the server closed is reopened once."""
    data = json.dumps(body).encode() if body is not None else None
    hdrs = {"Content-Type": "application/json"} if data is not None else {}
    hdrs.update(headers or {})
    for attempt in (0, 1):
        start = time.perf_counter()
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, payload, time.perf_counter() - start
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.CannotSendRequest):
            conn.close()
            if attempt:
                raise
    raise AssertionError("unreachable")


# --- CPU time from /proc -----------------------------------------------------------------


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process, in seconds (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5), after pid and comm


class CpuMeter:
    """CPU seconds spent by a changing set of processes over a window: each pid's
    last reading minus its first (0 for one born inside the window). Sampled every
    ``every`` seconds, so a process that exits between samples loses at most that
    much of its time."""

    def __init__(self, pids_fn, every: float = 0.5) -> None:
        self.pids_fn, self.every = pids_fn, every
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, initial: bool = False) -> None:
        for pid in self.pids_fn():
            value = cpu_seconds(pid)
            if value is None:
                continue
            self.first.setdefault(pid, value if initial else 0.0)
            self.last[pid] = value

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def start(self) -> CpuMeter:
        self._sample(initial=True)
        self._thread.start()
        return self

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self._sample()
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


class PgBackendPids:
    """The server processes serving this database's other connections (gunicorn's
    workers keep theirs open in their pools, or for CONN_MAX_AGE without one), from pg_stat_activity read over one kept
    connection (a new connection per sample would itself be a backend to measure)."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.lock = threading.Lock()

    def __call__(self) -> list[int]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        return [r[0] for r in rows]

    def close(self) -> None:
        self.conn.close()


def table_updates(url: str) -> dict[str, tuple[int, int]]:
    """(updates, of which HOT) per table of the database, from pg_stat_user_tables."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables").fetchall()
    return {name: (upd, hot) for name, upd, hot in rows}


def hot_updates(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> dict[str, dict]:
    """The tables updated between two readings, with how many updates were HOT
    (heap-only: no index entry written, the row's old version pruned in place)."""
    out = {}
    for name, (upd, hot) in sorted(after.items()):
        upd0, hot0 = before.get(name, (0, 0))
        if upd - upd0 > 0:
            out[name] = {"updates": upd - upd0, "hot": hot - hot0, "hot_ratio": round((hot - hot0) / (upd - upd0), 3)}
    return out


# --- figures and the results file ------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) in milliseconds of values in seconds."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[k] * 1000, 1)


def verdict(measured: float | None, target: float, *, at_most: bool) -> str:
    if measured is None:
        return "n/a"
    return "met" if (measured <= target if at_most else measured >= target) else "missed"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def report_header(name: str) -> dict:
    return {
        "benchmark": name, "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
        "cpus": os.cpu_count(), "database": "postgresql " + urlparse(os.environ["DATABASE_URL"]).path.lstrip("/"),
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    }


def write_results(report: dict, out: Path) -> None:
    """The results file, then the final JSON line on stdout."""
    report["load_average_after"] = load_average()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    print(json.dumps(report))
