"""Settings come from the environment and fail loudly on bad values."""

from __future__ import annotations

import os
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
