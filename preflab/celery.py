"""The Celery app. Settings come from Django settings (CELERY_* names)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "preflab.settings")

app = Celery("preflab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="preflab.ping")
def ping(value: str = "pong") -> dict:
    """Answers with the value and the worker's host: used by health checks and tests."""
    import socket

    return {"value": value, "host": socket.gethostname(), "pid": os.getpid()}
