"""REST API (token or session auth). Same access rules and services as the pages.
Projects and their members are in ``annotate.projects_api``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response as ApiResponse

from . import queue, submit
from .access import get_assignment_for, get_project_for
from .presenters import task_payload
from .models import Assignment, TaskKind


# --- the annotation queue ----------------------------------------------------------


class NextTaskRequest(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[k.value for k in queue.QUEUE_KINDS], default=TaskKind.PAIRWISE.value)


class TaskSerializer(serializers.Serializer):
    assignment = serializers.IntegerField()
    kind = serializers.CharField()
    project = serializers.CharField()
    expires_at = serializers.DateTimeField()
    state = serializers.CharField()
    guidelines = serializers.CharField()
    rubric_version = serializers.DictField(allow_null=True)
    criteria = serializers.ListField(child=serializers.DictField())
    conversation = serializers.ListField(child=serializers.DictField())
    responses = serializers.ListField(child=serializers.DictField())
    ranking_top_k = serializers.IntegerField(required=False, allow_null=True)


class SubmitRequest(serializers.Serializer):
    """Fields per kind: pairwise uses preference/both_bad/criteria/flags/spans;
    rating uses scores/spans; ranking uses groups. A and B mean the responses in
    the order the task listed them."""

    idempotency_key = serializers.CharField(required=False, allow_blank=True, max_length=64)
    time_on_task_ms = serializers.IntegerField(required=False, min_value=0)
    rationale = serializers.CharField(required=False, allow_blank=True, default="")
    preference = serializers.IntegerField(required=False, allow_null=True, min_value=-3, max_value=3,
                                          help_text="-3 A (listed first) much better … 0 tie … 3 B much better")
    both_bad = serializers.BooleanField(required=False, default=False)
    criteria = serializers.DictField(child=serializers.CharField(), required=False, default=dict)
    flags = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    spans = serializers.ListField(child=serializers.DictField(), required=False, default=list)
    scores = serializers.DictField(required=False, default=dict)
    groups = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()), required=False)


# --- the hot bodies, read without DRF's fields when they are plain -------------------
#
# DRF's serializer was an eighth of a submit's CPU (issue #19 point 2: field objects,
# validators and error plumbing for a body that is almost always a few ints and
# short strings). ``*_body`` answer plain bodies directly, with exactly the
# validated data the serializer would give (tests/annotate/test_api_bodies.py
# compares the two over a corpus and random bodies), and hand anything else to the
# serializer, so every error, its wording and its shape stay DRF's.

_ABSENT = object()
_SLOW = object()  # "only the serializer can answer this one"


def _text(value: Any, *, blank_ok: bool, max_length: int | None = None) -> Any:
    """A ``serializers.CharField``'s value for a str, or _SLOW."""
    if type(value) is not str or "\x00" in value:
        return _SLOW
    if not value.isascii():
        try:
            value.encode("utf-8")  # fails exactly on lone surrogates, which DRF refuses
        except UnicodeEncodeError:
            return _SLOW
    text = value.strip()
    if (not text and not blank_ok) or (max_length is not None and len(text) > max_length):
        return _SLOW
    return text


def _plain_submit(data: Any) -> dict | None:
    if type(data) is not dict or "groups" in data:  # a form's QueryDict, a list, a ranking: DRF
        return None
    out: dict[str, Any] = {}
    get = data.get
    if (key := get("idempotency_key", _ABSENT)) is not _ABSENT:
        if (key := _text(key, blank_ok=True, max_length=64)) is _SLOW:
            return None
        out["idempotency_key"] = key
    if (ms := get("time_on_task_ms", _ABSENT)) is not _ABSENT:
        if type(ms) is not int or ms < 0:
            return None
        out["time_on_task_ms"] = ms
    if (rationale := _text(get("rationale", ""), blank_ok=True)) is _SLOW:
        return None
    out["rationale"] = rationale
    if (preference := get("preference", _ABSENT)) is not _ABSENT:
        if preference is not None and (type(preference) is not int or not -3 <= preference <= 3):
            return None
        out["preference"] = preference
    if type(both_bad := get("both_bad", False)) is not bool:
        return None
    out["both_bad"] = both_bad
    criteria, flags, spans, scores = get("criteria", {}), get("flags", []), get("spans", []), get("scores", {})
    if (type(criteria) is not dict or type(flags) is not list or type(spans) is not list
            or type(scores) is not dict or any(type(s) is not dict for s in spans)):
        return None
    out["criteria"] = {k: _text(v, blank_ok=False) for k, v in criteria.items()}
    out["flags"] = [_text(f, blank_ok=False) for f in flags]
    if _SLOW in out["criteria"].values() or _SLOW in out["flags"]:
        return None
    out["spans"] = [dict(s) for s in spans]
    out["scores"] = dict(scores)
    return out


