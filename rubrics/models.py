"""Rubrics, their immutable versions, and criteria (DESIGN §2, §3)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .schema import validate_criterion


class Rubric(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True, help_text="Markdown.")
    tags = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# Labels (annotate's Judgment, Rating, Ranking) point at the version they were made
# under. Rubrics sit below annotate (DESIGN §10), so they are reached through these
# reverse relations, never by importing annotate.
LABEL_RELATIONS = ("judgments", "ratings", "rankings")
# How each label model reaches its project (annotate's field names, as strings).
LABEL_PROJECT = {"judgments": "comparison__project", "ratings": "response__prompt__project",
                 "rankings": "prompt__project"}


def _label_models():
    return [(name, RubricVersion._meta.get_field(name).related_model) for name in LABEL_RELATIONS]


class RubricVersionQuerySet(models.QuerySet):
    def referenced(self) -> "RubricVersionQuerySet":
        """Versions that any label points at: these can never change again."""
        any_label = models.Q()
        for _, model in _label_models():
            any_label |= models.Exists(model.objects.filter(rubric_version=models.OuterRef("pk")))
        return self.filter(any_label)

    def label_counts(self, *, projects=None) -> dict[int, dict[str, dict[str, int]]]:
        """Labels made under each of these versions, by kind: the proof that old
        labels stay put. Only labels of ``projects`` when given: a viewer counts their
        own projects' labels."""
        return label_counts(versions=self, projects=projects, by_version=True)


def label_counts(*, projects=None, versions=None, by_version: bool = False) -> dict:
    """The one count of labels that pages show (the project page, the rubric page),
    so their figures agree: per kind (``judgments``, ``ratings``, ``rankings``) the
    ``total`` (every source: human, imported, model, adjudicated, derived) and how
    many of it a rubric rule ``derived``, which the pages say ("12 judgments (3
    derived)"). Counted in SQL; ``by_version`` keys the result by rubric version id."""
    counts: dict = {}
    figures = {"total": models.Count("id"), "derived": models.Count("id", filter=models.Q(source="derived"))}
    for name, model in _label_models():
        labels = model.objects.all()
        if versions is not None:
            labels = labels.filter(rubric_version__in=versions)
        if projects is not None:
            labels = labels.filter(**{f"{LABEL_PROJECT[name]}__in": projects})
        if not by_version:
            counts[name] = labels.aggregate(**figures)
            continue
        for row in labels.values("rubric_version_id").annotate(**figures).order_by():
            counts.setdefault(row.pop("rubric_version_id"), {})[name] = row
    return counts


class RubricVersion(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        PUBLISHED = "published"
        RETIRED = "retired"

    class Aggregation(models.TextChoices):
        WEIGHTED_SUM = "weighted_sum"
        HIERARCHICAL = "hierarchical"
        CONJUNCTIVE = "conjunctive"

    rubric = models.ForeignKey(Rubric, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    changelog = models.TextField(blank=True)
    guidelines = models.TextField(blank=True, help_text="Markdown, with worked examples.")
    aggregation = models.CharField(max_length=16, choices=Aggregation.choices, default=Aggregation.WEIGHTED_SUM)
    ask_overall_preference = models.BooleanField(
        default=True, help_text="Also ask a rubric-free overall preference (rubrics flatten real disagreement)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    objects = RubricVersionQuerySet.as_manager()

    class Meta:
        ordering = ["rubric", "number"]
        constraints = [models.UniqueConstraint(fields=["rubric", "number"], name="rubric_version_number_unique")]

    def __str__(self) -> str:
        return f"{self.rubric.name} v{self.number} ({self.status})"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("rubric-detail", args=[self.rubric.slug]) + f"?v={self.number}"


class Criterion(models.Model):
    class Scale(models.TextChoices):
        LIKERT = "likert"
        BINARY = "binary"
        PAIRWISE = "pairwise"
        SEVERITY = "severity"
        SPANS = "spans"

    class Polarity(models.TextChoices):
        HIGHER_BETTER = "higher_better"
        LOWER_BETTER = "lower_better"
        TARGET = "target"

    class Kind(models.TextChoices):
        PRINCIPLE = "principle"
        HARD_RULE = "hard_rule"

    version = models.ForeignKey(RubricVersion, on_delete=models.CASCADE, related_name="criteria")
    position = models.PositiveIntegerField(default=0)
    key = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="Markdown.")
    scale = models.CharField(max_length=16, choices=Scale.choices)
    config = models.JSONField(default=dict, blank=True, help_text="Scale settings: min/max, anchors, error types.")
    polarity = models.CharField(max_length=16, choices=Polarity.choices, default=Polarity.HIGHER_BETTER)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PRINCIPLE)
    weight = models.FloatField(default=1.0)
    priority = models.PositiveIntegerField(default=1)
    margin = models.FloatField(default=0.0)
    threshold = models.FloatField(null=True, blank=True)
    na_allowed = models.BooleanField(default=False)
    requires_rationale = models.BooleanField(default=False)
    principle = models.TextField(blank=True, help_text="One-sentence principle for LLM judges and exports.")

    class Meta:
        ordering = ["version", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["version", "key"], name="criterion_key_unique_in_version")]

    def __str__(self) -> str:
        return f"{self.key} ({self.scale})"

    def as_spec(self) -> dict:
        """The flat dict form used by templates, exports and validation."""
        data = {
            "key": self.key,
            "name": self.name,
            "description": self.description,
            "scale": self.scale,
            "polarity": self.polarity,
            "kind": self.kind,
            "weight": self.weight,
            "priority": self.priority,
            "margin": self.margin,
            "threshold": self.threshold,
            "na_allowed": self.na_allowed,
            "requires_rationale": self.requires_rationale,
            "principle": self.principle,
        }
        data.update(self.config)
        return data

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from .schema import CriterionError

        try:
            validate_criterion(self.as_spec())
        except CriterionError as exc:
            columns = {f.name for f in self._meta.concrete_fields}
            raise ValidationError({k if k in columns else "config": v for k, v in exc.errors.items()}) from None
