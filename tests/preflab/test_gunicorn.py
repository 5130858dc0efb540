"""The production web tier as it runs: gunicorn with preflab/gunicorn.conf.py (the
Dockerfile's CMD) serves pages and API routes from the test database, and its
worker processes never load torch (DESIGN §10, issue #19 point 5). What a worker
loaded is read from /proc/<pid>/maps, which no code path of the app can hide."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from annotate.models import Judgment

from tests.conftest import REPO, _database_url
from tests.factories import fill
from tests.helpers import free_port, process_stop

pytestmark = pytest.mark.django_db(transaction=True)


def mapped_files(pid: int) -> set[str]:
    """Paths of the files (shared libraries, extension modules) mapped into a process."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {parts[5] for parts in (line.split(maxsplit=5) for line in lines) if len(parts) == 6 and parts[5].startswith("/")}


def torch_libraries(pid: int) -> list[str]:
    """torch's native libraries (libtorch*, libc10, its extension module) in a process."""
    return sorted(p for p in mapped_files(pid)
                  if "/torch/" in p or Path(p).name.startswith(("libtorch", "libc10")))


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _get(port: int, path: str, *, method: str = "GET", headers: dict | None = None,
         body: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={**({"Content-Type": "application/json"} if data else {}),
                                                       **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@contextlib.contextmanager
def served(tmp_path: Path, **extra_env: str):
    """gunicorn started as the Dockerfile starts it (its config file), bound to a free
    port, on the test database (and ``extra_env``); yields (port, master pid)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "PREFLAB_DB_POOL_SIZE", "WEB_CONCURRENCY",
                                                            "PREFLAB_WEB_THREADS", "GUNICORN_CMD_ARGS")}
    env.update(
        # the test settings: production ones with plain HTTP and unhashed static names (no collectstatic)
        DJANGO_SETTINGS_MODULE="preflab.test_settings", DEBUG="0", DATABASE_URL=_database_url(),
        PREFLAB_DATA_DIR=str(tmp_path / "data"), ALLOWED_HOSTS="127.0.0.1", PREFLAB_ENV_FILE="", **extra_env,
    )
    cmd = json.loads(next(line[4:] for line in (REPO / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")))
    assert cmd[0] == "gunicorn" and "preflab/gunicorn.conf.py" in cmd
    log = open(tmp_path / "gunicorn.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", *cmd, "--bind", f"127.0.0.1:{port}"], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()[-3000:]
            try:
                if _get(port, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()[-3000:]
            time.sleep(0.3)
        yield port, proc.pid
    finally:
        process_stop(proc, timeout=30)
        log.close()


@pytest.fixture
def gunicorn(tmp_path):
    with served(tmp_path) as started:
        yield started


def test_gunicorn_workers_serve_pages_and_api_without_loading_torch(gunicorn, project, owner, annotator):
    port, master = gunicorn
    fill(project, prompts=2)
    token = {"Authorization": f"Token {Token.objects.create(user=annotator).key}"}
    researcher = {"Authorization": f"Token {Token.objects.create(user=owner).key}"}
    web = Client()
    web.force_login(owner)
    cookie = {"Cookie": f"sessionid={web.cookies['sessionid'].value}"}
    slug = project.slug

    # two rounds, so each worker (the master hands connections to whichever accepts) likely serves several
    for _ in range(2):
        assert _get(port, "/login/")[0] == 200
        for page in ("/", f"/p/{slug}/", f"/p/{slug}/progress/", f"/p/{slug}/quality/", f"/p/{slug}/models/",
                     f"/p/{slug}/selection/"):
            status, body = _get(port, page, headers=cookie)
            assert status == 200, (page, body[:300])
            assert b"Helpfulness" in body, page
        status, body = _get(port, "/api/v1/projects/", headers=token)
        assert status == 200 and slug in body.decode()
        assert _get(port, "/api/v1/schema/", headers=token)[0] == 200  # imports every serializer, models_svc's too
        # scoring with no active model answers before any model would load
        status, body = _get(port, f"/api/v1/projects/{slug}/score/", method="POST", headers=researcher,
                            body={"items": [{"conversation": [{"role": "user", "content": "hi"}], "responses": ["a"]}]})
        assert status == 409, body[:300]
    status, body = _get(port, f"/api/v1/projects/{slug}/tasks/next/", method="POST", headers=token,
                        body={"kind": "pairwise"})
    assert status == 200, body[:300]
    task = json.loads(body)
    status, _ = _get(port, f"/api/v1/tasks/{task['assignment']}/submit/", method="POST", headers=token,
                     body={"preference": 1, "idempotency_key": "gunicorn-test"})
    assert status == 200
    assert Judgment.objects.filter(assignment_id=task["assignment"], annotator=annotator).count() == 1

    workers = _children(master)
    assert len(workers) >= 2  # the config's default: at least two processes
    for pid in workers:
        files = mapped_files(pid)
        # the worker imported the app and talked to the database (its driver is mapped)
        assert any("psycopg" in f or "_sqlite3" in f for f in files), sorted(files)[:20]
        assert torch_libraries(pid) == [], (pid, torch_libraries(pid)[:5])


@pytest.mark.services
def test_gunicorn_answers_synchronous_scores_from_the_score_worker_without_loading_torch(
        tmp_path, project, owner, tiny, worker, redis_url):
    """With an active model, a score without "background" is answered 200 by the
    workers' threads waiting on the Celery worker, and still no web worker maps torch."""
    from models_svc.services import lifecycle, scoring
    from tests.factories import fast_training, labelled_for_training

    labelled_for_training(project, tiny, prompts=3)
    run = lifecycle.training_run_execute(run_id=lifecycle.training_run_enqueue(
        project=project, objective="bt", overrides=fast_training()).pk)
    lifecycle.model_version_promote(version=run.version)
    researcher = {"Authorization": f"Token {Token.objects.create(user=owner).key}"}
    bodies = [{"items": [{"prompt": f"Question {i}?", "responses": [f"Answer {i}.", "No idea." * (i + 1)]}]}
              for i in range(6)]
    url = f"/api/v1/projects/{project.slug}/score/"
    with served(tmp_path, CELERY_BROKER_URL=redis_url, CELERY_RESULT_BACKEND=redis_url) as (port, master):
        # at once: threads of one web worker wait on the result store side by side
        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(lambda body: _get(port, url, method="POST", headers=researcher, body=body),
                                    bodies))
        workers = _children(master)
        assert workers and all(torch_libraries(pid) == [] for pid in workers), [torch_libraries(p)[:3] for p in workers]
    for body, (status, answer) in zip(bodies, answers):
        assert status == 200, answer[:300]
        got = json.loads(answer)
        expected = scoring.rewards_score(project=project, items=[
            {"conversation": [{"role": "user", "content": body["items"][0]["prompt"]}],
             "responses": body["items"][0]["responses"]}])
        assert got["model_version"] == 1
        # each request got its own answer, as this process scores the same texts
        assert [s["reward"] for s in got["results"][0]] == pytest.approx(
            [s["reward"] for s in expected["results"][0]], abs=1e-5)


def test_maps_check_sees_torch_in_a_process_that_imported_it():
    """The check above is not blind: a process that imports torch shows its libraries."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys, torch; print('ready', flush=True); sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        found = torch_libraries(proc.pid)
        assert any(Path(f).name.startswith("libtorch") for f in found), found
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
