"""The 404 and 500 handlers. A database that does not answer is an outage, not a bug, so
the answer is 503 with a page that says so (JSON under /api/), and Retry-After. Under
/api/ a path that matches no route (a slug with characters a slug cannot have) answers
JSON like every other API error, as the schema states."""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views.defaults import page_not_found as django_page_not_found
from django.views.defaults import server_error as django_server_error

UNAVAILABLE = "The service is unavailable: its database is not answering. Please try again in a minute."
RETRY_AFTER_SECONDS = 30


def server_error(request):
    """Django calls this inside its except block, so the exception is sys.exc_info()'s."""
    if not isinstance(sys.exc_info()[1], (OperationalError, InterfaceError)):
        return django_server_error(request)
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": UNAVAILABLE}, status=503)
    else:
        # Rendered without the request: its context processors (the user, messages)
        # would ask the database again.
        response = HttpResponse(render_to_string("503.html", {"message": UNAVAILABLE}), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def page_not_found(request, exception):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return django_page_not_found(request, exception)
