"""Shared fixtures: personas, projects, real data, and real services.

Services: tests marked ``services`` need PostgreSQL (the suite's DATABASE_URL) or
Redis (PREFLAB_TEST_REDIS_URL, default redis://127.0.0.1:6379/15). Without them the
test is skipped with the reason in the summary, unless PREFLAB_REQUIRE_SERVICES=1
(CI), where a missing service fails the test instead.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.contrib.auth import get_user_model

from annotate import services
from annotate.models import Role

from tests.helpers import process_stop

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("PREFLAB_SHARED_DATA", REPO.parent / "shared" / "data"))
REQUIRE_SERVICES = os.environ.get("PREFLAB_REQUIRE_SERVICES") == "1"
REDIS_URL = os.environ.get("PREFLAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _missing_service(reason: str):
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (PREFLAB_REQUIRE_SERVICES=1: services must be present)")
    pytest.skip(reason)


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_url() -> str:
    if not _reachable(REDIS_URL):
        _missing_service(f"Redis not reachable at {REDIS_URL}")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    return REDIS_URL


@pytest.fixture
def postgres(settings):
    from django.db import connection

    if connection.vendor != "postgresql":
        _missing_service("needs PostgreSQL: run with DATABASE_URL=postgres://…")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (CI always has it)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _data_dir(settings, tmp_path):
    """Each test writes uploads and artifacts under its own temporary folder."""
    settings.UPLOAD_DIR = tmp_path / "uploads"
    settings.MODEL_DIR = tmp_path / "models"
    settings.EXPORT_DIR = tmp_path / "exports"


def make_user(username: str, *, staff: bool = False, password: str = "pw-for-tests-only"):
    user = get_user_model().objects.create_user(username=username, password=password, is_staff=staff)
    return user


@pytest.fixture
def admin_user(db):
    return make_user("ada-admin", staff=True)


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser("sam-superuser", password="pw-for-tests-only")


@pytest.fixture
def superuser_client(superuser):
    """A test client logged in as the superuser, for the Django admin's pages."""
    from django.test import Client

    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def owner(db):
    return make_user("rita-researcher")


@pytest.fixture
def annotator(db):
    return make_user("anna-annotator")


@pytest.fixture
def outsider(db):
    return make_user("olga-outsider")


@pytest.fixture
def project(owner, annotator):
    p = services.project_create(name="Helpfulness", slug="helpfulness", created_by=owner)
    services.membership_set(project=p, user=annotator, role=Role.ANNOTATOR)
    return p


@pytest.fixture
def other_project(db):
    other_owner = make_user("otto-owner")
    return services.project_create(name="Secret", slug="secret", created_by=other_owner)


@pytest.fixture
def celery_eager():
    """Run Celery tasks in-process for the test (the real worker is covered by
    tests/preflab/test_celery_worker.py)."""
    from preflab.celery import app

    app.set_current()  # shared tasks resolve through the current app
    app.conf.task_always_eager = True
    try:
        yield app
    finally:
        app.conf.task_always_eager = False


# --- a real Celery worker process (tests marked ``services``) -----------------------


def _database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
        return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    return f"sqlite:///{s['NAME']}"


@contextlib.contextmanager
def celery_worker(redis_url: str | None, folder: Path, pool: str = "solo"):
    """A Celery worker subprocess over Redis (None: the embedded default, a filesystem
    broker and result files under ``folder``/worker-data) against the test database,
    consuming every queue (the default one and ``score``); yields its Popen, and stops
    it on exit."""
    from django.db import connection

    if connection.vendor == "sqlite" and (":memory:" in connection.settings_dict["NAME"] or "mode=memory" in connection.settings_dict["NAME"]):
        pytest.skip("the worker needs an on-disk test database")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "preflab.settings",
        "SECRET_KEY": "worker-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": redis_url or "",
        "CELERY_RESULT_BACKEND": redis_url or "",
        "PREFLAB_DATA_DIR": str(folder / "worker-data"),
        "PREFLAB_SECURE": "0",
    }
    log = open(folder / "worker.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "preflab", "worker", "--pool", pool,
         "--concurrency", "1", "--loglevel", "INFO", "-n", "pytest@%h", "--queues", "celery,score"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        process_stop(proc, timeout=20)
        log.close()
        if proc.returncode not in (0, -15, None):
            print((folder / "worker.log").read_text()[-4000:])


@pytest.fixture
def worker(request, redis_url, tmp_path):
    """A worker (``celery_worker``) for the test; yields (a Celery client, the worker's
    Popen). Its pool is ``solo`` (tasks run in that process) unless a test asks for
    ``prefork`` (indirect parametrize), as compose runs it."""
    from celery import Celery

    with celery_worker(redis_url, tmp_path, getattr(request, "param", "solo")) as proc:
        # set_as_current=False: otherwise this client becomes Celery's current app and
        # every later shared_task call in the session (celery_eager tests) goes to it.
        yield Celery(broker=redis_url, backend=redis_url, set_as_current=False), proc


def point_celery_at(url: str | None, saved: dict | None = None, **conf) -> dict:
    """Send this process's Celery app's tasks to ``url`` (or back to ``saved``; ``conf``
    sets more of the app's settings), dropping its cached connections and result
    store; returns what it replaced."""
    from kombu import pools

    from preflab.celery import app

    old = {"broker_url": app.conf.broker_url, "result_backend": app.conf.result_backend,
           "task_always_eager": app.conf.task_always_eager,
           "broker_transport_options": app.conf.broker_transport_options}
    new = saved or {"broker_url": url, "result_backend": url, "task_always_eager": False, **conf}
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
def app_on_test_redis(redis_url):
    """This process's Celery app (what views enqueue with) on the test Redis, where the
    ``worker`` fixture's worker listens."""
    saved = point_celery_at(redis_url)
    try:
        yield redis_url
    finally:
        point_celery_at(None, saved)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A tiny random-weight BERT backbone (with MiniLM's tokenizer) for fast training."""
    from tests.models_svc.ml.conftest import build_tiny_backbone

    return str(build_tiny_backbone(tmp_path_factory.mktemp("tiny-svc")))
