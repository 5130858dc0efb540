"""The queue API reads plain submit and next-task bodies without DRF's fields
(annotate.api ``submit_body`` / ``next_task_body``, issue #19 point 2). The fast
reading must give exactly the serializer's validated data, and every body it does
not take must get the serializer's own errors."""

from __future__ import annotations

import random

import pytest
from rest_framework.exceptions import ValidationError

from annotate import api

PLAIN = [
    {},
    {"preference": 2, "idempotency_key": "k-1", "time_on_task_ms": 1234},
    {"preference": None, "both_bad": True},
    {"preference": -3, "criteria": {"helpful": "A", "harmless": " tie "}, "rationale": "  because  "},
    {"preference": 0, "flags": ["unsafe", " broken "], "spans": [{"response": 1, "start": 0, "end": 3, "type": "x"}]},
    {"scores": {"fluency": 4, "correct": None, "sev": "minor"}, "rationale": "", "idempotency_key": ""},
    {"preference": 1, "unknown_field": [1, 2], "time_on_task_ms": 0},
    {"preference": 3, "rationale": "éè ünïcode ✓", "idempotency_key": " " + "k" * 64 + " "},
]

# bodies only the serializer may answer: each is valid or invalid in DRF's own way
DRF_ONLY = [
    [], "text", None,
    {"preference": 4}, {"preference": "2"}, {"preference": 1.0}, {"preference": True},
    {"time_on_task_ms": -1}, {"time_on_task_ms": "12"}, {"time_on_task_ms": None}, {"time_on_task_ms": 3.0},
    {"idempotency_key": "k" * 65}, {"idempotency_key": None}, {"idempotency_key": 12}, {"idempotency_key": "a\x00b"},
    {"rationale": None}, {"rationale": "bad \ud800 surrogate"}, {"rationale": 5},
    {"both_bad": "true"}, {"both_bad": 1}, {"both_bad": None},
    {"criteria": {"helpful": ""}}, {"criteria": {"helpful": "   "}}, {"criteria": {"helpful": 1}}, {"criteria": []},
    {"criteria": None}, {"flags": "unsafe"}, {"flags": [""]}, {"flags": [1]}, {"flags": None},
    {"spans": [1]}, {"spans": {}}, {"spans": None}, {"scores": []}, {"scores": None},
    {"groups": [[1, 2], [3]]}, {"groups": "x"},
]


def _drf(data):
    body = api.SubmitRequest(data=data)
    return (True, body.validated_data) if body.is_valid() else (False, body.errors)


@pytest.mark.parametrize("data", PLAIN, ids=range(len(PLAIN)))
def test_plain_bodies_take_the_fast_reading_and_equal_drf(data):
    fast = api._plain_submit(data)
    assert fast is not None, "a plain body went to the serializer"
    ok, drf = _drf(data)
    assert ok and fast == dict(drf)
    assert api.submit_body(data) == dict(drf)


@pytest.mark.parametrize("data", DRF_ONLY, ids=range(len(DRF_ONLY)))
def test_other_bodies_get_the_serializer_answer(data):
    assert api._plain_submit(data) is None
    ok, drf = _drf(data)
    if ok:
        assert api.submit_body(data) == dict(drf)
    else:
        with pytest.raises(ValidationError) as exc:
            api.submit_body(data)
        assert exc.value.detail == drf


_VALUES = [None, True, False, 0, 1, -1, 2, 3, 4, -4, 1.5, 2.0, "", " ", "A", " tie ", "x" * 70, "a\x00", "\ud83d",
           "é", [], [""], ["unsafe"], [1], [{}], [{"a": 1}], {}, {"k": "A"}, {"k": ""}, {"k": 1}, {"k": None}]
_FIELDS = ["idempotency_key", "time_on_task_ms", "rationale", "preference", "both_bad", "criteria", "flags", "spans",
           "scores", "other"]


def test_random_bodies_agree_with_drf():
    """Whatever the fast reading accepts, DRF accepts with the same data; and it
    accepts a good share of them (else the fast path would be dead code)."""
    rng = random.Random(19)
    taken = 0
    for _ in range(3000):
        data = {f: rng.choice(_VALUES) for f in rng.sample(_FIELDS, rng.randint(0, 5))}
        fast = api._plain_submit(data)
        ok, drf = _drf(data)
        if fast is not None:
            taken += 1
            assert ok, (data, drf)
            assert fast == dict(drf), data
    assert taken > 150


@pytest.mark.parametrize("data", [{}, {"kind": "pairwise"}, {"kind": "rating"}, {"kind": "ranking"}, {"other": 1}])
def test_next_task_plain_bodies(data):
    body = api.NextTaskRequest(data=data)
    assert body.is_valid()
    assert api.next_task_body(data) == dict(body.validated_data)


@pytest.mark.parametrize("data", [{"kind": "nope"}, {"kind": 1}, {"kind": ["pairwise"]}, {"kind": None}, [], ""])
def test_next_task_bad_bodies_get_drf_errors(data):
    body = api.NextTaskRequest(data=data)
    assert not body.is_valid()
    with pytest.raises(ValidationError) as exc:
        api.next_task_body(data)
    assert exc.value.detail == body.errors
