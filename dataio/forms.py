"""The import and export forms."""

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
    criterion = forms.ChoiceField(
        required=False, help_text="Pairwise formats only: export one pairwise criterion's choices instead of the "
        "overall preference.",
    )
    margin = forms.FloatField(required=False, help_text="Pairwise formats only: add a margin column, |strength| × this.")
    include_derived = forms.BooleanField(required=False, help_text="Include labels derived from ratings by a rubric rule.")
    keep_formulas = forms.BooleanField(
        required=False, label="Keep formulas",
        help_text="CSV only: write cells starting with = + - @ as they are. By default they get a leading ' so that "
        "a spreadsheet shows them as text instead of running them (the generic CSV always escapes them).",
    )

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        # Only the pinned rubric's pairwise criteria carry A/B choices to split on; a
        # free-text key would export nothing and say so only in the card.
        version = project.rubric_version
        pairwise = version.criteria.filter(scale="pairwise").order_by("position", "id") if version else []
        self.fields["criterion"].choices = [("", "overall preference (no criterion)")] + [
            (c.key, f"{c.name} ({c.key})") for c in pairwise
        ]
        if not pairwise:
            self.fields["criterion"].help_text += " The pinned rubric has no pairwise criterion."

    def clean(self):
        data = super().clean()
        if not self.errors:
            try:
                data["spec"] = ExportSpec(
                    format=data["format"], file_format=data["file_format"], aggregate=data["aggregate"],
                    min_agreement=data.get("min_agreement"), criterion=data.get("criterion") or None,
                    margin=data.get("margin"), include_derived=data.get("include_derived", False),
                    escape_formulas=not data.get("keep_formulas", False),
                )
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from None
        return data
