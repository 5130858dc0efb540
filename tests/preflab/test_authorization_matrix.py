"""Who may use which route: every URL pattern of the URLconf × six roles.

``MATRIX`` gives, for each route name, the method to send, the rule (who is
allowed) and the objects its URL names. The test walks ``get_resolver()``: a route
without a row fails it, so a new page or endpoint must say who may use it.

For every (route, role):
- allowed: the answer is not a refusal (no 5xx, no login redirect, and not the
  answer the same route gives for a missing object);
- denied to a member whose role does not allow it (``refused``: an annotator of the
  project on a researcher's page): 403 saying who may open it (the 403 page, or
  ``{"detail": reason}`` in the API). They know the project, so nothing leaks;
- denied to anyone else: the answer is byte-identical (status, content type, body)
  to the answer for a missing object (the same route with every object replaced by
  one that does not exist). Anonymous callers are sent to log in (pages) or get 401
  (API), whether the object exists or not.
For every denied method other than GET the database is unchanged.

Each role's request runs in a savepoint that is rolled back, so an allowed POST
(publish, discard, retrain) does not change what the next role sees.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils.html import escape

from annotate.access import PROJECT_CREATORS, role_refusal
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
# Members of "here" whom a researcher's page refuses with 403 and a reason.
ANNOTATOR_HERE = frozenset({"annotator_here"})
RESEARCHER_ONLY = role_refusal("researcher")

MISSING_SLUG, MISSING_ID, MISSING_KEY = "no-such-thing", 999999, "no-such-key"


@dataclass(frozen=True)
class Row:
    allowed: frozenset
    method: str = "GET"
    kwargs: Callable[[dict], dict] = lambda w: {}
    data: Callable[[dict], dict] = lambda w: {}
    ends_at_login: bool = False  # log-out answers everyone with the log-in page
    # kwargs that name an object (replaced by a missing one for the reference answer)
    objects: tuple = field(default=("slug", "job_id", "assignment_id", "run_id", "number", "user_id", "item_id", "key",
                                    "username"))
    refused: frozenset = frozenset()  # denied roles that get 403 with ``reason`` (they know the object exists)
    reason: str = RESEARCHER_ONLY


# A project's researcher page or endpoint: its annotators are told who may open it.
Researchers = partial(Row, RESEARCHERS, refused=ANNOTATOR_HERE)


def P(w):  # the project "here"
    return {"slug": w["here"].slug}


def PUB(w):  # the published version of the shared rubric
    return {"slug": w["rubric"].slug, "number": w["published"].number}


def DRAFT(w):
    return {"slug": w["rubric"].slug, "number": w["draft"].number}


def CRIT(w):
    return {**DRAFT(w), "key": "helpful"}


def MEMBER(w):  # here's annotator, as the members page names them
    return {**P(w), "user_id": w["users"]["annotator_here"].pk}


def SETTINGS(w):
    """The settings form as the page fills it, with a new name: valid, so an allowed POST saves."""
    from annotate.project_forms import ProjectForm

    form = ProjectForm(instance=w["here"])
    return {**{k: v for k, v in form.initial.items() if k in form.fields and v is not None}, "name": "Renamed"}


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
    "api-docs": Row(EVERYONE),
    "password-change": Row(LOGGED_IN),
    # an invite link that is not valid: everyone gets the page that says so
    "invite-accept": Row(EVERYONE, kwargs=lambda w: {"uidb64": "MQ", "token": "not-a-token"}),
    # --- annotate: pages ---
    "home": Row(LOGGED_IN),
    "project-new": Row(LIBRARY, "POST", data=lambda w: {"name": "New", "slug": "new", "task_kinds": ["pairwise"]},
                       refused=frozenset({"annotator_here", "annotator_elsewhere"}),
                       reason=f"Only {PROJECT_CREATORS} may create projects."),
    "markdown-preview": Row(LOGGED_IN, "POST", data=lambda w: {"guidelines": "**bold**"}),
    "project-settings": Researchers("POST", kwargs=P, data=SETTINGS),
    "members": Researchers(kwargs=P),
    "member-add": Researchers("POST", kwargs=P,
                              data=lambda w: {"username": w["users"]["annotator_elsewhere"].username, "role": "annotator"}),
    "member-create": Researchers("POST", kwargs=P, data=lambda w: {"username": "newbie", "role": "annotator", "how": "password"}),
    "member-role": Researchers("POST", kwargs=MEMBER, data=lambda w: {"role": "researcher"}),
    "member-remove": Researchers("POST", kwargs=MEMBER),
    "project-detail": Row(MEMBERS, kwargs=P),
    "import-upload": Researchers(kwargs=P),
    "work": Row(MEMBERS, kwargs=lambda w: {**P(w), "kind": "pairwise"}),
    "task-submit": Row(TASK_OWNER, "POST", kwargs=lambda w: {**P(w), "assignment_id": w["assignment"].pk}),
    "task-skip": Row(TASK_OWNER, "POST", kwargs=lambda w: {**P(w), "assignment_id": w["assignment"].pk},
                     data=lambda w: {"reason": "unclear"}),
    "progress": Researchers(kwargs=P),
    "my-labels": Row(MEMBERS, kwargs=P),
    "project-pin-rubric": Researchers("POST", kwargs=P, data=lambda w: {"version": w["published"].pk}),
    "project-derived": Researchers(kwargs=P),
    "rubric-pin": Row(RESEARCHERS, "POST", kwargs=PUB, data=lambda w: {"project": w["here"].slug}),
    "import-jobs": Researchers(kwargs=P),
    "import-cancel": Researchers("POST", kwargs=lambda w: {**P(w), "job_id": w["import_job"].pk}),
    "exports": Researchers(kwargs=P),
    "export-jobs": Researchers(kwargs=P),
    "export-cancel": Researchers("POST", kwargs=lambda w: {**P(w), "job_id": w["export_job"].pk}),
    "export-download": Researchers(kwargs=lambda w: {**P(w), "job_id": w["export_job"].pk}),
    "export-card": Researchers(kwargs=lambda w: {**P(w), "job_id": w["export_job"].pk}),
    "export-detail": Researchers(kwargs=lambda w: {**P(w), "job_id": w["export_job"].pk}),
    # --- annotate: API ---
    "api-project-list": Row(LOGGED_IN),
    "api-project-detail": Row(MEMBERS, kwargs=P),
    "api-project-members": Researchers("POST", kwargs=P,
                                       data=lambda w: {"username": w["users"]["annotator_elsewhere"].username}),
    "api-project-member": Researchers("PATCH", kwargs=lambda w: {**P(w), "username": w["users"]["annotator_here"].username},
                                      data=lambda w: {"role": "researcher"}),
    "api-project-imports": Researchers(kwargs=P),
    "api-import-detail": Researchers(kwargs=lambda w: {**P(w), "job_id": w["import_job"].pk}),
    "api-project-exports": Researchers(kwargs=P),
    "api-export-detail": Researchers(kwargs=lambda w: {**P(w), "job_id": w["export_job"].pk}),
    "api-export-download": Researchers(kwargs=lambda w: {**P(w), "job_id": w["export_job"].pk}),
    "api-export-card": Researchers(kwargs=lambda w: {**P(w), "job_id": w["export_job"].pk}),
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
    "model-page": Researchers(kwargs=P),
    "model-runs": Researchers(kwargs=P),
    "model-retrain": Researchers("POST", kwargs=P),
    "model-settings": Researchers("POST", kwargs=P, data=lambda w: {"mode": "head", "objective": "bt"}),
    "model-run-cancel": Researchers("POST", kwargs=lambda w: {**P(w), "run_id": w["run"].pk}),
    "model-promote": Researchers("POST", kwargs=lambda w: {**P(w), "number": w["model_version"].number}),
    "model-rollback": Researchers("POST", kwargs=P),
    "model-selection": Researchers(kwargs=P),
    "model-selection-update": Researchers("POST", kwargs=P, data=lambda w: {"strategy": "uncertainty"}),
    "model-rescore": Researchers("POST", kwargs=P),
    "api-score": Researchers("POST", kwargs=P, data=lambda w: {"prompt": "q", "responses": ["a"]}),
    "api-score-job": Researchers(kwargs=lambda w: {**P(w), "job_id": w["scoring_job"].pk}),
    "api-score-job-cancel": Researchers("POST", kwargs=lambda w: {**P(w), "job_id": w["scoring_job"].pk}),
    "api-models": Researchers(kwargs=P),
    "api-model-runs": Researchers(kwargs=P),
    "api-model-run": Researchers(kwargs=lambda w: {**P(w), "run_id": w["run"].pk}),
    # --- quality ---
    "quality-dashboard": Researchers(kwargs=P),
    "quality-status": Researchers(kwargs=P),
    "quality-refresh": Researchers("POST", kwargs=P),
    "quality-pause": Researchers("POST", kwargs=lambda w: {**P(w), "user_id": w["users"]["annotator_here"].pk}),
    "quality-resume": Researchers("POST", kwargs=lambda w: {**P(w), "user_id": w["users"]["annotator_here"].pk}),
    "quality-audit": Researchers("POST", kwargs=P),
    "quality-review": Researchers(kwargs=P),
    "quality-review-refresh": Researchers("POST", kwargs=P),
    "quality-review-item": Researchers(kwargs=lambda w: {**P(w), "item_id": w["review_item"].pk}),
    "quality-review-adjudicate": Researchers("POST", kwargs=lambda w: {**P(w), "item_id": w["review_item"].pk},
                                     data=lambda w: {"choice": "A", "strength": "-2"}),
    "quality-review-more-labels": Researchers("POST", kwargs=lambda w: {**P(w), "item_id": w["review_item"].pk}),
    "quality-review-ambiguous": Researchers("POST", kwargs=lambda w: {**P(w), "item_id": w["review_item"].pk}),
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
    if method == "GET":
        return client.get(path)
    if method == "POST":
        return client.post(path, data)
    return client.generic(method, path, json.dumps(data), content_type="application/json")


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


def _refusal_problems(where: str, path: str, resp, reason: str) -> list[str]:
    """A member refused by role: 403, and the reason in words (JSON in the API, the 403 page otherwise)."""
    if resp.status_code != 403:
        return [f"{where}: a member refused by role got {resp.status_code}, not 403"]
    if path.startswith("/api/"):
        return [] if resp.json() == {"detail": reason} else [f"{where}: {resp.content[:200]!r} does not give {reason!r}"]
    body = resp.content.decode()
    if escape(reason) not in body or 'id="forbidden"' not in body:
        return [f"{where}: the 403 page does not say {reason!r}"]
    return []


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
        watch = row.method != "GET" and not allowed

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
        elif role in row.refused:
            problems += _refusal_problems(where, path, resp, row.reason)
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
