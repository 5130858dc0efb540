"""Log-in is rate limited wherever a password is checked (DESIGN §9, issue #18 points 1-2):
the web log-in, the token endpoint and the admin's log-in share one count, per
(username, address) for real accounts and per address for unknown usernames."""

import uuid

import pytest
from axes.models import AccessAttempt
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-only"


def web_login(client, username, password, **extra):
    return client.post("/login/", {"username": username, "password": password}, **extra)


def token_login(client, username, password, **extra):
    return client.post("/api/v1/auth/token/", {"username": username, "password": password}, **extra)


def admin_login(client, username, password, **extra):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password}, **extra)


def test_wrong_passwords_on_the_token_endpoint_lock_it_even_for_the_right_one(annotator):
    api = Client()
    statuses = [token_login(api, annotator.username, "wrong").status_code for _ in range(30)]
    assert statuses[:4] == [400] * 4 and set(statuses[4:]) == {429}
    resp = token_login(api, annotator.username, PASSWORD)
    assert resp.status_code == 429
    detail = resp.json()["detail"]
    assert "5 failed log-ins for this username from your address within 15 minutes" in detail
    assert "Try again in 15 minutes" in detail and resp["Retry-After"] in {"899", "900"}
    assert "token" not in resp.json()
    # refused attempts while locked are not counted, so the stated wait holds
    assert sum(AccessAttempt.objects.values_list("failures_since_start", flat=True)) == 5


def test_web_lock_out_blocks_the_token_endpoint_and_the_admin(admin_user):
    web = Client()
    for _ in range(4):
        resp = web_login(web, admin_user.username, "wrong")
        assert resp.status_code == 200 and "_auth_user_id" not in web.session
    resp = web_login(web, admin_user.username, "wrong")
    assert resp.status_code == 429
    assert "Too many failed log-in attempts" in resp.content.decode()

    locked_web = web_login(Client(), admin_user.username, PASSWORD)
    assert locked_web.status_code == 429 and "Try again in 15 minutes" in locked_web.content.decode()
    assert token_login(Client(), admin_user.username, PASSWORD).status_code == 429
    admin = Client()
    assert admin_login(admin, admin_user.username, PASSWORD).status_code == 429
    assert "_auth_user_id" not in admin.session


def test_token_lock_out_blocks_the_web_and_admin_log_in(admin_user):
    for _ in range(5):
        token_login(Client(), admin_user.username, "wrong")
    web = Client()
    resp = web_login(web, admin_user.username, PASSWORD)
    assert resp.status_code == 429 and "_auth_user_id" not in web.session
    assert admin_login(Client(), admin_user.username, PASSWORD).status_code == 429


def test_admin_failures_count_towards_the_same_limit(annotator):
    for _ in range(3):
        admin_login(Client(), annotator.username, "wrong")
    for _ in range(2):
        token_login(Client(), annotator.username, "wrong")
    assert web_login(Client(), annotator.username, PASSWORD).status_code == 429


def test_a_flood_of_made_up_usernames_never_locks_out_real_accounts(owner, admin_user):
    """25 failures with random usernames from one address (the attack the issue's
    probe ran) lock further unknown usernames from that address, and nobody else."""
    for _ in range(25):
        token_login(Client(), f"nobody-{uuid.uuid4().hex[:8]}", "wrong")
    locked = web_login(Client(), "yet-another-made-up-name", "wrong")
    assert locked.status_code == 429
    assert "25 failed log-ins from your address within 15 minutes" in locked.content.decode()

    web = Client()
    resp = web_login(web, owner.username, PASSWORD)
    assert resp.status_code == 302 and web.session["_auth_user_id"] == str(owner.pk)
    resp = token_login(Client(), admin_user.username, PASSWORD)
    assert resp.status_code == 200 and resp.json()["token"]
    admin = Client()
    assert admin_login(admin, admin_user.username, PASSWORD).status_code == 302
    assert admin.session["_auth_user_id"] == str(admin_user.pk)


def test_an_attack_on_one_account_from_one_address_does_not_lock_it_elsewhere(annotator, outsider):
    for _ in range(5):
        web_login(Client(), annotator.username, "wrong", REMOTE_ADDR="198.51.100.7")
    assert web_login(Client(), annotator.username, PASSWORD, REMOTE_ADDR="198.51.100.7").status_code == 429
    # the same account from another address, and another account from the attacker's
    assert web_login(Client(), annotator.username, PASSWORD, REMOTE_ADDR="203.0.113.9").status_code == 302
    assert web_login(Client(), outsider.username, PASSWORD, REMOTE_ADDR="198.51.100.7").status_code == 302


def test_a_correct_password_before_the_limit_logs_in_and_resets_the_count(annotator):
    web = Client()
    for _ in range(4):
        web_login(web, annotator.username, "wrong")
    resp = web_login(web, annotator.username, PASSWORD)
    assert resp.status_code == 302 and web.session["_auth_user_id"] == str(annotator.pk)
    assert not AccessAttempt.objects.filter(username=annotator.username).exists()


def test_forwarded_for_is_ignored_without_a_trusted_proxy(annotator, settings):
    """With PREFLAB_TRUSTED_PROXIES=0 a client cannot pick a fresh address per guess."""
    settings.TRUSTED_PROXIES = 0
    for i in range(5):
        web_login(Client(), annotator.username, "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
    resp = web_login(Client(), annotator.username, PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert resp.status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}


def test_behind_one_trusted_proxy_the_address_it_saw_is_the_client(annotator, settings):
    """Behind one proxy every request comes from the proxy's socket: the client is
    the entry the proxy appended (the last), never one the client wrote itself."""
    settings.TRUSTED_PROXIES = 1
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for _ in range(5):
        web_login(Client(), annotator.username, "wrong", HTTP_X_FORWARDED_FOR="forged, 198.51.100.7", **proxy)
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.7"}
    assert web_login(Client(), annotator.username, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy).status_code == 429
    # another client behind the same proxy logs in
    web = Client()
    assert web_login(web, annotator.username, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.9", **proxy).status_code == 302
    # a request that skipped the proxy (no header) counts under its socket address
    web_login(Client(), annotator.username, "wrong", REMOTE_ADDR="192.0.2.50")
    assert AccessAttempt.objects.filter(ip_address="192.0.2.50").exists()
