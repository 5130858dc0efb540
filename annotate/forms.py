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
