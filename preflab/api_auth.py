"""Token authentication for the API (``REST_FRAMEWORK`` in settings.py names it).

A module of its own: DRF imports it while loading its settings, so it must not
import DRF's views (``preflab.auth`` does, for the token endpoint)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from annotate.compiled import CompiledQuery


def _token_with_user(*, key: str):
    from rest_framework.authtoken.models import Token

    return Token.objects.select_related("user").filter(key=key)[:21]


class CompiledTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, whose one query (the token with its user) is
    compiled once per connection instead of per request (annotate.compiled: the
    ORM's building and compiling was half an annotator request's Python time). Same
    query, answers and errors as DRF's; the OpenAPI schema still names it tokenAuth
    (drf-spectacular matches subclasses)."""

    query = CompiledQuery(_token_with_user, key=str)

    def authenticate_credentials(self, key):
        found = self.query.all(key=key)
        if len(found) != 1:  # DRF's get(): none is invalid (the key is the primary key: never two)
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        token = found[0]
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return (token.user, token)
