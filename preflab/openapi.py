"""The error answers every API operation can give, added to the OpenAPI schema in one
place (a drf-spectacular postprocessing hook) so that the schema lists what the server
really answers: tests/preflab/test_api_schema.py runs schemathesis against it.

DRF answers errors as JSON: ``{"detail": "..."}`` for 401/403/404/409/413/429/503/504, and
``{"<field>": ["message", ...]}`` (or ``non_field_errors``) for a refused body (400)."""

from __future__ import annotations

ERROR = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"],
         "description": "What went wrong, in `detail` (some answers add a `code` and the `errors`)."}
VALIDATION_ERROR = {"type": "object", "additionalProperties": True,
                    "description": "The refused fields, each with a list of messages (`non_field_errors` for the "
                    "request as a whole, `detail` when the body could not be read)."}

_DESCRIPTIONS = {
    "400": "The request was refused: the fields and what is wrong with them.",
    "401": "No credentials, or an unknown token.",
    "403": "Not allowed: your role in this project does not allow it (annotators cannot use researcher "
           "operations), your work here is paused, or (session log-in) the CSRF token is missing.",
    "404": "No such object, or one in a project you are not a member of (the two answers are identical).",
    "409": "The object is not in a state that allows this now.",
    "413": "Over a size limit; the message states the limit.",
    "429": "Too many failed log-ins; the message says how long to wait (also in `Retry-After`).",
    "503": "The service is unavailable: the database is not answering (any operation), or the job queue is "
           "unreachable (operations that queue a job) or was lost while the request waited for a worker's "
           "answer (a synchronous score); try again.",
    "504": "The worker doing this gave no answer in time; the message says what to do instead.",
}


def _json(ref: str) -> dict:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _codes(path: str, method: str, operation: dict) -> set[str]:
    """The error codes this operation can answer, whatever its view declares."""
    # preflab.errors answers 503 on any /api/ path while the database is down
    if path == "/api/v1/auth/token/":
        return {"400", "429", "503"}
    codes = {"401", "503"}
    # role checks live under a project, on tasks and on rubrics (researchers only); any
    # change can meet a role or CSRF refusal
    role_checked = ("/projects/{slug}/" in path or path.startswith(("/api/v1/tasks/", "/api/v1/rubrics/")))
    if method != "get" or role_checked:
        codes.add("403")
    # rubrics answer a non-researcher as if they were missing
    if "{" in path or path.startswith("/api/v1/rubrics/"):
        codes.add("404")
    if "requestBody" in operation:
        codes.add("400")
    return codes


# what the URL converters accept (drf-spectacular reads the views' `slug: str` hints instead)
SLUG_PATTERN = "^[-a-zA-Z0-9_]+$"


# drf-spectacular makes every PATCH body partial (all optional); these views validate
# their body whole, so the fields they need are required
REQUIRED_ON_PATCH = {"PatchedRoleRequest": ["role"]}

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _json_bodies_only(operation: dict) -> None:
    """State JSON request bodies only: DRF also parses forms, but a form cannot carry the
    nested lists and objects (spans, groups, items, rubric_version) that these bodies have.
    An upload (multipart only) keeps its one media type."""
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        for media_type in FORM_TYPES:
            content.pop(media_type, None)


def document_errors(result: dict, generator, request, public) -> dict:
    """Add the error responses (and their JSON bodies) to every /api/ operation, and the
    slug pattern to slug path parameters."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR)
    schemas.setdefault("ValidationError", VALIDATION_ERROR)
    for name, required in REQUIRED_ON_PATCH.items():
        if name in schemas:
            schemas[name]["required"] = required
    for path, item in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter.get("name") == "slug":
                    parameter["schema"].setdefault("pattern", SLUG_PATTERN)
            _json_bodies_only(operation)
            responses = operation["responses"]
            for code in _codes(path, method, operation):
                responses.setdefault(code, {"description": _DESCRIPTIONS[code]})
            for code, response in responses.items():
                # a view's `409: None` says that it happens; give it the body it has
                if code >= "400" and "content" not in response:
                    if response.get("description", "") in ("", "No response body"):
                        response["description"] = _DESCRIPTIONS.get(code, "An error.")
                    response["content"] = _json("ValidationError" if code == "400" else "Error")
    return result
