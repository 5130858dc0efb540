"""What an annotator sees of a task, in one place for the task page and the REST
API (DESIGN §1: never gold flags or answers, model names, model scores or other
annotators' labels)."""

from __future__ import annotations

import hashlib
import hmac
import random

from rubrics.presenters import PREFERENCE_SCALE, criterion_view, version_criteria

from .compiled import CompiledQuery
from .models import Assignment, TaskKind

__all__ = ["PREFERENCE_SCALE", "annotator_pseudonym", "criterion_view", "task_payload"]


# What a task shows, by kind, read with the assignment in one query (a lease
# hands back bare ids; reading each object on first use took six queries).
_SHOWN = {
    TaskKind.PAIRWISE: ("comparison__prompt", "comparison__response_a", "comparison__response_b"),
    TaskKind.RATING: ("response__prompt",),
    TaskKind.RANKING: ("prompt",),
}


def _task_query(kind: str):
    def build(*, pk: int):
        # get()'s query: no ordering, at most MAX_GET_RESULTS rows
        return Assignment.objects.select_related("rubric_version__rubric", *_SHOWN[kind]).filter(pk=pk).order_by()[:21]
    return CompiledQuery(build, pk=int)


# compiled once per connection (annotate.compiled): every lease shows its task
_TASK = {kind: _task_query(kind) for kind in _SHOWN}


def task_payload(assignment: Assignment, project=None) -> dict:
    """The conversation, the responses in the order shown, and the rubric.
    ``project``: the assignment's project where the caller holds it already."""
    a = _TASK[assignment.kind].first(pk=assignment.pk)
    if a is None:
        raise Assignment.DoesNotExist("Assignment matching query does not exist.")
    a.project = project if project is not None and project.pk == a.project_id else assignment.project
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
        data["criteria"] = [criterion_view(c) for c in version_criteria(v)]
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


def my_labels(*, project, annotator, limit: int = 50) -> dict[str, list]:
    """An annotator's own recent labels of every kind, each with its prompt and the
    responses as they judged them: pairwise with the preferred one first (in the
    order shown), rankings best first. Nobody else's labels are read."""
    from .models import Judgment, Ranking, Rating, Response

    judgments = list(
        Judgment.objects.filter(comparison__project=project, annotator=annotator)
        .select_related("comparison__response_a", "comparison__response_b", "comparison__prompt", "rubric_version__rubric")
        .order_by("-created_at")[:limit])
    for j in judgments:
        c = j.comparison
        shown = [c.response_a, c.response_b] if j.shown_left_id in (None, c.response_a_id) else [c.response_b, c.response_a]
        j.shown = [{"label": "AB"[i], "text": r.text, "chosen": j.choice == ("A" if r.pk == c.response_a_id else "B")}
                   for i, r in enumerate(shown)]
    ratings = list(
        Rating.objects.filter(response__prompt__project=project, annotator=annotator)
        .select_related("response__prompt", "rubric_version__rubric").order_by("-created_at")[:limit])
    rankings = list(
        Ranking.objects.filter(prompt__project=project, annotator=annotator)
        .select_related("prompt", "rubric_version__rubric").order_by("-created_at")[:limit])
    texts = dict(Response.objects.filter(prompt__in=[r.prompt_id for r in rankings]).values_list("id", "text"))
    for r in rankings:
        r.ordered = [{"rank": rank, "text": texts.get(rid, "")} for rank, group in enumerate(r.groups, 1) for rid in group]
    return {"judgments": judgments, "ratings": ratings, "rankings": rankings}
