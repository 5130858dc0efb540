"""Liveness for load balancers and compose health checks."""

from __future__ import annotations

import logging

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

log = logging.getLogger(__name__)


def _database() -> str | None:
    """None when the database answers, else the driver's error."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any database failure means "not ready"
        return str(exc)[:300]
    return None


def _broker() -> str | None:
    """None when the Celery broker takes a connection (within 2 s), else the error."""
    from .celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    except Exception as exc:  # refused, timed out, bad credentials: all mean "jobs cannot be queued"
        return str(exc)[:300]
    return None


@require_GET
def healthz(request):
    """200 ``ok`` when the database and the job queue answer; 200 ``degraded`` when
    only the queue is down (pages work, jobs are refused with a message); 503
    ``unavailable`` when the database is down. Host names and driver errors go to
    the log, and to staff; anyone else sees only which part is down."""
    errors = {"database": _database(), "broker": _broker()}
    for part, error in errors.items():
        if error:
            log.warning("healthz: %s unreachable: %s", part, error)
    body = {part: "unreachable" if error else "ok" for part, error in errors.items()}
    status = "unavailable" if errors["database"] else "degraded" if errors["broker"] else "ok"
    body = {"status": status, **body}
    # request.user reads the session from the database: only ask when it answers
    if not errors["database"] and request.user.is_authenticated and request.user.is_staff:
        body["details"] = {part: error for part, error in errors.items() if error}
        body["details"]["database_vendor"] = connection.vendor
    return JsonResponse(body, status=503 if status == "unavailable" else 200)
