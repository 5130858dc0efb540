"""Schemathesis against the live OpenAPI schema: every operation of /api/v1/schema/ is
called through the WSGI app with generated requests (valid ones, and ones the schema says
are invalid), as a researcher and as an annotator of a project holding one of every
object a route can name. Each response must be no server error, carry a documented
status code and content type, and match its documented body schema.

Half of the generated requests name the real project, job, run, rubric and task, so the
calls reach the views' validation and not only their 404s. Examples are bounded and
derandomised so CI sees the same requests every run."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings, strategies as st
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.failures import FailureGroup

from tests.factories import two_project_world

pytestmark = pytest.mark.django_db(transaction=False)

CHECK_NAMES = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
               "response_headers_conformance", "response_schema_conformance")
MAX_EXAMPLES = 12


def _real_path_parameters(world) -> dict[str, object]:
    return {
        "slug": world["here"].slug, "job_id": world["export_job"].pk, "run_id": world["run"].pk,
        "assignment_id": world["assignment"].pk, "username": world["users"]["annotator_here"].username,
        "number": world["published"].number,
    }


def _path_values(operation, world) -> dict[str, object]:
    """The real objects this operation's path names (the rubric's slug under /rubrics/,
    the import job under /imports/, the scoring job under /score/)."""
    values = _real_path_parameters(world)
    path = operation.path
    if path.startswith("/api/v1/rubrics/"):
        values["slug"] = world["rubric"].slug
    if "/imports/" in path:
        values["job_id"] = world["import_job"].pk
    if "/score/jobs/" in path:
        values["job_id"] = world["scoring_job"].pk
    names = {p.name for p in operation.path_parameters}
    return {k: v for k, v in values.items() if k in names}


def _run_operation(operation, world, headers, failures: dict[str, str]) -> None:
    load_all_checks()
    checks = [CHECKS.get_one(name) for name in CHECK_NAMES]  # a renamed check fails here, not silently
    strategies = [operation.as_strategy(generation_mode=mode) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    real = _path_values(operation, world)
    if real:
        strategies.append(operation.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters=real))
        strategies.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE, path_parameters=real))

    @given(case=st.one_of(strategies))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=False,
              suppress_health_check=list(HealthCheck))
    def call(case):
        # Keep going after a failure so one run lists every distinct one (by check and status).
        response = case.call(headers=headers)
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                key = f"{operation.label} -> {response.status_code}: {failure.title}"
                failures.setdefault(key, f"{failure}\n  request: {case.as_curl_command()}\n  body: {response.text[:300]}")

    call()


@pytest.fixture
def wsgi_app():
    """The project's WSGI app, kept inside the test's transaction: as Django's test client
    does, stop the request signals from closing the database connection."""
    from preflab.wsgi import application

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield application
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.mark.parametrize("persona", ["researcher_here", "annotator_here"])
def test_live_schema_holds_for_generated_requests(persona, tmp_path, wsgi_app):
    world = two_project_world(tmp_path)
    token, _ = Token.objects.get_or_create(user=world["users"][persona])
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", wsgi_app)
    headers = {"Authorization": f"Token {token.key}"}
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    for operation in operations:
        _run_operation(operation, world, headers, failures)
    assert not failures, f"{len(failures)} distinct failures:\n\n" + "\n\n".join(f"{k}\n{v}" for k, v in failures.items())


# --- what the schemathesis run found, one test each ---------------------------------


@pytest.fixture
def world(tmp_path):
    return two_project_world(tmp_path)


def _api_as(user):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(user)
    return api


def test_a_rubric_version_that_is_not_an_object_is_refused_naming_the_field(world):
    """It was a 500: the message's literal braces went through str.format."""
    api = _api_as(world["users"]["researcher_here"])
    resp = api.patch("/api/v1/projects/here/", {"rubric_version": "hh"}, format="json")
    assert resp.status_code == 400
    assert resp.json() == {"rubric_version": ['give {"rubric": "<slug>", "number": <n>} or null']}
    world["here"].refresh_from_db()
    assert world["here"].rubric_version == world["published"]


