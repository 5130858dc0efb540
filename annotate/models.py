"""Projects, the data being judged, and the labels (DESIGN §2).

Sign convention for ``Judgment.strength``: −3 (A much better) … 0 (tie) … +3 (B much
better), where A and B are the comparison's canonical responses (lower id first),
not the side they were shown on; ``shown_left`` records that separately. ``None``
means the label carries no strength (e.g. an imported chosen/rejected pair).
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

# The queue's tables (leases and the narrow slot tables) live apart; imported here so
# ``annotate.models`` stays the one place every model is imported from.
from .models_queue import Assignment, QueueSlot, RankingSlot, RatingSlot, TaskKind  # noqa: F401


class Role(models.TextChoices):
    RESEARCHER = "researcher"
    ANNOTATOR = "annotator"


class LabelSource(models.TextChoices):
    HUMAN = "human"
    IMPORTED = "imported"
    DERIVED = "derived"
    MODEL = "model"
    # A researcher's final answer on a reviewed comparison (quality's review queue);
    # never counted as an annotator's label in agreement or progress.
    ADJUDICATED = "adjudicated"


# Labels people gave, in the browser or before (imported): what training, agreement
# and every count of "labels" read. Derived and model labels never count as human.
HUMAN_SOURCES = (LabelSource.HUMAN, LabelSource.IMPORTED)


def _validate_task_kinds(value) -> None:
    if not isinstance(value, list) or not value:
        raise ValidationError("choose at least one task kind")
    unknown = [v for v in value if v not in TaskKind.values]
    if unknown:
        raise ValidationError(f"unknown task kinds: {', '.join(map(str, unknown))}")


def _default_task_kinds() -> list[str]:
    return [TaskKind.PAIRWISE.value]


def new_annotator_salt() -> str:
    return secrets.token_hex(16)


class ProjectQuerySet(models.QuerySet):
    def visible_to(self, user) -> "ProjectQuerySet":
        """Staff see every project; everyone else only projects they are members of."""
        if not user.is_authenticated:
            return self.none()
        if user.is_staff:
            return self
        return self.filter(memberships__user=user).distinct()

    def with_role(self, user, *roles: str) -> "ProjectQuerySet":
        if user.is_staff:
            return self
        return self.filter(memberships__user=user, memberships__role__in=roles).distinct()


class Project(models.Model):
    class Strategy(models.TextChoices):
        RANDOM = "random"
        COVERAGE = "coverage"
        UNCERTAINTY = "uncertainty"
        BALD = "bald"
        VARIANCE = "variance"
        # BALD plus the spread of labelled prompts in feature space (BAL-PM, Melo et al. 2024).
        BALPM = "balpm", "BAL-PM"
        # Pairs of response sources whose leaderboard intervals overlap most (Chatbot Arena style).
        ARENA = "arena"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    guidelines = models.TextField(blank=True, help_text="Markdown shown to annotators.")
    rubric_version = models.ForeignKey(
        "rubrics.RubricVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="projects"
    )
    task_kinds = models.JSONField(default=_default_task_kinds, validators=[_validate_task_kinds])
    overlap = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(50)], help_text="Labels wanted per task."
    )
    lease_ttl_seconds = models.PositiveIntegerField(default=900, validators=[MinValueValidator(30)])
    gold_rate = models.FloatField(default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    selection_strategy = models.CharField(max_length=16, choices=Strategy.choices, default=Strategy.COVERAGE)
    exploration_rate = models.FloatField(
        default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="ε: the share of pairwise tasks drawn uniformly from the open pool instead of by priority.",
    )
    max_tasks_per_annotator = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most tasks one annotator may submit in this project (empty: no cap)."
    )
    ranking_top_k = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Rank only the best k responses (empty: rank them all).",
    )
    pause_below_gold_accuracy = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Pause an annotator automatically when their accuracy on gold tasks falls below this share "
        "(once they have answered pause_after_gold of them); empty: never.",
    )
    pause_after_gold = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1)],
        help_text="Gold answers an annotator gives before their gold accuracy can pause them.",
    )
    show_others_labels = models.BooleanField(
        default=False, help_text="Let annotators see other annotators' labels (off: they never do)."
    )
    license = models.CharField(
        max_length=100, blank=True, help_text="Licence of exported datasets, e.g. cc-by-4.0 (empty: unspecified)."
    )
    # Keys the pseudonymous annotator ids of exports; never shown, so an id cannot be
    # traced back to a user by hashing guessed user ids.
    annotator_salt = models.CharField(max_length=64, default=new_annotator_salt, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    # A paused annotator is handed no task in this project and is told why. Set by a
    # researcher (paused_by) or by the project's gold threshold (paused_by empty).
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_reason = models.CharField(max_length=300, blank=True)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Tasks handed to this member that are live (leased or submitted): what the cap
    # counts. Kept by annotate.queue under this row's lock, which also serialises one
    # annotator's leases (one live lease per kind, never over the cap).
    served_count = models.PositiveIntegerField(default=0, db_default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} – {self.role} in {self.project}"


class Prompt(models.Model):
    # No index of its own: prompt_external_id_unique (project, external_id) serves it.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompts", db_index=False)
    external_id = models.CharField(max_length=255)
    conversation = models.JSONField(help_text='List of {"role", "content"} turns.')
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "external_id"], name="prompt_external_id_unique"),
        ]

    def __str__(self) -> str:
        last = self.conversation[-1]["content"] if self.conversation else ""
        return f"{self.external_id}: {last[:60]}"


class Response(models.Model):
    # No index of its own: response_external_id_unique (prompt, external_id) serves it.
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="responses", db_index=False)
    external_id = models.CharField(max_length=255)
    text = models.TextField()
    source = models.CharField(max_length=200, blank=True, help_text="Model or policy that wrote it.")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "external_id"], name="response_external_id_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.external_id} ({self.source or 'unknown'})"


class Comparison(models.Model):
    """A candidate pair, stored canonically: ``response_a_id < response_b_id``."""

    class Choice(models.TextChoices):
        A = "A"
        B = "B"
        TIE = "tie"
        BOTH_BAD = "both_bad"

        @staticmethod
        def flip(value: str) -> str:
            """The same answer with the responses' names swapped: A ↔ B; tie, both
            bad and a criterion's ``na`` say the same either way. The one place a
            label given in another order (shown left/right, an imported pair stored
            canonically, chosen/rejected) is turned round."""
            return "B" if value == "A" else "A" if value == "B" else value

    # project and response_a lead comparison_project_idx and comparison_pair_unique,
    # which serve their lookups: a million-row import maintains two indexes fewer.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="comparisons", db_index=False)
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="comparisons")
    response_a = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+", db_index=False)
    response_b = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    # Labels wanted beyond the project's overlap: a researcher asked for more on this
    # pair (quality's review queue); every recount of its QueueSlot adds them.
    # db_default: imports write comparisons with COPY, which names only the columns it fills.
    extra_labels = models.PositiveSmallIntegerField(default=0, db_default=0)
    is_gold = models.BooleanField(default=False)
    gold_choice = models.CharField(max_length=16, choices=Choice.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["response_a", "response_b"], name="comparison_pair_unique"),
            models.CheckConstraint(condition=Q(response_a__lt=models.F("response_b")), name="comparison_canonical"),
            models.CheckConstraint(condition=Q(is_gold=False) | ~Q(gold_choice=""), name="comparison_gold_has_answer"),
        ]
        indexes = [models.Index(fields=["project", "id"], name="comparison_project_idx")]

    def __str__(self) -> str:
        return f"#{self.pk}: {self.response_a_id} vs {self.response_b_id}"


# A label table's columns that only labels given in the browser or the API fill
# (rubric version, assignment, idempotency key, …) are indexed only where set:
# imported labels leave them empty, so a million-row import writes no entry into
# them, while lookups by a value (``= x``, ``IN (…)``, the deletion collector's)
# still use them.


def _where_set_indexes(prefix: str, *extra: str) -> list[models.Index]:
    return [
        models.Index(fields=[name], condition=Q(**{f"{name}__isnull": False}), name=f"{prefix}_{name}_idx")
        for name in ("rubric_version", "assignment", *extra)
    ]


def _idempotency_unique(prefix: str) -> models.UniqueConstraint:
    """The idempotency key is unique among the keys that are set."""
    return models.UniqueConstraint(
        fields=["idempotency_key"], condition=Q(idempotency_key__isnull=False), name=f"{prefix}_idempotency_unique"
    )


def _annotator(related_name: str) -> models.ForeignKey:
    return models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name=related_name)


def _rubric_version(related_name: str) -> models.ForeignKey:
    # Labels keep the version they were made under; a referenced version is frozen.
    return models.ForeignKey(
        "rubrics.RubricVersion", null=True, blank=True, on_delete=models.PROTECT, related_name=related_name,
        db_index=False,
    )


class Label(models.Model):
    """What every label carries, whatever it answers: who gave it, under which rubric
    version and lease, how (``source``), when, and how long it took. Judgment,
    Rating and Ranking add what they answer and their one-per-annotator rule, and
    declare ``annotator = _annotator(...)`` and ``rubric_version = _rubric_version(...)``
    with their own reverse names (a ``%(class)s`` name would read as a change to
    every migration since 0001)."""

    assignment = models.ForeignKey(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    rationale = models.TextField(blank=True)
    time_on_task_ms = models.PositiveIntegerField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=64, null=True, blank=True)
    source = models.CharField(max_length=16, choices=LabelSource.choices, default=LabelSource.HUMAN)
    import_job = models.ForeignKey("ImportJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Judgment(Label):
    """A pairwise label. One per (comparison, annotator): a retry updates, never duplicates."""

    Choice = Comparison.Choice

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="judgments", db_index=False)
    annotator = _annotator("judgments")
    rubric_version = _rubric_version("judgments")
    choice = models.CharField(max_length=16, choices=Choice.choices)
    strength = models.SmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(-3), MaxValueValidator(3)],
        help_text="−3 A much better … 0 tie … +3 B much better; empty when unknown.",
    )
    criteria = models.JSONField(default=dict, blank=True, help_text="{criterion_key: A|B|tie|na}")
    spans = models.JSONField(default=list, blank=True)
    flags = models.JSONField(default=list, blank=True)
    shown_left = models.ForeignKey(
        Response, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    derivation_rule = models.CharField(max_length=64, blank=True)
    metadata = models.JSONField(default=dict, blank=True, help_text="Provenance, e.g. imported confidence.")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["comparison", "annotator"], name="judgment_one_per_annotator"),
            _idempotency_unique("judgment"),
            models.CheckConstraint(
                condition=Q(strength__isnull=True)
                | (Q(choice="A") & Q(strength__gte=-3) & Q(strength__lt=0))
                | (Q(choice="B") & Q(strength__gt=0) & Q(strength__lte=3))
                | (Q(choice="tie") & Q(strength=0)),
                name="judgment_strength_matches_choice",
            ),
        ]
        indexes = _where_set_indexes("judgment", "shown_left")

    def __str__(self) -> str:
        return f"{self.annotator} on {self.comparison_id}: {self.choice}"


class Rating(Label):
    """An absolute label of one response against the rubric's criteria."""

    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="ratings", db_index=False)
    annotator = _annotator("ratings")
    rubric_version = _rubric_version("ratings")
    scores = models.JSONField(default=dict, help_text="{criterion_key: value or null for N/A}")
    spans = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["response", "annotator"], name="rating_one_per_annotator"),
            _idempotency_unique("rating"),
        ]
        indexes = _where_set_indexes("rating")