def submit_body(data: Any) -> dict:
    """The submit's validated fields (``SubmitRequest``); DRF's 400 on bad input."""
    plain = _plain_submit(data)
    if plain is not None:
        return plain
    body = SubmitRequest(data=data)
    body.is_valid(raise_exception=True)
    return body.validated_data


_KINDS = frozenset(k.value for k in queue.QUEUE_KINDS)


def next_task_body(data: Any) -> dict:
    """The lease's validated fields (``NextTaskRequest``); DRF's 400 on bad input."""
    if type(data) is dict and type(kind := data.get("kind", TaskKind.PAIRWISE.value)) is str and kind in _KINDS:
        return {"kind": kind}
    body = NextTaskRequest(data=data)
    body.is_valid(raise_exception=True)
    return body.validated_data


class SkipRequest(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class LabelSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    assignment = serializers.IntegerField()
    created_at = serializers.DateTimeField()


_TASK_ERROR_STATUS = {"forbidden": 404, "expired": 409, "conflict": 409, "skipped": 409, "kind": 400, "invalid": 400,
                      "paused": 403}


def _task_error(exc: queue.TaskError) -> ApiResponse:
    if exc.code == "forbidden":
        return ApiResponse({"detail": "Not found."}, status=404)
    return ApiResponse({"detail": str(exc), "code": exc.code, "errors": exc.errors}, status=_TASK_ERROR_STATUS[exc.code])


@extend_schema(request=NextTaskRequest, responses={200: TaskSerializer, 204: None, 403: None})
@api_view(["POST"])
def task_next(request, slug: str):
    """Lease the next task of a kind (or get back your unfinished one); 204 when none is left for you."""
    project, _ = get_project_for(request.user, slug)
    body = next_task_body(request.data)
    try:
        a = queue.assignment_lease(project=project, annotator=request.user, kind=body["kind"])
    except queue.TaskError as exc:
        return _task_error(exc)
    if a is None:
        return ApiResponse(status=status.HTTP_204_NO_CONTENT)
    return ApiResponse(task_payload(a, project))


@extend_schema(responses=TaskSerializer)
@api_view(["GET"])
def task_detail(request, assignment_id: int):
    return ApiResponse(task_payload(get_assignment_for(request.user, assignment_id)))


@extend_schema(request=SubmitRequest, responses={200: LabelSerializer, 400: None, 409: None})
@api_view(["POST"])
def task_submit(request, assignment_id: int):
    """Submit an answer. Idempotent: repeating it (same assignment) returns the stored label."""
    answer = submit_body(request.data)
    try:
        # the service locks the assignment first and refuses another user's or a
        # missing one (404 below): no read of it here
        label = submit.task_submit(assignment=Assignment(pk=assignment_id), user=request.user,
                                   answer=answer)
    except queue.TaskError as exc:
        return _task_error(exc)
    return ApiResponse({"id": label.pk, "kind": label.assignment.kind, "assignment": assignment_id,
                        "created_at": label.created_at})


@extend_schema(request=SkipRequest, responses={200: None})
@api_view(["POST"])
def task_skip(request, assignment_id: int):
    a = get_assignment_for(request.user, assignment_id)
    body = SkipRequest(data=request.data)
    body.is_valid(raise_exception=True)
    try:
        submit.assignment_skip(assignment=a, user=request.user, reason=body.validated_data["reason"])
    except queue.TaskError as exc:
        return _task_error(exc)
    return ApiResponse({"assignment": a.pk, "state": "skipped"})
