"""The layout promises in DESIGN.md that code can break silently."""

from __future__ import annotations

import os
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


def test_urlconf_imports_no_torch():
    """The web process never loads torch or transformers (DESIGN §10): the URLconf,
    every app's views and API, and what they import stay free of them."""
    code = (
        "import importlib, os, pkgutil, sys\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'preflab.test_settings'\n"
        "import django\n"
        "django.setup()\n"
        "import preflab.urls\n"
        "from django.urls import get_resolver\n"
        "get_resolver().url_patterns\n"
        "for app in ('annotate', 'rubrics', 'models_svc'):\n"
        "    for part in ('views', 'api', 'forms', 'urls', 'templatetags'):\n"
        "        try:\n"
        "            module = importlib.import_module(f'{app}.{part}')\n"
        "        except ModuleNotFoundError as exc:\n"
        "            if exc.name != f'{app}.{part}':\n"
        "                raise\n"
        "            continue\n"
        "        for sub in pkgutil.iter_modules(getattr(module, '__path__', [])):\n"
        "            importlib.import_module(f'{module.__name__}.{sub.name}')\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "print('HEAVY' if heavy else 'CLEAN', heavy)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("CLEAN"), out.stdout