class Ranking(Label):
    """Ordered groups of response ids; ties share a group; unranked ids are left out."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="rankings", db_index=False)
    annotator = _annotator("rankings")
    rubric_version = _rubric_version("rankings")
    groups = models.JSONField(help_text="[[best ids], [next ids], …]")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "annotator"], name="ranking_one_per_annotator"),
            _idempotency_unique("ranking"),
        ]
        indexes = _where_set_indexes("ranking")


class AnnotatorCount(models.Model):
    """One annotator's tallies in one project and task kind, kept in the transaction
    that changes them (annotate.counters) so pages read them in constant time;
    ``counters_reconcile`` recomputes them from the raw rows.

    Every label of the annotator's counts in exactly one of ``labels``,
    ``imported``, ``gold``, ``derived``, ``adjudicated`` and ``model``: the first
    two are people's labels on non-gold units (what progress counts), the others
    only add up to the project page's totals. The system accounts that own
    derived and adjudicated labels have rows too."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=TaskKind.choices)
    labels = models.IntegerField(default=0)  # made here (source human), non-gold
    imported = models.IntegerField(default=0)  # non-gold
    # db_default: the tallies' raw upsert (annotate.counters) names the columns it adds to
    gold = models.IntegerField(default=0, db_default=0)  # people's labels (human, imported) on gold units
    derived = models.IntegerField(default=0, db_default=0)
    adjudicated = models.IntegerField(default=0, db_default=0)
    model = models.IntegerField(default=0, db_default=0)  # source model, and any source not named above
    # the gold score: this annotator's own answers (source human) on gold pairs, and
    # how many matched the expected answer (the progress page, the pause rule)
    gold_answered = models.IntegerField(default=0, db_default=0)
    gold_correct = models.IntegerField(default=0, db_default=0)
    skipped = models.IntegerField(default=0)
    expired = models.IntegerField(default=0)
    day = models.DateField(null=True)  # the local day ``today`` counts
    today = models.IntegerField(default=0)
    time_ms = models.BigIntegerField(default=0)  # summed time on task of the labels that report it
    timed = models.IntegerField(default=0)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "annotator", "kind"], name="annotatorcount_unique")]


