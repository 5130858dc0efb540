from django import forms

from .exports.spec import AGGREGATIONS, FILE_FORMATS, FORMATS, ExportSpec
from .imports.parsers import PARSERS

FORMAT_HELP = {
    "jsonl": "Generic JSON Lines: prompt or conversation, responses, optional labels (see the README).",
    "hh-rlhf": "Anthropic HH-RLHF: chosen/rejected dialogues (.jsonl or .jsonl.gz).",
    "summarize": "OpenAI summarize-from-feedback comparisons (worker ids and confidence kept).",
    "pandalm": "PandaLM human test set: three annotators per pair, 0 = tie.",
    "oasst": "Open-Assistant message trees: ranked sibling replies become rankings.",
    "finegrained": "Fine-Grained RLHF QA feedback: six pairwise judgments per question, error spans on prediction 1.",
    "helpsteer2": "HelpSteer2 rows: five 0–4 attributes become ratings (.jsonl or .jsonl.gz).",
    "ultrafeedback": "UltraFeedback rows: completions with per-aspect 1–5 ratings (N/A kept as N/A).",
    "csv": "Generic CSV, one row per pairwise label or per response (columns in the README).",
    "parquet": "Generic Parquet with the same columns as the CSV format.",
}


class ImportForm(forms.Form):
    format = forms.ChoiceField(choices=[(k, f"{k} — {FORMAT_HELP.get(k, '')}") for k in PARSERS])
    file = forms.FileField()


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=[(k, f"{k} — {v}") for k, v in FORMATS.items()])
    file_format = forms.ChoiceField(choices=list(FILE_FORMATS.items()), initial="jsonl")
    aggregate = forms.ChoiceField(
        choices=[(k, f"{k} — {v}") for k, v in AGGREGATIONS.items()], initial="all",
        help_text="Pairwise formats only: how the labels of several annotators on one comparison become rows "
        "(adjudicated: the review queue's final label where a researcher set one, else the majority).",
    )
    min_agreement = forms.FloatField(
        required=False, min_value=0, max_value=1,
        help_text="Pairwise formats only: drop comparisons whose majority share is below this (e.g. 0.6).",
    )
    criterion = forms.CharField(
        required=False, max_length=64, help_text="Pairwise formats only: a pairwise criterion's key, to export its choices."
    )
    margin = forms.FloatField(required=False, help_text="Pairwise formats only: add a margin column, |strength| × this.")
    include_derived = forms.BooleanField(required=False, help_text="Include labels derived from ratings by a rubric rule.")

    def clean(self):
        data = super().clean()
        if not self.errors:
            try:
                data["spec"] = ExportSpec(
                    format=data["format"], file_format=data["file_format"], aggregate=data["aggregate"],
                    min_agreement=data.get("min_agreement"), criterion=data.get("criterion") or None,
                    margin=data.get("margin"), include_derived=data.get("include_derived", False),
                )
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from None
        return data


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
