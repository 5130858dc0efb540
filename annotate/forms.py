"""Translating the task page's form fields into an answer for ``submit.task_submit``."""


def _int_or_none(raw: str | None):
    try:
        return int(raw) if raw not in (None, "") else None
    except ValueError:
        return "bad"


def task_submit_from_post(*, assignment, user, data) -> None:
    """Translate the task page's form fields into an answer for ``submit.task_submit``.
    Field names: preference (−3..3 or both_bad), crit_<key>, score_<key>
    (number, yes/no, severity level or na), rank_<response id>, rationale, flags,
    spans (JSON), time_on_task_ms, idempotency_key."""
    import json

    from . import submit
    from .models import TaskKind
    from .queue import TaskError

    time_ms = _int_or_none(data.get("time_on_task_ms"))
    answer: dict = {
        "rationale": data.get("rationale", ""),
        "idempotency_key": (data.get("idempotency_key") or "")[:64] or None,
        "time_on_task_ms": time_ms if isinstance(time_ms, int) else None,
    }
    try:
        answer["spans"] = json.loads(data.get("spans") or "[]")
    except ValueError:
        raise TaskError("the answer is incomplete or invalid", {"spans": "not valid JSON"}) from None
    if assignment.kind == TaskKind.PAIRWISE:
        raw = data.get("preference")
        answer["both_bad"] = raw == "both_bad"
        answer["preference"] = None if answer["both_bad"] else _int_or_none(raw)
        if answer["preference"] == "bad":
            raise TaskError("the answer is incomplete or invalid", {"preference": "choose a point on the scale"})
        answer["criteria"] = {k[5:]: v for k, v in data.items() if k.startswith("crit_") and v}
        answer["flags"] = data.getlist("flags")
    elif assignment.kind == TaskKind.RATING:
        answer["scores"] = {key[6:]: _form_score(value) for key, value in data.items()
                            if key.startswith("score_") and value != ""}
    else:
        ranks: dict[int, list[int]] = {}
        for key, value in data.items():
            if key.startswith("rank_") and value not in ("", None):
                rank = _int_or_none(value)
                rid = _int_or_none(key[5:])
                if isinstance(rank, int) and isinstance(rid, int):
                    ranks.setdefault(rank, []).append(rid)
        answer["groups"] = [sorted(ranks[r]) for r in sorted(ranks)]
    submit.task_submit(assignment=assignment, user=user, answer=answer)


def _form_score(value: str):
    """A rating field's text as the type its scale stores (``rubrics.schema``):
    ``na`` → N/A, yes/no → a bool, digits → an int, a severity level as it is."""
    if value == "na":
        return None
    if value in ("yes", "no"):
        return value == "yes"
    if value.lstrip("-").isdigit():
        return int(value)
    return value
