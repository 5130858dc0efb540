"""Fault fixtures: a private Redis the test can stop and start again, with the
Celery app pointed at it (never the machine's Redis on 6379)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from tests.conftest import _missing_service, point_celery_at


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


@pytest.fixture
def private_redis(tmp_path):
    if shutil.which("redis-server") is None:
        _missing_service("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    saved = point_celery_at(server.url)
    try:
        yield server
    finally:
        server.stop()
        point_celery_at(None, saved)
