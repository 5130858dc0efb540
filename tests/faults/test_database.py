"""With the database down, pages answer 503 saying the service is unavailable, not a
bare 500 (issue #18 point 11). The outage is real: the connection is pointed at a
closed port (PostgreSQL) or a file that cannot be opened (SQLite)."""

import socket

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client
from rest_framework.authtoken.models import Token

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket closes


@pytest.fixture
def database_down(tmp_path):
    conn = connections["default"]
    saved = dict(conn.settings_dict)
    conn.close()
    if conn.vendor == "postgresql":
        conn.close_pool()  # a pool keeps the address it was made with; the next one is made with the closed port
        options = conn.settings_dict["OPTIONS"]
        if "pool" in options:  # production's 3 s wait for a connection (preflab/settings.py), not the suite's
            options = {**options, "pool": {**options["pool"], "timeout": 3}}
        conn.settings_dict.update(HOST="127.0.0.1", PORT=str(_closed_port()), OPTIONS=options)
    else:
        conn.settings_dict["NAME"] = str(tmp_path / "no-such-folder" / "db.sqlite3")
    try:
        yield
    finally:
        conn.close()
        if conn.vendor == "postgresql":
            conn.close_pool()
        conn.settings_dict.clear()
        conn.settings_dict.update(saved)


@pytest.fixture
def signed_in():
    user = get_user_model().objects.create_user(username="rita-researcher", password="pw-for-tests-only")
    web = Client(raise_request_exception=False)
    web.force_login(user)
    return web, Token.objects.create(user=user).key


def test_a_page_says_the_service_is_unavailable_when_the_database_is_down(signed_in, database_down):
    web, _ = signed_in
    resp = web.get("/")
    assert resp.status_code == 503
    assert resp["Retry-After"] == "30"
    body = resp.content.decode()
    assert "<h1>Service unavailable</h1>" in body and "database is not answering" in body
    assert "Traceback" not in body and "rita-researcher" not in body


def test_the_api_answers_503_in_json_when_the_database_is_down(signed_in, database_down):
    _, token = signed_in
    resp = Client(raise_request_exception=False).get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Token {token}")
    assert resp.status_code == 503
    assert resp.json() == {"detail": "The service is unavailable: its database is not answering. Please try again in a minute."}


def test_other_errors_stay_500():
    """Only a database outage becomes 503; a bug is still a server error."""
    from django.test import RequestFactory

    from preflab.errors import server_error

    try:
        raise ValueError("a bug")
    except ValueError:
        resp = server_error(RequestFactory().get("/"))
    assert resp.status_code == 500 and "Retry-After" not in resp
