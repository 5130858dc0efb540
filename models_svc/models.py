"""Reward-model registry: training runs and the versions they produce (DESIGN §2, §4).

A run is queued, claimed by exactly one worker (a conditional UPDATE), heartbeats
while it trains, and ends succeeded, failed or cancelled. Only a succeeded run
records a ModelVersion, after its artifact is fully in place; a version is a
candidate until promoted, and each project has at most one active version (a
partial unique constraint, so even a race cannot make two)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotate.models import BackgroundJob, JobStatus


class RewardSettings(models.Model):
    """Per-project reward-model settings (one row per project, made on demand)."""

    class Mode(models.TextChoices):
        # What a run costs, since the web page offers the choice before anything is measured:
        # the frozen head still embeds every text once (docs/reward-model-accuracy.md).
        HEAD = "head", "head (frozen backbone: minutes on a CPU, seconds on a GPU)"
        FINETUNE = "finetune", "finetune (full fine-tune: tens of minutes on a CPU, minutes on a GPU)"

    class Objective(models.TextChoices):
        BT = "bt", "Bradley-Terry on pairwise labels"
        MULTI = "multi", "multi-objective regression on ratings"
        GATED = "gated", "ratings heads + gate trained on pairs (ArmoRM)"

    project = models.OneToOneField("annotate.Project", on_delete=models.CASCADE, related_name="reward_settings")
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.HEAD)
    objective = models.CharField(max_length=16, choices=Objective.choices, default=Objective.BT)
    preset = models.CharField(
        max_length=32, default="minilm",
        help_text="Backbone and head recipe, a key of models_svc.ml.config.PRESETS (validated by the service).",
    )
    backbone = models.CharField(
        max_length=500, blank=True,
        help_text="Local checkpoint directory or .gguf file (site admins); replaces the preset's backbone. "
        "Empty: the preset's.",
    )
    refresh_after_labels = models.PositiveIntegerField(
        default=0, help_text="Queue a head-mode retrain after this many new labels since the last run; 0: never."
    )
    auto_promote = models.BooleanField(
        default=False,
        help_text="Promote a new version when a paired bootstrap over the fixed eval split puts its accuracy gain "
        "over the active one above zero (95% interval).",
    )
    promote_min_eval_pairs = models.PositiveIntegerField(
        default=100,
        help_text="Automatic promotion also needs at least this many held-out comparisons (ties excluded): on fewer, "
        "chance decides.",
    )
    last_rescore = models.JSONField(
        default=dict, blank=True, help_text="What the last rescoring did (strategy, counts, score histogram)."
    )

    def __str__(self) -> str:
        return f"reward settings of {self.project}"


class TrainingRun(BackgroundJob):
    Status = JobStatus

    class Trigger(models.TextChoices):
        MANUAL = "manual"
        AUTO = "auto"
        API = "api"
        CLI = "cli"

    ACTIVE_STATES = (Status.QUEUED, Status.RUNNING)

    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="training_runs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    config = models.JSONField(default=dict, help_text="Resolved TrainConfig (models_svc.ml.config).")
    data_snapshot = models.JSONField(
        default=dict, help_text="Which labels the run sees: highest label ids at enqueue, counts, and a hash."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    metrics = models.JSONField(default=dict, blank=True, help_text="{'final': {...}, 'curves': [...], 'live': {...}}")
    worker = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"run #{self.pk} {self.config.get('mode', '?')}/{self.config.get('objective', '?')} ({self.status})"


class ModelVersion(models.Model):
    class State(models.TextChoices):
        CANDIDATE = "candidate"
        ACTIVE = "active"
        RETIRED = "retired"

    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="model_versions")
    # RESTRICT, not PROTECT: a run that made a version cannot be deleted on its own,
    # but deleting the project takes both (PROTECT refused the project's delete).
    run = models.OneToOneField(TrainingRun, on_delete=models.RESTRICT, related_name="version")
    number = models.PositiveIntegerField()
    artifact_path = models.CharField(max_length=1000)
    metrics = models.JSONField(default=dict, blank=True)
    aggregation = models.JSONField(
        null=True, blank=True,
        help_text="multi objective: the rubric aggregation its overall reward follows; gated: the one that orients "
                  "the criteria its gate weighs (rubrics.derive.reward_aggregation of the rubric version pinned at "
                  "training, which it names); a later rubric change leaves it, and the model's scores, as they were.",
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.CANDIDATE)
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="model_version_number_unique"),
            models.UniqueConstraint(fields=["project"], condition=Q(state="active"), name="one_active_model_per_project"),
        ]

    def __str__(self) -> str:
        return f"{self.project} model v{self.number} ({self.state})"


class ScoringJob(BackgroundJob):
    """A scoring batch too large for one web request, scored by a worker in chunks
    (progress, cancel); its result is read back from the job's URL."""

    Status = JobStatus
    ACTIVE_STATES = (Status.QUEUED, Status.RUNNING)

    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="scoring_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="scoring_jobs")
    items = models.JSONField(default=list, help_text="[{'conversation': [...], 'responses': [...]}, ...]")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    result = models.JSONField(default=dict, blank=True, help_text="As the inline scoring API answers.")

    class Meta:
        ordering = ["-created_at", "-id"]
