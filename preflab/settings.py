"""PrefLab settings, read from the environment.

Every value has an embedded default (SQLite, a filesystem Celery broker, CPU) so a
fresh checkout runs with no services; production sets the variables below. A
``.env`` file at the top of the checkout is read first (scripts/dev.sh writes one);
variables set in the environment win over it. A bad
value stops start-up with a message naming the variable instead of failing later.

| variable | default | meaning |
|---|---|---|
| DEBUG | 0 | development mode (also allows the dev SECRET_KEY) |
| SECRET_KEY | dev key when DEBUG | required when DEBUG is off; placeholders (.env.example's) are refused |
| PREFLAB_ENV_FILE | ./.env | a file of VAR=value lines read first (the environment wins); empty: none |
| ALLOWED_HOSTS | localhost,127.0.0.1 (DEBUG: also *) | comma separated |
| CSRF_TRUSTED_ORIGINS | empty | comma separated origins (https://host) |
| DATABASE_URL | sqlite:///$PREFLAB_DATA_DIR/preflab.sqlite3 | postgres://user@host:5432/db in production |
| PREFLAB_DB_POOL_SIZE | 4; in gunicorn its threads per worker | PostgreSQL connections pooled per process (psycopg_pool); 0: no pool, persistent connections |
| PREFLAB_DB_NO_MERGEJOIN | 0; in gunicorn 1 | PostgreSQL plans without merge joins on this process's connections (web requests look rows up by key; see below) |
| CELERY_BROKER_URL | filesystem broker under $PREFLAB_DATA_DIR/broker | redis://host:6379/0 in production |
| CELERY_RESULT_BACKEND | same Redis as the broker, else files | where task results go |
| CELERY_TASK_ALWAYS_EAGER | 0 | run tasks in-process (tests only) |
| PREFLAB_DATA_DIR | ./var | models, exports, uploads, broker files |
| PREFLAB_SECURE | 1 unless DEBUG | HTTPS-only cookies, HSTS, SSL redirect (behind TLS) |
| PREFLAB_IMPORT_MAX_MB | 512 | largest accepted upload |
| PREFLAB_IMPORT_MAX_INFLATED_MB | 2048 | largest an import may inflate to (gzip), else rejected |
| PREFLAB_IMPORT_MAX_LINE_MB | 16 | longest line (CSV, JSON Lines) or JSON array element of an import |
| PREFLAB_LOGIN_MAX_FAILURES | 5 | failed log-ins for one username from one address before 429 |
| PREFLAB_LOGIN_MAX_ADDRESS_FAILURES | 5 × the above | failed log-ins from one address before unknown usernames get 429 |
| PREFLAB_LOGIN_WINDOW_MINUTES | 15 | how long failures count, and the longest wait after a lock |
| PREFLAB_TRUSTED_PROXIES | 0 | reverse proxies in front that append X-Forwarded-For (1 behind one TLS proxy) |
| PREFLAB_JOB_PICKUP_MINUTES | 60 | a job no worker picked up in this time is failed (the sweep) |
| PREFLAB_SCORE_MAX_ITEMS | 64 | prompts per scoring request (more: 413) |
| PREFLAB_SCORE_MAX_RESPONSES | 256 | responses per scoring request, all items together (more: 413) |
| PREFLAB_SCORE_JOB_MAX_RESPONSES | 20000 | responses in one background scoring job (`"background": true`; more: 413) |
| PREFLAB_SCORE_MAX_TEXT_CHARS | 20000 | characters per prompt turn or response to score (more: 413) |
| PREFLAB_SCORE_WAIT_S | 30 | seconds a synchronous score waits for the `score` queue's worker (then 504) |
| PREFLAB_STATIC_ROOT | $PREFLAB_DATA_DIR/staticfiles | where collectstatic writes |
| ARROW_DEFAULT_MEMORY_POOL | system | Arrow's allocator (pyarrow's own variable; its default, mimalloc, keeps more memory) |
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent

# A local .env (scripts/dev.sh writes one with DEBUG=1 and a generated secret) fills
# in what the environment does not set; the environment always wins.
ENV_FILE = os.environ.get("PREFLAB_ENV_FILE", str(BASE_DIR / ".env"))
if ENV_FILE:
    load_dotenv(ENV_FILE, override=False)

# Arrow (Parquet exports and imports, datasets folders) allocates through its default
# pool, chosen once, at the first use, from this variable. Its bundled mimalloc keeps
# freed pages: a Parquet export of a few MB per chunk held ~20 MB more at its peak than
# with the C library's allocator (docs/performance.md), so processes default to that.
# It must be set before pyarrow is first used, hence here.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use 1/0, true/false, yes/no or on/off.")


def _env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
    return value


def _env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = _env_bool("DEBUG", False)

DATA_DIR = Path(os.environ.get("PREFLAB_DATA_DIR") or BASE_DIR / "var").resolve()
try:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
except OSError as exc:
    raise ImproperlyConfigured(f"PREFLAB_DATA_DIR={str(DATA_DIR)!r} cannot be created: {exc}") from None
UPLOAD_DIR = DATA_DIR / "uploads"
MODEL_DIR = DATA_DIR / "models"
EXPORT_DIR = DATA_DIR / "exports"

# Words that mark a key someone was meant to replace (.env.example's, Django's
# startproject "django-insecure-…", the dev key below).
_PLACEHOLDER_MARKS = ("change-me", "changeme", "change_me", "replace-me", "replaceme", "your-secret", "placeholder", "insecure", "example")


def _placeholder_secret(key: str) -> bool:
    lowered = key.lower()
    return len(set(key)) < 5 or lowered in {"secret", "secret_key", "secretkey", "django"} or any(
        mark in lowered for mark in _PLACEHOLDER_MARKS
    )


SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it (50+ random characters) or set DEBUG=1 for development "
            "(scripts/dev.sh writes a .env with both)."
        )
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-0123456789abcdefghij"
elif not DEBUG and _placeholder_secret(SECRET_KEY):
    raise ImproperlyConfigured(
        "SECRET_KEY is a placeholder, not a secret. Set 50+ random characters, e.g. the output of "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
    )

ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] + (["*"] if DEBUG else []))
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS", [])
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"CSRF_TRUSTED_ORIGINS entry {_origin!r} must start with http:// or https://.")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "frontend",
    "rubrics",
    "annotate",
    "models_svc",
    "quality",
    "dataio",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "preflab.queue_errors.JobQueueErrorMiddleware",
    # Last, as axes asks: turns a locked-out log-in into preflab.auth.lockout_response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "preflab.urls"
WSGI_APPLICATION = "preflab.wsgi.application"
ASGI_APPLICATION = "preflab.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_default_db = f"sqlite:///{DATA_DIR / 'preflab.sqlite3'}"
_database_url = os.environ.get("DATABASE_URL") or _default_db
try:
    _db = dj_database_url.parse(_database_url, conn_max_age=60)
except Exception as exc:  # the library raises several types; all mean the same to a user
    raise ImproperlyConfigured(f"DATABASE_URL={_database_url!r} cannot be parsed: {exc}") from None
if _db["ENGINE"] not in {"django.db.backends.sqlite3", "django.db.backends.postgresql"}:
    raise ImproperlyConfigured(f"DATABASE_URL must be sqlite:// or postgres://, got engine {_db['ENGINE']!r}.")
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: wait for locks instead of failing, and
    # start write transactions eagerly so two writers never deadlock on upgrade.
    _db["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    _db["CONN_MAX_AGE"] = 0
    # Tests that start a worker process need the test database on disk, not in memory.
    _db["TEST"] = {"NAME": str(DATA_DIR / "test_preflab.sqlite3")}
else:
    # A connection is checked (one round trip) before a request uses it, so one that
    # PostgreSQL dropped (restart, failover) is replaced instead of failing the request.
    _db["CONN_HEALTH_CHECKS"] = True
    # A pool per process (psycopg_pool), sized to the threads that can use it at once
    # (gunicorn's post_fork sets this to its threads): Django takes a connection at a
    # request's first query and hands it back at the end, so a gthread worker serves
    # its threads from a few warm connections. With no free connection, a request
    # waits at most 3 s for one and then gets the 503 (the database is down); the
    # compose health check allows 4 s. 0: no pool, each thread keeps its own
    # connection for 60 s.
    _pool_size = _env_int("PREFLAB_DB_POOL_SIZE", 4)
    if _pool_size:
        _db["CONN_MAX_AGE"] = 0  # Django requires it with a pool
        _db["OPTIONS"] = {**_db.get("OPTIONS", {}), "pool": {"min_size": 1, "max_size": _pool_size, "timeout": 3}}
DATABASES = {"default": _db}
# Prepared statements (issue #19.2, docs/performance.md "Where a request's time goes"):
# psycopg prepares a statement on a connection once it has run PREPARE_THRESHOLD
# times, so PostgreSQL stops re-planning the annotator routes' many-join queries on
# every request. Needs server-side parameter binding; not behind a transaction-mode
# pooler (PgBouncer before 1.21), which cannot keep prepared statements.
if _db["ENGINE"] == "django.db.backends.postgresql":
    _db.setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=2)
    # Web requests join a few rows by primary key. PostgreSQL sizes a merge join from
    # the join column's histogram and never checks it against the index, so when the
    # leased pairs' ids have moved past the last ANALYZE of annotate_assignment (a new
    # project, a busy hour), it takes a merge join that walks the whole comparison
    # index for one row: 120 ms for the task payload at 1.5M pairs instead of 0.5 ms
    # (docs/performance.md, "A plan that trusted old statistics"). Without merge
    # joins the same statements use nested loops over the keys, and the pages'
    # aggregates hash joins. Workers (exports, reports) keep merge joins for their
    # ordered scans of whole projects. gunicorn's post_fork turns this on.
    if _env_bool("PREFLAB_DB_NO_MERGEJOIN", False):
        _db["OPTIONS"]["options"] = "-c enable_mergejoin=off"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The image collects static files at build time, outside the data volume.
STATIC_ROOT = Path(os.environ.get("PREFLAB_STATIC_ROOT") or DATA_DIR / "staticfiles").resolve()
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = DATA_DIR / "media"

IMPORT_MAX_BYTES = _env_int("PREFLAB_IMPORT_MAX_MB", 512, minimum=1) * 1024 * 1024
# A small gzip can inflate to many GB: caps on what an import reads once inflated.
IMPORT_MAX_INFLATED_BYTES = _env_int("PREFLAB_IMPORT_MAX_INFLATED_MB", 2048, minimum=1) * 1024 * 1024
IMPORT_MAX_LINE_BYTES = _env_int("PREFLAB_IMPORT_MAX_LINE_MB", 16, minimum=1) * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "preflab.api_auth.CompiledTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "PrefLab API",
    "DESCRIPTION": "Projects, imports, exports and the annotation queue (next task, submit, skip). "
    "Authenticate with `Authorization: Token <key>` from /api/v1/auth/token/.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Export jobs and training runs share one status set; name it once.
    "ENUM_NAME_OVERRIDES": {"JobStatusEnum": "annotate.models.ExportJob.Status",
                            "MemberRoleEnum": "annotate.models.Role",
                            "TurnRoleEnum": ["system", "user", "assistant"]},
    # /api/v1/docs/ serves Swagger UI from drf-spectacular-sidecar's static files: no CDN,
    # and no schema sent to the public validator.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # Every operation's error answers (400/401/403/404/...) with their JSON bodies, added in one place.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "preflab.openapi.document_errors"],
}

# --- Celery -------------------------------------------------------------------
_broker_dir = DATA_DIR / "broker"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "filesystem://"
if not CELERY_BROKER_URL.startswith(("filesystem://", "redis://", "rediss://", "amqp://", "memory://")):
    raise ImproperlyConfigured(
        f"CELERY_BROKER_URL={CELERY_BROKER_URL!r}: use redis://, amqp://, or leave unset for the local broker."
    )
if CELERY_BROKER_URL.startswith("filesystem://"):
    (_broker_dir / "queue").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Broadcast control (revoke, ping) files; kombu's default is ./control.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
_default_backend = (
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else f"file://{DATA_DIR / 'results'}"
)
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or _default_backend
if CELERY_RESULT_BACKEND.startswith("file://"):
    Path(CELERY_RESULT_BACKEND.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
CELERY_TASK_ALWAYS_EAGER = _env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A web request that queues a job must not hang when Redis is down (it took ~19 s of
# the result store's reconnect loop, then a 500): connect within 2 s, retry the
# publish twice, then give up; annotate.jobs fails the job with a message instead.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 2
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.2,
                                                            "interval_max": 0.5}}
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2}
# A synchronous score runs in a worker on its own queue (never in the web process,
# which must not load torch), so a training on the default queue never delays it;
# the request waits SCORE_WAIT_S for the answer. Every worker set-up consumes it.
SCORE_QUEUE = "score"
CELERY_TASK_ROUTES = {"models_svc.tasks.score_now": {"queue": SCORE_QUEUE}}
SCORE_WAIT_S = _env_int("PREFLAB_SCORE_WAIT_S", 30, minimum=1)
# Caps keep one request from holding a web thread and that worker for minutes
# (models_svc.api.check_score_size answers 413 with these numbers).
SCORE_MAX_ITEMS = _env_int("PREFLAB_SCORE_MAX_ITEMS", 64, minimum=1)
SCORE_MAX_RESPONSES = _env_int("PREFLAB_SCORE_MAX_RESPONSES", 256, minimum=1)
SCORE_MAX_TEXT_CHARS = _env_int("PREFLAB_SCORE_MAX_TEXT_CHARS", 20_000, minimum=1)
SCORE_JOB_MAX_RESPONSES = _env_int("PREFLAB_SCORE_JOB_MAX_RESPONSES", 20_000, minimum=1)
# A job still queued this long was never picked up (the broker lost its message):
# annotate.jobs.jobs_unclaimed_sweep fails it, so the project accepts the next one.
JOB_PICKUP_SECONDS = _env_int("PREFLAB_JOB_PICKUP_MINUTES", 60, minimum=1) * 60
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict = {
    "expire-stale-import-jobs": {"task": "dataio.tasks.import_jobs_sweep", "schedule": 300.0},
    "expire-stale-export-jobs": {"task": "dataio.tasks.export_jobs_sweep", "schedule": 300.0},
    "expire-leases": {"task": "annotate.tasks.assignments_expire", "schedule": 60.0},
    # Fails jobs of every kind that no worker picked up within PREFLAB_JOB_PICKUP_MINUTES.
    "sweep-unclaimed-jobs": {"task": "annotate.tasks.jobs_unclaimed_sweep", "schedule": 300.0},
    # Recomputes the maintained tallies from the raw rows (they are kept exact in
    # each transaction; this catches rows written past the services).
    "reconcile-counters": {"task": "annotate.tasks.counters_reconcile", "schedule": 3600.0},
    # Fails training runs whose worker stopped sending heartbeats (killed, lost).
    "sweep-training-runs": {"task": "models_svc.tasks.training_runs_sweep", "schedule": 60.0},
    # Fails background scoring batches whose worker stopped heart-beating.
    "sweep-scoring-jobs": {"task": "models_svc.tasks.scoring_jobs_sweep", "schedule": 300.0},
    # Queues a head-mode retrain where a project asks for one after N new labels.
    "reward-model-autorefresh": {"task": "models_svc.tasks.reward_models_autorefresh", "schedule": 60.0},
    # Fails quality reports whose worker stopped (killed mid-report).
    "sweep-quality-reports": {"task": "quality.tasks.quality_reports_sweep", "schedule": 300.0},
    # Audits labels with each newly promoted model (quality sits above models_svc, so it looks).
    "noise-audits-after-promotion": {"task": "quality.tasks.noise_audits_autorun", "schedule": 60.0},
    "sweep-noise-audits": {"task": "quality.tasks.noise_audits_sweep", "schedule": 300.0},
}

# --- Cache ---------------------------------------------------------------------------
# Shared between processes when Redis is configured; per-process memory otherwise
# (the embedded default runs one web process). Log-in never reads it (below).
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CELERY_BROKER_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Log-in limits (django-axes; the policy is in preflab/auth.py) --------------------
LOGIN_MAX_FAILURES = _env_int("PREFLAB_LOGIN_MAX_FAILURES", 5, minimum=1)
LOGIN_MAX_ADDRESS_FAILURES = _env_int("PREFLAB_LOGIN_MAX_ADDRESS_FAILURES", 5 * LOGIN_MAX_FAILURES, minimum=1)
LOGIN_WINDOW_SECONDS = _env_int("PREFLAB_LOGIN_WINDOW_MINUTES", 15, minimum=1) * 60
# How many reverse proxies that append X-Forwarded-For stand in front of gunicorn
# (docs/production.md); 0 trusts only the socket's address.
TRUSTED_PROXIES = _env_int("PREFLAB_TRUSTED_PROXIES", 0)
AUTHENTICATION_BACKENDS = [
    "preflab.auth.LoginLimitBackend",  # first: axes refuses a locked-out attempt before any password check
    "django.contrib.auth.backends.ModelBackend",
]
# Counts in the database, so log-in works while Redis is down.
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_LOCKOUT_PARAMETERS = "preflab.auth.lockout_parameters"
AXES_FAILURE_LIMIT = "preflab.auth.failure_limit"
AXES_USERNAME_CALLABLE = "preflab.auth.client_username"
AXES_CLIENT_IP_CALLABLE = "preflab.auth.client_address"
AXES_LOCKOUT_CALLABLE = "preflab.auth.lockout_response"
AXES_COOLOFF_TIME = timedelta(seconds=LOGIN_WINDOW_SECONDS)
# Attempts while locked are refused but not counted, so the stated wait holds.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
# The limiter only: no table of every successful log-in growing without bound.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False

# --- Security (production) ------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if _env_bool("PREFLAB_SECURE", not DEBUG):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = _env_bool("PREFLAB_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = _env_int("PREFLAB_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