class UnitCount(models.Model):
    """How many tasks of a kind a project holds (non-gold pairs, responses, prompts)
    and, for pairs, how many gold ones besides; written when units are created or
    leave the queue (generation, imports, gold marking) and by the reconcile."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    kind = models.CharField(max_length=16, choices=TaskKind.choices)
    units = models.IntegerField(default=0)
    gold = models.IntegerField(default=0, db_default=0)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "kind"], name="unitcount_unique")]


class JobStatus(models.TextChoices):
    """The life of a background job that is claimed, then runs to one end."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class BackgroundJob(models.Model):
    """What every row of long work run by a Celery worker carries (imports,
    exports, training runs): the cancel flag the worker polls, the heartbeat the
    sweeps read, and the timestamps. Subclasses define ``status`` and ``ACTIVE_STATES``."""

    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    celery_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATES

    def request_cancel(self) -> bool:
        """Cancel a queued job at once (no worker will claim it) or ask an active one
        to stop at its next check. Returns whether either applied."""
        model = type(self)
        if model.objects.filter(pk=self.pk, status=self.Status.QUEUED).update(
            status=self.Status.CANCELLED, cancel_requested=True, finished_at=timezone.now()
        ):
            return True
        return bool(model.objects.filter(pk=self.pk, status__in=self.ACTIVE_STATES).update(cancel_requested=True))

    def discard_files(self) -> None:
        """Remove what a job that ended without a result leaves on disk (nothing by
        default); called when it fails or is cancelled, whoever ends it."""

    @classmethod
    def sweep(cls, *, stale_after_seconds: int, error: str, on_stale: Callable[[BackgroundJob], None] | None = None) -> int:
        """Fail the jobs a worker claimed and then stopped heart-beating for (killed
        mid-run), calling ``on_stale(job)`` on each first (to remove partial files, say);
        returns how many were failed. A job that finished meanwhile is left as it is."""
        running = [state for state in cls.ACTIVE_STATES if state != cls.Status.QUEUED]
        cutoff = timezone.now() - timedelta(seconds=stale_after_seconds)
        stale = list(cls.objects.filter(status__in=running, heartbeat_at__lt=cutoff))
        if on_stale is not None:
            for job in stale:
                on_stale(job)
        return cls.objects.filter(pk__in=[job.pk for job in stale], status__in=running).update(
            status=cls.Status.FAILED, error=error, finished_at=timezone.now()
        )


