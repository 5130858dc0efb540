"""Who may use which route: every URL pattern of the URLconf × six roles.

``MATRIX`` gives, for each route name, the method to send, the rule (who is
allowed) and the objects its URL names. The test walks ``get_resolver()``: a route
without a row fails it, so a new page or endpoint must say who may use it.

For every (route, role):
- allowed: the answer is not a refusal (no 5xx, no login redirect, and not the
  answer the same route gives for a missing object);
- denied: the answer is byte-identical (status, content type, body) to the answer
  for a missing object (the same route with every object replaced by one that does
  not exist), and, for a POST, the database is unchanged. Anonymous callers are
  sent to log in (pages) or get 401 (API), whether the object exists or not.

Each role's request runs in a savepoint that is rolled back, so an allowed POST
(publish, discard, retrain) does not change what the next role sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.factories import two_project_world

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "annotator_here", "annotator_elsewhere", "researcher_here", "researcher_elsewhere", "staff")

# Who is allowed; everyone else is denied.
EVERYONE = frozenset(ROLES)
LOGGED_IN = EVERYONE - {"anonymous"}
MEMBERS = frozenset({"annotator_here", "researcher_here", "staff"})
RESEARCHERS = frozenset({"researcher_here", "staff"})
# The rubric library: any researcher (of any project) and staff.
LIBRARY = frozenset({"researcher_here", "researcher_elsewhere", "staff"})
# Changing a rubric: its owner or a researcher of a project pinning it (here's researcher is both), and staff.
RUBRIC_CHANGERS = frozenset({"researcher_here", "staff"})
# A lease is its annotator's alone: not even staff may read or answer it.
TASK_OWNER = frozenset({"annotator_here"})
STAFF = frozenset({"staff"})

MISSING_SLUG, MISSING_ID, MISSING_KEY = "no-such-thing", 999999, "no-such-key"


@dataclass(frozen=True)
class Row:
    allowed: frozenset
    method: str = "GET"
    kwargs: Callable[[dict], dict] = lambda w: {}
    data: Callable[[dict], dict] = lambda w: {}
    ends_at_login: bool = False  # log-out answers everyone with the log-in page
    # kwargs that name an object (replaced by a missing one for the reference answer)
    objects: tuple = field(default=("slug", "job_id", "assignment_id", "run_id", "number", "user_id", "item_id", "key"))


def P(w):  # the project "here"
    return {"slug": w["here"].slug}


def PUB(w):  # the published version of the shared rubric
    return {"slug": w["rubric"].slug, "number": w["published"].number}


def DRAFT(w):
    return {"slug": w["rubric"].slug, "number": w["draft"].number}


def CRIT(w):
    return {**DRAFT(w), "key": "helpful"}


MATRIX: dict[str, Row] = {
    # --- public and account ---
    "healthz": Row(EVERYONE),
    "login": Row(EVERYONE),
    "logout": Row(EVERYONE, "POST", ends_at_login=True),
    "api-token": Row(EVERYONE, "POST"),
    "api-schema": Row(EVERYONE),
    "admin:*": Row(STAFF),  # every other Django admin view: staff only (admin_site.admin_view)
    "admin:login": Row(EVERYONE),
    "admin:logout": Row(EVERYONE, "POST", ends_at_login=True),
    # --- annotate: pages ---
    "home": Row(LOGGED_IN),
    "project-detail": Row(MEMBERS, kwargs=P),
    "import-upload": Row(RESEARCHERS, kwargs=P),
    "work": Row(MEMBERS, kwargs=lambda w: {**P(w), "kind": "pairwise"}),
    "task-submit": Row(TASK_OWNER, "POST", kwargs=lambda w: {**P(w), "assignment_id": w["assignment"].pk}),
    "task-skip": Row(TASK_OWNER, "POST", kwargs=lambda w: {**P(w), "assignment_id": w["assignment"].pk},
                     data=lambda w: {"reason": "unclear"}),
    "progress": Row(RESEARCHERS, kwargs=P),
    "my-labels": Row(MEMBERS, kwargs=P),
    "project-pin-rubric": Row(RESEARCHERS, "POST", kwargs=P, data=lambda w: {"version": w["published"].pk}),
    "project-derived": Row(RESEARCHERS, kwargs=P),
    "rubric-pin": Row(RESEARCHERS, "POST", kwargs=PUB, data=lambda w: {"project": w["here"].slug}),
    "import-jobs": Row(RESEARCHERS, kwargs=P),
    "import-cancel": Row(RESEARCHERS, "POST", kwargs=lambda w: {**P(w), "job_id": w["import_job"].pk}),
    "exports": Row(RESEARCHERS, kwargs=P),
    "export-jobs": Row(RESEARCHERS, kwargs=P),
    "export-cancel": Row(RESEARCHERS, "POST", kwargs=lambda w: {**P(w), "job_id": w["export_job"].pk}),
    "export-download": Row(RESEARCHERS, kwargs=lambda w: {**P(w), "job_id": w["export_job"].pk}),
    "export-card": Row(RESEARCHERS, kwargs=lambda w: {**P(w), "job_id": w["export_job"].pk}),
    # --- annotate: API ---
    "api-project-list": Row(LOGGED_IN),
    "api-project-detail": Row(MEMBERS, kwargs=P),
    "api-project-imports": Row(RESEARCHERS, kwargs=P),
    "api-import-detail": Row(RESEARCHERS, kwargs=lambda w: {**P(w), "job_id": w["import_job"].pk}),
    "api-project-exports": Row(RESEARCHERS, kwargs=P),
    "api-export-detail": Row(RESEARCHERS, kwargs=lambda w: {**P(w), "job_id": w["export_job"].pk}),
    "api-export-download": Row(RESEARCHERS, kwargs=lambda w: {**P(w), "job_id": w["export_job"].pk}),
    "api-export-card": Row(RESEARCHERS, kwargs=lambda w: {**P(w), "job_id": w["export_job"].pk}),
    "api-task-next": Row(MEMBERS, "POST", kwargs=P, data=lambda w: {"kind": "pairwise"}),
    "api-task-detail": Row(TASK_OWNER, kwargs=lambda w: {"assignment_id": w["assignment"].pk}),
    "api-task-submit": Row(TASK_OWNER, "POST", kwargs=lambda w: {"assignment_id": w["assignment"].pk}),
    "api-task-skip": Row(TASK_OWNER, "POST", kwargs=lambda w: {"assignment_id": w["assignment"].pk},
                         data=lambda w: {"reason": "unclear"}),
    # --- rubrics: the shared library ---
    "rubric-list": Row(LIBRARY),
    "rubric-create": Row(LIBRARY, "POST", data=lambda w: {"name": "Mine", "slug": "mine"}),
    "rubric-import": Row(LIBRARY, "POST"),
    "rubric-detail": Row(LIBRARY, kwargs=lambda w: {"slug": w["rubric"].slug}),
    "rubric-diff": Row(LIBRARY, kwargs=lambda w: {"slug": w["rubric"].slug}),
    "rubric-export": Row(LIBRARY, kwargs=lambda w: {**PUB(w), "fmt": "json"}),
    "rubric-clone": Row(LIBRARY, "POST", kwargs=PUB, data=lambda w: {"name": "Copy", "slug": "copy"}),
    "rubric-edit": Row(RUBRIC_CHANGERS, kwargs=DRAFT),
    "rubric-settings": Row(RUBRIC_CHANGERS, "POST", kwargs=DRAFT, data=lambda w: {"guidelines": "changed"}),
    "rubric-criterion-add": Row(RUBRIC_CHANGERS, "POST", kwargs=DRAFT,
                                data=lambda w: {"key": "new", "name": "New", "scale": "binary"}),
    "rubric-criterion-add-form": Row(RUBRIC_CHANGERS, "POST", kwargs=DRAFT, data=lambda w: {"scale": "binary"}),
    "rubric-criterion-edit": Row(RUBRIC_CHANGERS, kwargs=CRIT),
    "rubric-criterion-delete": Row(RUBRIC_CHANGERS, "POST", kwargs=CRIT),
    "rubric-criterion-move": Row(RUBRIC_CHANGERS, "POST", kwargs=CRIT, data=lambda w: {"direction": "up"}),
    "rubric-publish": Row(RUBRIC_CHANGERS, "POST", kwargs=DRAFT),
    "rubric-new-draft": Row(RUBRIC_CHANGERS, "POST", kwargs=PUB),
    "rubric-discard": Row(RUBRIC_CHANGERS, "POST", kwargs=DRAFT),
    "api-rubric-list": Row(LIBRARY),
    "api-rubric-import": Row(LIBRARY, "POST"),
    "api-rubric-detail": Row(LIBRARY, kwargs=lambda w: {"slug": w["rubric"].slug}),
    "api-rubric-version": Row(LIBRARY, kwargs=PUB),
    "api-rubric-publish": Row(RUBRIC_CHANGERS, "POST", kwargs=DRAFT),
    # --- models_svc ---
    "model-page": Row(RESEARCHERS, kwargs=P),
    "model-runs": Row(RESEARCHERS, kwargs=P),
    "model-retrain": Row(RESEARCHERS, "POST", kwargs=P),
    "model-settings": Row(RESEARCHERS, "POST", kwargs=P, data=lambda w: {"mode": "head", "objective": "bt"}),
    "model-run-cancel": Row(RESEARCHERS, "POST", kwargs=lambda w: {**P(w), "run_id": w["run"].pk}),
    "model-promote": Row(RESEARCHERS, "POST", kwargs=lambda w: {**P(w), "number": w["model_version"].number}),
    "model-rollback": Row(RESEARCHERS, "POST", kwargs=P),
    "model-selection": Row(RESEARCHERS, kwargs=P),
    "model-selection-update": Row(RESEARCHERS, "POST", kwargs=P, data=lambda w: {"strategy": "uncertainty"}),
    "model-rescore": Row(RESEARCHERS, "POST", kwargs=P),
    "api-score": Row(RESEARCHERS, "POST", kwargs=P, data=lambda w: {"prompt": "q", "responses": ["a"]}),
    "api-score-job": Row(RESEARCHERS, kwargs=lambda w: {**P(w), "job_id": w["scoring_job"].pk}),
    "api-score-job-cancel": Row(RESEARCHERS, "POST", kwargs=lambda w: {**P(w), "job_id": w["scoring_job"].pk}),
    "api-models": Row(RESEARCHERS, kwargs=P),
    "api-model-runs": Row(RESEARCHERS, kwargs=P),
    "api-model-run": Row(RESEARCHERS, kwargs=lambda w: {**P(w), "run_id": w["run"].pk}),
    # --- quality ---
    "quality-dashboard": Row(RESEARCHERS, kwargs=P),
    "quality-status": Row(RESEARCHERS, kwargs=P),
    "quality-refresh": Row(RESEARCHERS, "POST", kwargs=P),
    "quality-pause": Row(RESEARCHERS, "POST", kwargs=lambda w: {**P(w), "user_id": w["users"]["annotator_here"].pk}),
    "quality-resume": Row(RESEARCHERS, "POST", kwargs=lambda w: {**P(w), "user_id": w["users"]["annotator_here"].pk}),
    "quality-audit": Row(RESEARCHERS, "POST", kwargs=P),
    "quality-review": Row(RESEARCHERS, kwargs=P),
    "quality-review-refresh": Row(RESEARCHERS, "POST", kwargs=P),
    "quality-review-item": Row(RESEARCHERS, kwargs=lambda w: {**P(w), "item_id": w["review_item"].pk}),
    "quality-review-adjudicate": Row(RESEARCHERS, "POST", kwargs=lambda w: {**P(w), "item_id": w["review_item"].pk},
                                     data=lambda w: {"choice": "A", "strength": "-2"}),
    "quality-review-more-labels": Row(RESEARCHERS, "POST", kwargs=lambda w: {**P(w), "item_id": w["review_item"].pk}),
    "quality-review-ambiguous": Row(RESEARCHERS, "POST", kwargs=lambda w: {**P(w), "item_id": w["review_item"].pk}),
}


# --- the URLconf, walked -------------------------------------------------------------------


def _walk(patterns, namespace: str = "") -> list[tuple[str, URLPattern, str]]:
    """(row key, pattern, name to reverse) for every pattern, nested includes too.
    Unnamed patterns are keyed by their regex so they still need a row."""
    found = []
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = ":".join(filter(None, [namespace, p.namespace]))
            found += _walk(p.url_patterns, ns)
            continue
        name = f"{namespace}:{p.name}" if namespace and p.name else p.name
        key = name or f"{namespace}:<{p.pattern}>"
        found.append((key, p, name))
    return found


ROUTES = _walk(get_resolver().url_patterns)


def _row_for(key: str) -> Row | None:
    if key in MATRIX:
        return MATRIX[key]
    if key.startswith("admin:"):
        return MATRIX["admin:*"]
    return None


def test_every_route_has_a_row_and_every_row_a_route():
    keys = {key for key, _, _ in ROUTES}
    assert sorted(k for k in keys if _row_for(k) is None) == [], "add these routes to MATRIX"
    assert sorted(set(MATRIX) - keys - {"admin:*"}) == [], "MATRIX names routes that no longer exist"


def test_a_route_without_a_row_would_fail():
    assert _row_for("a-brand-new-route") is None


# --- the requests --------------------------------------------------------------------------

ADMIN_KWARGS = {"object_id": "1", "id": "1", "app_label": "annotate", "content_type_id": "1", "url": "nothing-here/"}


def _path(key: str, pattern: URLPattern, name: str | None, kwargs: dict) -> str | None:
    if key.startswith("admin:"):
        names = list(pattern.pattern.regex.groupindex)
        if name is None:  # the admin's catch-all
            return "/admin/nothing-here/"
        return reverse(name, kwargs={k: ADMIN_KWARGS[k] for k in names})
    return reverse(name, kwargs={k: v for k, v in kwargs.items() if k in pattern.pattern.regex.groupindex})


def _missing(kwargs: dict, objects: tuple) -> dict:
    out = {}
    for k, v in kwargs.items():
        if k not in objects:
            out[k] = v
        elif isinstance(v, int):
            out[k] = MISSING_ID
        elif k == "key":
            out[k] = MISSING_KEY
        else:
            out[k] = MISSING_SLUG
    return out


def _snapshot() -> dict:
    """Every row of every table the apps own, and the users: a denied POST leaves it as it was."""
    models = [m for label in ("annotate", "rubrics", "models_svc", "quality") for m in apps.get_app_config(label).get_models()]
    models.append(get_user_model())
    return {m._meta.label: list(m.objects.order_by("pk").values()) for m in models}


def _send(client, method: str, path: str, data: dict):
    return client.post(path, data) if method == "POST" else client.get(path)


def _answer(resp) -> tuple:
    return resp.status_code, resp.get("Content-Type"), b"".join(resp) if resp.streaming else resp.content


def _is_login_redirect(resp) -> bool:
    return resp.status_code == 302 and resp["Location"].split("?")[0] in ("/login/", "/admin/login/")


class _Rollback(Exception):
    pass


def _as(client, user, fn):
    """Run ``fn()`` logged in as ``user`` inside a savepoint that is then rolled back."""
    result = {}
    try:
        with transaction.atomic():
            client.logout()
            if user is not None:
                client.force_login(user)
            result["value"] = fn()
            raise _Rollback
    except _Rollback:
        pass
    return result["value"]


def _reference_path(path: str) -> str:
    # routes with no object in their URL are compared with a missing project's answer
    return "/api/v1/projects/no-such-thing/" if path.startswith("/api/") else "/p/no-such-thing/"


def _check(client, world, key, pattern, name) -> list[str]:
    """The problems with one route, over every role (an empty list when it holds)."""
    row = _row_for(key)
    kwargs = row.kwargs(world)
    path = _path(key, pattern, name, kwargs)
    admin = key.startswith("admin:")
    named_objects = any(k in row.objects for k in kwargs)
    missing_path = _path(key, pattern, name, _missing(kwargs, row.objects)) if named_objects and not admin else None
    data = row.data(world)
    users = {"anonymous": None, **world["users"]}
    problems = []

    for role in ROLES:
        allowed = role in row.allowed
        watch = row.method == "POST" and not allowed

        def run():
            before = _snapshot() if watch else None
            resp = _send(client, row.method, path, data)
            answer = _answer(resp)
            after = _snapshot() if watch else None
            if admin:
                return resp, answer, before, after, None, None
            missing = _send(client, row.method, missing_path, data) if missing_path else client.get(_reference_path(path))
            return resp, answer, before, after, missing, _answer(missing)

        resp, answer, before, after, missing, missing_answer = _as(client, users[role], run)
        where = f"{key} {row.method} {path} as {role}"
        if resp.status_code >= 500:
            problems.append(f"{where}: {resp.status_code}")
        elif allowed:
            if _is_login_redirect(resp) and not row.ends_at_login:
                problems.append(f"{where}: allowed, but sent to log in")
            elif admin:
                pass  # staff reach the admin; what a model's permissions then allow is Django's business
            elif resp.status_code in (401, 403):
                problems.append(f"{where}: allowed, but refused ({resp.status_code})")
            elif missing_path is not None and answer == missing_answer:
                problems.append(f"{where}: allowed, but answered as for a missing object")
            elif missing_path is None and resp.status_code == 404:
                problems.append(f"{where}: allowed, but 404")
        elif role == "anonymous" or admin:
            if path.startswith("/api/"):
                if resp.status_code != 401 or answer != missing_answer:
                    problems.append(f"{where}: {answer!r} is not the missing object's 401 {missing_answer!r}")
            elif not _is_login_redirect(resp):
                problems.append(f"{where}: {resp.status_code} {resp.get('Location')}, not sent to log in")
            elif missing is not None and not _is_login_redirect(missing):
                problems.append(f"{where}: a missing object is not sent to log in")
        elif resp.status_code != 404:
            problems.append(f"{where}: denied with {resp.status_code}, not 404")
        elif answer != missing_answer:
            problems.append(f"{where}: {answer[:200]!r} differs from a missing object's {missing_answer[:200]!r}")
        if before != after:
            problems.append(f"{where}: a denied POST changed the database")
    return problems


def test_every_route_is_allowed_or_denied_like_a_missing_object(client, tmp_path):
    """One world for all routes (each request rolled back), every problem listed at once."""
    world = two_project_world(tmp_path)
    problems = []
    for key, pattern, name in ROUTES:
        problems += _check(client, world, key, pattern, name)
    assert not problems, "\n".join(problems)
