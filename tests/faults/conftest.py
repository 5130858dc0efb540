"""Fault fixtures: a private Redis the test can stop and start again, with the
Celery app pointed at it (never the machine's Redis on 6379)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from tests.conftest import _missing_service


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    def __init__(self, folder):
        self.port = _free_port()
        self.folder = folder
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def queued(self, queue: str = "celery") -> int:
        import redis

        return redis.Redis.from_url(self.url).llen(queue)


def _point_celery_at(url: str | None, saved: dict | None = None) -> dict:
    """Send the Celery app's tasks to ``url`` (or back to ``saved``), dropping its
    cached connections and result store."""
    from kombu import pools

    from preflab.celery import app

    old = {"broker_url": app.conf.broker_url, "result_backend": app.conf.result_backend,
           "task_always_eager": app.conf.task_always_eager}
    new = saved or {"broker_url": url, "result_backend": url, "task_always_eager": False}
    app.conf.update(new)
    # Close and forget every kombu pool: kombu keeps them in global groups keyed by
    # connection, so closing only the app's pool left a closed pool behind for the
    # machine's Redis, and every later test's publish failed ("Acquire on closed pool").
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None
    app._backend = app._get_backend()
    return old


@pytest.fixture
def private_redis(tmp_path):
    if shutil.which("redis-server") is None:
        _missing_service("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    saved = _point_celery_at(server.url)
    try:
        yield server
    finally:
        server.stop()
        _point_celery_at(None, saved)
