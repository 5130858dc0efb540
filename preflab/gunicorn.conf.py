"""gunicorn for PrefLab's web tier. The Dockerfile's CMD (and so docker compose's
``web``), benchmarks/_web.py and tests/preflab/test_gunicorn.py all start

    gunicorn --config preflab/gunicorn.conf.py preflab.wsgi:application

Options given on the command line (or in GUNICORN_CMD_ARGS) win over this file.
Why these values: docs/performance.md, "The web tier".

| variable | default | meaning |
|---|---|---|
| WEB_CONCURRENCY | the CPUs the container may use, at least 2 | worker processes |
| PREFLAB_WEB_THREADS | 4 | threads per worker (requests in flight per process) |
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def _cores() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 quota
    (``docker run --cpus``), which os.cpu_count() does not see."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name}={raw!r} must be a whole number of at least 1 (preflab/gunicorn.conf.py)")
    return int(raw)


# Threads, not one process per request: a lease or submit spends part of its time
# waiting on PostgreSQL, which another thread's Python can use; a slow page, an
# upload or a streamed download holds one thread instead of a whole process; and
# connections stay open between requests (sync workers close each one). The GIL
# runs one thread's Python at a time, so processes, not threads, use the cores.
worker_class = "gthread"
workers = _env_int("WEB_CONCURRENCY", max(2, _cores()))
threads = _env_int("PREFLAB_WEB_THREADS", 4)
bind = ["0.0.0.0:8000"]

# Each worker imports the app after its fork (no preload): no database pool, Redis
# or Celery connection is ever shared by two processes, and a HUP loads new code.
# A recycled worker re-imports, which the long max_requests below makes rare.
preload_app = False

# A worker restarts after about 20,000 requests (jitter spreads the restarts), so a
# leak stays bounded while the re-import costs well under 0.1 ms per request.
max_requests = 20000
max_requests_jitter = 2000

# gthread's main thread beats while requests run in other threads: this kills a
# hung process, not a long request. A restart (max_requests, HUP) lets uploads
# and downloads in flight finish for up to graceful_timeout.
timeout = 60
graceful_timeout = 120
# Longer than a reverse proxy keeps an idle upstream connection (nginx: 60 s), so
# the proxy, not gunicorn, closes it and never reuses one gunicorn just closed.
keepalive = 75

accesslog = "-"
# The heartbeat file in memory: on a container's overlay /tmp a slow disk write can
# stall the beat and get a healthy worker killed.
if Path("/dev/shm").is_dir():
    worker_tmp_dir = "/dev/shm"


def post_fork(server, worker):
    """Size the worker's PostgreSQL pool (preflab/settings.py) to its threads, unless
    PREFLAB_DB_POOL_SIZE is set: a connection for each request in flight, so none
    waits for one; and plan without merge joins unless PREFLAB_DB_NO_MERGEJOIN is set."""
    os.environ.setdefault("PREFLAB_DB_POOL_SIZE", str(server.cfg.threads))
    # web requests plan without merge joins (preflab/settings.py says why)
    os.environ.setdefault("PREFLAB_DB_NO_MERGEJOIN", "1")
