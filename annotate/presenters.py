"""What an annotator sees of a task, in one place for the task page and the REST
API (DESIGN §1: never gold flags or answers, model names, model scores or other
annotators' labels)."""

from __future__ import annotations

import hashlib
import hmac
import random

from rubrics.presenters import PREFERENCE_SCALE, criterion_view

from .models import Assignment, TaskKind

__all__ = ["PREFERENCE_SCALE", "annotator_pseudonym", "criterion_view", "task_payload"]


def task_payload(assignment: Assignment) -> dict:
    """The conversation, the responses in the order shown, and the rubric."""
    a = assignment
    data: dict = {
        "assignment": a.pk,
        "kind": a.kind,
        "project": a.project.slug,
        "expires_at": a.expires_at,
        "state": a.state,
        "guidelines": a.project.guidelines,
        "rubric_version": None,
        "criteria": [],
    }
    if a.rubric_version_id:
        v = a.rubric_version
        data["rubric_version"] = {"id": v.pk, "rubric": v.rubric.name, "number": v.number,
                                  "ask_overall_preference": v.ask_overall_preference, "guidelines": v.guidelines}
        data["criteria"] = [criterion_view(c) for c in v.criteria.all()]
    if a.kind == TaskKind.PAIRWISE:
        c = a.comparison
        left, right = (c.response_a, c.response_b) if a.shown_left_id == c.response_a_id else (c.response_b, c.response_a)
        data["conversation"] = c.prompt.conversation
        data["responses"] = [{"id": left.pk, "label": "A", "text": left.text}, {"id": right.pk, "label": "B", "text": right.text}]
    elif a.kind == TaskKind.RATING:
        data["conversation"] = a.response.prompt.conversation
        data["responses"] = [{"id": a.response.pk, "label": "", "text": a.response.text}]
    else:
        responses = list(a.prompt.responses.all())
        # a stable shuffle per assignment, so the listing order carries no signal
        random.Random(a.pk).shuffle(responses)
        data["conversation"] = a.prompt.conversation
        data["responses"] = [{"id": r.pk, "label": chr(65 + i) if i < 26 else str(i + 1), "text": r.text}
                             for i, r in enumerate(responses)]
        data["ranking_top_k"] = a.project.ranking_top_k
    return data


def annotator_pseudonym(*, salt: str, user_id: int) -> str:
    """Stable per project, unlinkable across projects, never the username: an HMAC of
    the user id keyed by the project's secret salt. Exports and the review queue
    show annotators by it."""
    return hmac.new(salt.encode(), str(user_id).encode(), hashlib.sha256).hexdigest()[:16]
