"""Log-in does not depend on Redis (issue #18 point 4): with the cache and the
broker pointing at a Redis that has stopped, the web log-in and the token endpoint
still work, and the failure limit still counts."""

import pytest
import redis
from django.core.cache import cache
from django.test import Client

pytestmark = [pytest.mark.faults, pytest.mark.django_db]

PASSWORD = "pw-for-tests-only"


@pytest.fixture
def redis_down(private_redis, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": private_redis.url}}
    settings.CELERY_BROKER_URL = private_redis.url
    settings.CELERY_RESULT_BACKEND = private_redis.url
    cache.set("probe", 1)  # the cache really is this Redis while it runs
    assert cache.get("probe") == 1
    private_redis.stop()
    with pytest.raises(redis.exceptions.ConnectionError):
        cache.get("probe")
    return private_redis


def test_web_log_in_works_while_redis_is_down(redis_down, annotator):
    web = Client(raise_request_exception=False)
    resp = web.post("/login/", {"username": annotator.username, "password": PASSWORD})
    assert resp.status_code == 302 and web.session["_auth_user_id"] == str(annotator.pk)
    assert web.get("/").status_code == 200


def test_token_log_in_works_while_redis_is_down(redis_down, annotator):
    api = Client(raise_request_exception=False)
    resp = api.post("/api/v1/auth/token/", {"username": annotator.username, "password": PASSWORD})
    assert resp.status_code == 200 and resp.json()["token"]
    projects = api.get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Token {resp.json()['token']}")
    assert projects.status_code == 200


def test_the_failure_limit_still_holds_while_redis_is_down(redis_down, annotator):
    web = Client(raise_request_exception=False)
    statuses = [web.post("/login/", {"username": annotator.username, "password": "wrong"}).status_code for _ in range(6)]
    assert statuses == [200] * 4 + [429] * 2