class ImportJob(BackgroundJob):
    class Status(models.TextChoices):
        QUEUED = "queued"
        VALIDATING = "validating"
        WRITING = "writing"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE_STATES = (Status.QUEUED, Status.VALIDATING, Status.WRITING)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    format = models.CharField(max_length=32)
    file_path = models.CharField(max_length=1000)
    original_name = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    records_done = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    error_line = models.PositiveIntegerField(null=True, blank=True)
    error_field = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import #{self.pk} {self.format} → {self.project} ({self.status})"

    def discard_files(self) -> None:
        """The uploaded copy: it may be large (or hostile), and nothing will read it
        again; the job row keeps the error."""
        if self.file_path:
            Path(self.file_path).unlink(missing_ok=True)


class ExportJob(BackgroundJob):
    """One export: its options, the snapshot it was taken at, progress, and where
    the finished files are (``path``: the export folder with the data and README.md;
    ``file_path``: the file a download serves)."""

    Status = JobStatus
    ACTIVE_STATES = (Status.QUEUED, Status.RUNNING)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="export_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    format = models.CharField(max_length=32)
    file_format = models.CharField(max_length=16)
    options = models.JSONField(default=dict, blank=True, help_text="aggregate, min_agreement, criterion, margin, include_derived")
    snapshot_id = models.CharField(max_length=120)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    rows_written = models.PositiveBigIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    path = models.CharField(max_length=1000, blank=True)
    file_path = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"export #{self.pk} {self.format}/{self.file_format} of {self.project} ({self.status})"
