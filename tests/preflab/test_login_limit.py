"""Log-in is rate limited (DESIGN §9)."""

import pytest
from django.core.cache import cache
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


def test_repeated_wrong_passwords_lock_that_username_but_not_others(annotator, outsider, settings):
    settings.LOGIN_MAX_FAILURES = 3
    web = Client()
    for _ in range(3):
        resp = web.post("/login/", {"username": annotator.username, "password": "wrong"})
        assert resp.status_code == 200 and "_auth_user_id" not in web.session
    resp = web.post("/login/", {"username": annotator.username, "password": "pw-for-tests-only"})
    assert resp.status_code == 429
    assert "Too many failed log-in attempts" in resp.content.decode()
    assert "_auth_user_id" not in web.session
    # another account from the same address still logs in
    ok = Client().post("/login/", {"username": outsider.username, "password": "pw-for-tests-only"})
    assert ok.status_code == 302


def test_a_correct_password_before_the_limit_logs_in(annotator):
    web = Client()
    web.post("/login/", {"username": annotator.username, "password": "wrong"})
    resp = web.post("/login/", {"username": annotator.username, "password": "pw-for-tests-only"})
    assert resp.status_code == 302 and web.session["_auth_user_id"] == str(annotator.pk)
