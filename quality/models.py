"""Stored quality reports: the dashboard reads the last one, a worker makes the
next (DESIGN §6: pages never recount every label on a request)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotate.models import BackgroundJob, JobStatus, Project


class QualityJob(BackgroundJob):
    """A quality job of one project, queued by a researcher (or the beat) and made
    by a worker, with a fraction done."""

    Status = JobStatus
    ACTIVE_STATES = (Status.QUEUED, Status.RUNNING)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]


class QualityReport(QualityJob):
    """Agreement, agreement by week, the label mix and the annotator table, as of
    when a worker made it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="quality_reports")
    result = models.JSONField(default=dict, blank=True, help_text="agreement, agreement by week, label mix, annotators")

    def __str__(self) -> str:
        return f"quality report {self.pk} of {self.project} ({self.status})"


class NoiseAudit(QualityJob):
    """The active reward-model ensemble's view of every labelled pair (Secrets of
    RLHF part II): per comparison, the mean μ and spread σ over the ensemble's
    members of d = r(A) − r(B). Made after each promotion and on demand."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="noise_audits")
    model_version = models.ForeignKey("models_svc.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    summary = models.JSONField(default=dict, blank=True, help_text="counts, thresholds and the histogram of μ")


class PairScore(models.Model):
    """One audited comparison: μ and σ of r(A) − r(B) over the ensemble, in the
    comparison's canonical order (a label for B reads −μ)."""

    audit = models.ForeignKey(NoiseAudit, on_delete=models.CASCADE, related_name="pairs")
    comparison = models.ForeignKey("annotate.Comparison", on_delete=models.CASCADE, related_name="+")
    mu = models.FloatField()
    sigma = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["audit", "comparison"], name="pair_score_once_per_audit")]


class ReviewItem(models.Model):
    """A comparison a researcher should look at, with why and how strongly: the
    noise audit's flags, low agreement, annotators' flags. Ordered by evidence."""

    class Status(models.TextChoices):
        OPEN = "open"
        ADJUDICATED = "adjudicated"
        MORE_LABELS = "more_labels"
        AMBIGUOUS = "ambiguous"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="review_items")
    comparison = models.OneToOneField("annotate.Comparison", on_delete=models.CASCADE, related_name="review_item")
    reasons = models.JSONField(default=list, blank=True,
                               help_text="likely_flipped, ambiguous_pair, low_agreement, annotator_flag")
    evidence = models.FloatField(default=0.0, help_text="Higher first in the queue.")
    mu = models.FloatField(null=True, blank=True)
    sigma = models.FloatField(null=True, blank=True)
    agreement = models.FloatField(null=True, blank=True, help_text="Share of labels giving the most common answer.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-evidence", "id"]
        indexes = [models.Index(fields=["project", "status", "-evidence"], name="review_queue_idx")]
