"""Login with a failure limit (DESIGN §9): after LOGIN_MAX_FAILURES failed attempts
for one username, or five times that from one address, within LOGIN_WINDOW_SECONDS,
further attempts are refused with 429 until the window passes. Counters live in
the cache (Redis in production, so every gunicorn worker shares them)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache


def _keys(request) -> list[tuple[str, int]]:
    limit = settings.LOGIN_MAX_FAILURES
    ip = request.META.get("REMOTE_ADDR", "?")
    user = (request.POST.get("username") or "").strip().lower()[:150]
    return [(f"login-fail:user:{user}", limit), (f"login-fail:ip:{ip}", limit * 5)]


class LoginView(auth_views.LoginView):
    def post(self, request, *args, **kwargs):
        keys = _keys(request)
        if any((cache.get(key) or 0) >= limit for key, limit in keys):
            # an unbound form: the password is not even checked while locked
            form = self.form_class(request)
            message = f"Too many failed log-in attempts. Try again in {settings.LOGIN_WINDOW_SECONDS // 60} minutes."
            return self.render_to_response(self.get_context_data(form=form, throttled=message), status=429)
        response = super().post(request, *args, **kwargs)
        if response.status_code == 200:  # the form came back: the password was wrong
            for key, _ in keys:
                cache.add(key, 0, settings.LOGIN_WINDOW_SECONDS)
                try:
                    cache.incr(key)
                except ValueError:  # expired between add and incr
                    cache.set(key, 1, settings.LOGIN_WINDOW_SECONDS)
        return response
