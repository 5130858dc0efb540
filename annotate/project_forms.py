"""Forms of the project pages: a project's settings (new and existing) and its
members. They type the input and run the model's own checks (on a copy of the
project); the services decide what existing work allows and name the field when
they refuse."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from rubrics.models import RubricVersion

from .models import Project, Role, TaskKind
from .services import PROJECT_FIELDS

KIND_HELP = {
    TaskKind.PAIRWISE: "Pairwise: two responses side by side, a 7-point preference",
    TaskKind.RATING: "Rating: one response scored on the rubric's criteria",
    TaskKind.RANKING: "Ranking: all responses of a prompt put in order",
    TaskKind.SPANS: "Spans: error spans tagged on the text (needs a spans criterion)",
}


class ProjectForm(forms.ModelForm):
    """New project (with ``slug``) or its settings (without: the slug never changes)."""

    task_kinds = forms.MultipleChoiceField(
        choices=[(k.value, KIND_HELP[k]) for k in TaskKind], widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "choose at least one task kind"},
    )
    rubric_version = forms.ModelChoiceField(
        queryset=RubricVersion.objects.none(), required=False, label="Rubric version",
        empty_label="None: annotators give an overall preference only",
        help_text="A published version; labels already made keep the version they were made under.",
    )

    field_order = ["name", "slug", "description", "guidelines", "task_kinds", "rubric_version"]

    class Meta:
        model = Project
        fields = ["slug", *PROJECT_FIELDS]
        labels = {
            "lease_ttl_seconds": "Lease time (seconds)", "gold_rate": "Gold rate (0–1)", "license": "Licence",
            "max_tasks_per_annotator": "Most tasks per annotator",
            "ranking_top_k": "Rank only the best k", "pause_below_gold_accuracy": "Pause below gold accuracy (0–1)",
        }
        help_texts = {
            "slug": "In the project's address; letters, digits, - and _. It cannot change later.",
            "guidelines": "Markdown, shown to annotators above every task.",
            "lease_ttl_seconds": "How long a task stays with an annotator before it returns to the queue.",
            "gold_rate": "Share of tasks that are gold (known-answer) checks.",
        }
        widgets = {"description": forms.Textarea(attrs={"rows": 2}), "guidelines": forms.Textarea(attrs={"rows": 8})}

    def __init__(self, *args, creating: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not creating:
            del self.fields["slug"]
        self.fields["rubric_version"].queryset = RubricVersion.objects.filter(
            status=RubricVersion.Status.PUBLISHED).select_related("rubric").order_by("rubric__name", "-number")
        self.fields["rubric_version"].label_from_instance = lambda v: f"{v.rubric.name} v{v.number}"
        if self.instance.pk:
            self.initial.setdefault("rubric_version", self.instance.rubric_version_id)

    def changes(self) -> dict:
        """The fields as the services take them."""
        return {name: self.cleaned_data[name] for name in self.fields}

    def add_service_error(self, exc: ValidationError) -> None:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
        for field, messages in errors.items():
            self.add_error(field if field in self.fields else None, messages)


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)


class MemberCreateForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="Letters, digits and @ . + - _")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)
    how = forms.ChoiceField(
        choices=[("password", "a one-time password, shown to you once"),
                 ("invite", "an invite link: they choose their own password")],
        widget=forms.RadioSelect, initial="invite", label="Sign-in",
    )


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
