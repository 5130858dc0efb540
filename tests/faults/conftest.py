"""Fault tests: services that stop while PrefLab runs. Each test that needs Redis
starts its own private ``redis-server`` on a free port (never the machine's 6379)
and stops it when it wants the outage."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from tests.conftest import _missing_service


class PrivateRedis:
    def __init__(self, tmp_path):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while not self.answers():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        assert not self.answers()


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of the test's own; ``.stop()`` makes the outage."""
    if shutil.which("redis-server") is None:
        _missing_service("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    try:
        yield server
    finally:
        server.stop()
