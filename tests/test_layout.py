"""The layout promises in DESIGN.md that code can break silently."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_models_svc_ml_imports_no_django():
    import models_svc.ml as ml

    modules = ["models_svc.ml"] + [f"models_svc.ml.{m.name}" for m in pkgutil.walk_packages(ml.__path__)]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "print('DJANGO' if loaded else 'CLEAN', loaded[:5])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("CLEAN"), out.stdout


@pytest.mark.django_db
def test_migrations_are_in_sync_with_models():
    from django.core.management import call_command

    # --check exits non-zero when a model change has no migration
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