def test_an_api_path_that_matches_no_route_answers_json_404(world, client):
    """A slug with characters a slug cannot have matches no route: the answer was Django's HTML page."""
    api = _api_as(world["users"]["researcher_here"])
    resp = api.get("/api/v1/projects/h%C3%A9re/")
    assert (resp.status_code, resp["Content-Type"], resp.json()) == (404, "application/json", {"detail": "Not found."})
    page = client.get("/p/h%C3%A9re/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_export_card_and_download_are_served_as_the_schema_states(world, wsgi_app):
    api = _api_as(world["users"]["researcher_here"])
    job = world["export_job"]
    card = api.get(f"/api/v1/projects/here/exports/{job.pk}/card/")
    assert card["Content-Type"] == "text/markdown; charset=utf-8"
    assert b"".join(card.streaming_content) == b"# card\n"
    download = api.get(f"/api/v1/projects/here/exports/{job.pk}/download/")
    assert download["Content-Type"] == "application/octet-stream"
    schema = api.get("/api/v1/schema/?format=json").json()["paths"]
    assert set(schema["/api/v1/projects/{slug}/exports/{job_id}/card/"]["get"]["responses"]["200"]["content"]) == {
        "text/markdown"}
    assert set(schema["/api/v1/projects/{slug}/exports/{job_id}/download/"]["get"]["responses"]["200"]["content"]) == {
        "application/octet-stream", "application/zip"}


def test_a_datasets_export_downloads_as_a_zip(world, tmp_path):
    job = world["export_job"]
    archive = tmp_path / "export" / "data.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    job.file_path = str(archive)
    job.save(update_fields=["file_path"])
    resp = _api_as(world["users"]["researcher_here"]).get(f"/api/v1/projects/here/exports/{job.pk}/download/")
    assert resp["Content-Type"] == "application/zip"


def test_the_schema_states_the_error_answers(world):
    paths = _api_as(world["users"]["researcher_here"]).get("/api/v1/schema/?format=json").json()["paths"]
    token = paths["/api/v1/auth/token/"]["post"]["responses"]
    assert {"400", "429", "503"} <= set(token) and "401" not in token
    runs = paths["/api/v1/projects/{slug}/models/runs/"]["post"]["responses"]
    assert runs["503"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    members = paths["/api/v1/projects/{slug}/members/"]["post"]["responses"]
    assert {"201", "400", "401", "403", "404"} <= set(members)
    assert members["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert members["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ValidationError"}
    publish = paths["/api/v1/rubrics/{slug}/versions/{number}/publish/"]["post"]["responses"]
    assert publish["409"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    slug = next(p for p in paths["/api/v1/projects/{slug}/"]["get"]["parameters"] if p["name"] == "slug")
    assert slug["schema"]["pattern"] == "^[-a-zA-Z0-9_]+$"
    assert "403" not in paths["/api/v1/projects/"]["get"]["responses"]


def test_the_schema_states_what_the_bodies_need(world):
    """Found by schemathesis's positive-data check: requests valid by the schema that the server refused."""
    schema = _api_as(world["users"]["researcher_here"]).get("/api/v1/schema/?format=json").json()
    components, paths = schema["components"]["schemas"], schema["paths"]
    assert components["PatchedRoleRequest"]["required"] == ["role"]  # the role PATCH needs the role
    assert components["PatchedProject"]["properties"]["task_kinds"]["minItems"] == 1
    # a form cannot carry a submit's nested spans and groups: JSON only (an upload stays multipart)
    assert set(paths["/api/v1/tasks/{assignment_id}/submit/"]["post"]["requestBody"]["content"]) == {"application/json"}
    assert set(paths["/api/v1/projects/{slug}/imports/"]["post"]["requestBody"]["content"]) == {"multipart/form-data"}
