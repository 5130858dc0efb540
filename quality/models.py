"""Stored quality reports: the dashboard reads the last one, a worker makes the
next (DESIGN §6: pages never recount every label on a request)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotate.models import BackgroundJob, Project


class QualityReport(BackgroundJob):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE_STATES = (Status.QUEUED, Status.RUNNING)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="quality_reports")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    result = models.JSONField(default=dict, blank=True, help_text="agreement, agreement by week, label mix, annotators")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"quality report {self.pk} of {self.project} ({self.status})"
