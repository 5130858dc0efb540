"""Log-in limits (DESIGN §9), enforced by django-axes wherever a password is checked.

Axes sits in front of Django's ``authenticate()``, so the web log-in, the token
endpoint, the Django admin's log-in and any later form that authenticates share one
count. The functions here are the policy axes calls (settings.py names them):

- an existing username: ``LOGIN_MAX_FAILURES`` failures for that username from one
  client address lock that pair for ``LOGIN_WINDOW_SECONDS``. The same account from
  another address is not locked, so an attack on one account never locks everyone
  behind a shared address out of theirs, and a flood of made-up usernames never
  locks a real account.
- an unknown username: ``LOGIN_MAX_ADDRESS_FAILURES`` failures of any kind from one
  address lock unknown usernames from that address (a slower per-address brake on
  guessing accounts).

Counts live in the database (axes' AccessAttempt rows), so log-in does not depend
on Redis. The client address is ``REMOTE_ADDR``, or, behind
``PREFLAB_TRUSTED_PROXIES`` proxies, the address the outermost trusted proxy saw.
"""

from __future__ import annotations

import ipaddress
import math

from axes.backends import AxesStandaloneBackend
from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone
from rest_framework.authtoken.views import ObtainAuthToken

USERNAME_MAX = 150  # Django's username column; longer input cannot name an account


def client_username(request, credentials) -> str:
    """The username as the log-in forms read it (stripped), for counting."""
    if credentials:
        raw = credentials.get("username")
    else:
        raw = getattr(request, "data", request.POST).get("username")
    return str(raw or "").strip()[:USERNAME_MAX]


def _ip(value: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address((value or "").strip()))
    except ValueError:
        return None


def client_address(request) -> str | None:
    """The client's address: REMOTE_ADDR, or behind N trusted proxies the N-th
    X-Forwarded-For entry from the right (each proxy appends the address that
    connected to it, so entries further left are whatever the client sent).
    None where there is no address (a unix socket, a test request without one)."""
    remote = _ip(request.META.get("REMOTE_ADDR"))
    proxies = settings.TRUSTED_PROXIES
    if not proxies:
        return remote
    forwarded = [part for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < proxies:
        return remote  # reached us without passing every proxy: only the socket is known
    return _ip(forwarded[-proxies]) or remote


def _known(username: str) -> bool:
    if not username:
        return False
    model = get_user_model()
    return model._default_manager.filter(**{model.USERNAME_FIELD: username}).exists()


def lockout_parameters(request, credentials) -> list:
    if _known(client_username(request, credentials)):
        return [["username", "ip_address"]]
    return ["ip_address"]


def failure_limit(request, credentials) -> int:
    if _known(client_username(request, credentials)):
        return settings.LOGIN_MAX_FAILURES
    return settings.LOGIN_MAX_ADDRESS_FAILURES


def _seconds_left(request, credentials) -> int:
    """Until the newest counted failure leaves the window: the lock lifts then at the latest."""
    AxesProxyHandler.update_request(request)  # no-op unless DRF's wrapper had the attributes
    attempts = AxesProxyHandler.get_implementation().get_user_attempts(request, credentials)
    newest = max((a.attempt_time for qs in attempts for a in qs.only("attempt_time")), default=None)
    if newest is None:
        return settings.LOGIN_WINDOW_SECONDS
    left = newest + timezone.timedelta(seconds=settings.LOGIN_WINDOW_SECONDS) - timezone.now()
    return max(1, math.ceil(left.total_seconds()))


def lockout_message(request, credentials) -> tuple[str, int]:
    window = settings.LOGIN_WINDOW_SECONDS // 60
    if _known(client_username(request, credentials)):
        limit = f"{settings.LOGIN_MAX_FAILURES} failed log-ins for this username from your address within {window} minutes"
    else:
        limit = f"{settings.LOGIN_MAX_ADDRESS_FAILURES} failed log-ins from your address within {window} minutes"
    seconds = _seconds_left(request, credentials)
    minutes = math.ceil(seconds / 60)
    wait = f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"Too many failed log-in attempts ({limit}). Try again in {wait}.", seconds


def lockout_response(request, original_response=None, credentials=None):
    """429 with the limit and the wait: JSON for the API, the log-in page elsewhere."""
    message, seconds = lockout_message(request, credentials)
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message}, status=429)
    else:
        # an unbound form: the password is not even checked while locked
        context = {"form": AuthenticationForm(request), "throttled": message, "next": request.POST.get("next", "")}
        response = render(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response


class LoginLimitBackend(AxesStandaloneBackend):
    """Axes' backend, except that a call without a request (server-side code: the
    test client's login(), scripts) is let through instead of raising: no client
    presents the password, so there is no address to count."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class TokenView(ObtainAuthToken):
    """DRF's token endpoint. Axes flags a locked-out attempt on the request it was
    given, here DRF's wrapper; copy the flag to Django's request, where axes'
    middleware looks for it and answers 429."""

    def finalize_response(self, request, response, *args, **kwargs):
        if getattr(request, "axes_locked_out", False):
            request._request.axes_locked_out = True
            request._request.axes_credentials = getattr(request, "axes_credentials", None)
        return super().finalize_response(request, response, *args, **kwargs)
