"""The layout promises in DESIGN.md that code can break silently."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


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


# --- dependencies run one way: rubrics ← annotate ← models_svc, quality ← dataio --------

# app → the apps it may import (itself always). preflab (settings, urls, Celery app)
# sits on top and may import anything; frontend's template tags may ask rubrics.
MAY_IMPORT = {
    "rubrics": set(),
    "annotate": {"rubrics"},
    "models_svc": {"rubrics", "annotate"},
    "quality": {"rubrics", "annotate", "models_svc"},
    "dataio": {"rubrics", "annotate", "models_svc", "quality"},
    "frontend": {"rubrics"},
}
APPS = set(MAY_IMPORT) | {"preflab"}


def wrong_way_imports(root: Path) -> list[str]:
    """Every import (module level or inside a function: a lazy import is still a
    dependency) from an app of ``root`` into an app it may not import."""
    import ast

    found = []
    for app, allowed in MAY_IMPORT.items():
        for path in sorted((root / app).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in APPS and top != app and top not in allowed:
                        found.append(f"{path.relative_to(root)}:{node.lineno} imports {name}")
    return found


def test_apps_import_only_downwards():
    assert wrong_way_imports(REPO) == []


def test_layout_check_catches_a_planted_wrong_way_import(tmp_path):
    for app in MAY_IMPORT:
        (tmp_path / app).mkdir()
    (tmp_path / "rubrics" / "views.py").write_text("from annotate.models import Project\n")
    (tmp_path / "annotate" / "queue.py").write_text("def f():\n    import models_svc.models\n")
    (tmp_path / "models_svc" / "ok.py").write_text("from annotate.models import Project\nfrom rubrics import schema\n")
    assert wrong_way_imports(tmp_path) == [
        "rubrics/views.py:1 imports annotate.models",
        "annotate/queue.py:2 imports models_svc.models",
    ]


def test_models_svc_ml_imports_no_app():
    """ml/ is plain torch/numpy: not even the layers below it."""
    import ast

    for path in (REPO / "models_svc" / "ml").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert node.module.split(".")[0] not in APPS - {"models_svc"}, f"{path}: {node.module}"
                assert not node.module.startswith("models_svc.") or node.module.startswith("models_svc.ml"), \
                    f"{path}: {node.module}"


def test_rubrics_researcher_role_is_annotates():
    """rubrics.access reads memberships by the role's value without importing annotate."""
    from annotate.models import Role
    from rubrics.access import RESEARCHER

    assert RESEARCHER == Role.RESEARCHER


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
        "for app in ('annotate', 'rubrics', 'models_svc', 'quality', 'dataio', 'frontend'):\n"
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


def test_the_annotation_queue_api_leads_the_urlconf_and_resolves_to_its_views():
    """annotate/urls.py says why: resolving an annotator's request tried every app's patterns first."""
    from django.urls import resolve, reverse

    from annotate import api
    from annotate import urls as annotate_urls
    from preflab import urls

    includes = [p for p in urls.urlpatterns if hasattr(p, "url_patterns")]
    assert includes[0].url_patterns is annotate_urls.queue_api_urlpatterns
    for name, args, view in [("api-task-next", ["helpfulness"], api.task_next), ("api-task-detail", [7], api.task_detail),
                             ("api-task-submit", [7], api.task_submit), ("api-task-skip", [7], api.task_skip)]:
        assert resolve(reverse(name, args=args)).func is view
