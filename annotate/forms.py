from django import forms

from .importers import PARSERS

FORMAT_HELP = {
    "jsonl": "Generic JSON Lines: prompt or conversation, responses, optional labels (see the README).",
    "hh-rlhf": "Anthropic HH-RLHF: chosen/rejected dialogues (.jsonl or .jsonl.gz).",
    "summarize": "OpenAI summarize-from-feedback comparisons (worker ids and confidence kept).",
    "pandalm": "PandaLM human test set: three annotators per pair, 0 = tie.",
}


class ImportForm(forms.Form):
    format = forms.ChoiceField(choices=[(k, f"{k} — {FORMAT_HELP.get(k, '')}") for k in PARSERS])
    file = forms.FileField()


def _int_or_none(raw: str | None):
    try:
        return int(raw) if raw not in (None, "") else None
    except ValueError:
        return "bad"


def task_submit_from_post(*, assignment, user, data) -> None:
    """Translate the task page's form fields into the queue service's arguments.
    Field names: preference (−3..3 or both_bad), crit_<key>, score_<key>
    (number, yes/no, severity level or na), rank_<response id>, rationale, flags,
    spans (JSON), time_on_task_ms, idempotency_key."""
    import json

    from . import queue
    from .models import TaskKind

    common = {
        "assignment": assignment,
        "user": user,
        "rationale": data.get("rationale", ""),
        "idempotency_key": (data.get("idempotency_key") or "")[:64] or None,
    }
    time_ms = _int_or_none(data.get("time_on_task_ms"))
    common["time_on_task_ms"] = time_ms if isinstance(time_ms, int) else None
    try:
        spans = json.loads(data.get("spans") or "[]")
    except ValueError:
        raise queue.TaskError("the answer is incomplete or invalid", {"spans": "not valid JSON"}) from None
    if assignment.kind == TaskKind.PAIRWISE:
        raw = data.get("preference")
        both_bad = raw == "both_bad"
        pref = None if both_bad else _int_or_none(raw)
        if pref == "bad":
            raise queue.TaskError("the answer is incomplete or invalid", {"preference": "choose a point on the scale"})
        criteria = {k[5:]: v for k, v in data.items() if k.startswith("crit_") and v}
        queue.judgment_submit(preference=pref, both_bad=both_bad, criteria=criteria, flags=data.getlist("flags"),
                              spans=spans, **common)
    elif assignment.kind == TaskKind.RATING:
        scores = {}
        for key, value in data.items():
            if not key.startswith("score_") or value == "":
                continue
            if value == "na":
                scores[key[6:]] = None
            elif value in ("yes", "no"):
                scores[key[6:]] = value == "yes"
            elif value.lstrip("-").isdigit():
                scores[key[6:]] = int(value)
            else:
                scores[key[6:]] = value
        queue.rating_submit(scores=scores, spans=spans, **common)
    else:
        ranks: dict[int, list[int]] = {}
        for key, value in data.items():
            if key.startswith("rank_") and value not in ("", None):
                rank = _int_or_none(value)
                rid = _int_or_none(key[5:])
                if isinstance(rank, int) and isinstance(rid, int):
                    ranks.setdefault(rank, []).append(rid)
        groups = [sorted(ranks[r]) for r in sorted(ranks)]
        queue.ranking_submit(groups=groups, **common)
