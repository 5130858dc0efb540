"""Settings for the test suite: the real settings, with a throwaway secret and
plain HTTP so that tests need no hand-set variables (production refuses to start
without a secret and redirects to HTTPS)."""

import os

# The suite never reads a developer's .env (nor do the processes it starts).
os.environ.setdefault("PREFLAB_ENV_FILE", "")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-0123456789abcdefgh")
os.environ.setdefault("PREFLAB_SECURE", "0")

from .settings import *  # noqa: E402,F403
from .settings import STORAGES  # noqa: E402

# Pages render {% static %} without a collectstatic run.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
WHITENOISE_AUTOREFRESH = True

# The PostgreSQL concurrency tests run 32 threads that each hold a connection for
# their whole run, and a pool opens its connections one at a time: room for all of
# them, and time to open them on a loaded machine. (A process given its size, such
# as a gunicorn worker, keeps production's pool.)
if not os.environ.get("PREFLAB_DB_POOL_SIZE") and "pool" in DATABASES["default"].get("OPTIONS", {}):  # noqa: F405
    DATABASES["default"]["OPTIONS"]["pool"].update(max_size=40, timeout=60)  # noqa: F405
