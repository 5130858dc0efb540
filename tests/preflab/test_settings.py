"""Settings come from the environment and fail loudly on bad values."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DEBUG", "SECRET_KEY", "DATABASE_URL", "CELERY_", "PREFLAB_SECURE"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "env,message",
    [
        ({"DEBUG": "0"}, "SECRET_KEY is not set"),
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({"DEBUG": "1", "DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL must be sqlite:// or postgres://"),
        ({"DEBUG": "1", "CELERY_BROKER_URL": "kafka://x"}, "CELERY_BROKER_URL='kafka://x'"),
        ({"DEBUG": "1", "PREFLAB_IMPORT_MAX_MB": "lots"}, "PREFLAB_IMPORT_MAX_MB='lots' is not a whole number"),
    ],
)
def test_bad_environment_fails_loudly(env, message, tmp_path):
    result = _run({"PREFLAB_DATA_DIR": str(tmp_path), **env}, "check")
    assert result.returncode != 0
    assert message in result.stderr


def test_production_settings_pass_check_deploy(tmp_path):
    env = {
        "PREFLAB_DATA_DIR": str(tmp_path),
        "DEBUG": "0",
        "SECRET_KEY": "k8#Jq2!vR9zP0wL5mX7cT3bN6hY1uE4sA8dF2gH5jK9lQ0rW3eT6yU",
        "ALLOWED_HOSTS": "preflab.example.org",
    }
    result = _run(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def _example_value(name: str) -> str:
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1]
    raise AssertionError(f"{name} is not in .env.example")


@pytest.mark.parametrize(
    "secret",
    [
        _example_value("SECRET_KEY"),
        "django-insecure-3x#q9m!v2@k7z$w8p0r5t1y4u6i9o2a5s8d1f4g7h0j3k6l9",
        "dev-only-insecure-key-do-not-use-in-production-0123456789abcdefghij",
        "x" * 60,
    ],
)
def test_production_refuses_a_placeholder_secret(secret, tmp_path):
    result = _run({"PREFLAB_DATA_DIR": str(tmp_path), "DEBUG": "0", "SECRET_KEY": secret}, "check")
    assert result.returncode != 0
    assert "SECRET_KEY is a placeholder, not a secret" in result.stderr


def test_settings_read_an_env_file_and_the_environment_wins(tmp_path):
    env_file = tmp_path / "dev.env"
    env_file.write_text("DEBUG=1\nSECRET_KEY=from-the-file-k8Jq2vR9zP0wL5mX7cT3bN6hY1uE4sA8dF2gH5\nPREFLAB_IMPORT_MAX_MB=lots\n")
    base = {"PREFLAB_DATA_DIR": str(tmp_path), "PREFLAB_ENV_FILE": str(env_file)}
    read = _run(base, "check")
    assert read.returncode != 0 and "PREFLAB_IMPORT_MAX_MB='lots' is not a whole number" in read.stderr
    wins = _run({**base, "PREFLAB_IMPORT_MAX_MB": "5"}, "check")
    assert wins.returncode == 0, wins.stderr
    assert "no issues" in wins.stdout
    ignored = _run({**base, "PREFLAB_ENV_FILE": "", "DEBUG": "0"}, "check")
    assert "SECRET_KEY is not set" in ignored.stderr


def test_docker_compose_requires_the_postgres_password():
    compose = (REPO / "docker-compose.yml").read_text()
    uses = re.findall(r"\$\{POSTGRES_PASSWORD([^}]*)\}", compose)
    assert uses and all(use.startswith(":?") for use in uses), uses
    assert _example_value("POSTGRES_PASSWORD") == ""  # a copied, unedited .env.example is refused


def test_the_documented_default_of_preflab_secure_is_the_code_s(tmp_path):
    from preflab import settings as module

    row = next(line for line in module.__doc__.splitlines() if line.startswith("| PREFLAB_SECURE |"))
    assert row.split("|")[2].strip() == "1 unless DEBUG"
    code = "from django.conf import settings; print(settings.SESSION_COOKIE_SECURE, settings.SECURE_SSL_REDIRECT)"
    env = {
        "PREFLAB_DATA_DIR": str(tmp_path), "DEBUG": "0",
        "SECRET_KEY": "k8#Jq2!vR9zP0wL5mX7cT3bN6hY1uE4sA8dF2gH5jK9lQ0rW3eT6yU",
    }
    assert _run(env, "shell", "-v", "0", "-c", code).stdout.split() == ["True", "True"]
    assert _run({**env, "DEBUG": "1"}, "shell", "-v", "0", "-c", code).stdout.split() == ["False", "False"]
