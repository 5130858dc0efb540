"""The queue's tables (DESIGN §2, issue #19): what kinds of task there are, the
leases handed out (``Assignment``), and each unit's volatile queue state in a
narrow table of its kind (``QueueSlot`` for comparisons, ``RatingSlot`` for
responses, ``RankingSlot`` for prompts). ``annotate.models`` imports them all;
``annotate.slots`` keeps the slot rows in step with the units.

Why narrow tables: a lease decrements its unit's counter, and on the wide unit
rows (six indexes, texts, JSON) no such update can be HOT, so every lease left a
dead row and new index entries behind. Here each table is narrow, has free room on
each page (fillfactor 70, set with tuned autovacuum in its migration on
PostgreSQL) and one index, the lease's, whose columns the lease never changes:
``open_slots`` is in no index, only ``is_open`` (generated from it) is, so only the
update that empties a slot or refills an empty one moves the row in or out of the
index; the others are HOT.

Each slot row's key is its unit's id, so the lease's one statement picks a slot,
claims it and joins the unit on the same id, whatever the kind (``annotate.queue``).
A unit without a slot row is not in the queue: gold comparisons have none.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class TaskKind(models.TextChoices):
    PAIRWISE = "pairwise"
    RATING = "rating"
    RANKING = "ranking"
    SPANS = "spans"


class Slot(models.Model):
    """What every queue row holds besides its unit: the project (the lease's index
    leads with it) and the open slots, overlap (+ extra labels) − submitted − live
    leases. The lease decrements it with a conditional UPDATE, so the row itself
    arbitrates races (see annotate.queue).

    ``project`` is a copy of the unit's project, for the lease's index, and no
    foreign key in the database: a slot goes when its unit goes (the unit key's
    cascade), and its unit cannot outlive the project. A constraint would cost a
    check per slot row an import writes, and one per project deleted with no index
    to serve it (the lease's index holds only open slots) (issue #19, 0014)."""

    project = models.ForeignKey("Project", on_delete=models.DO_NOTHING, related_name="+", db_index=False,
                                db_constraint=False)
    open_slots = models.IntegerField(default=0)
    is_open = models.GeneratedField(expression=Q(open_slots__gt=0), output_field=models.BooleanField(),
                                    db_persist=True)

    class Meta:
        abstract = True
        constraints = [models.CheckConstraint(condition=Q(open_slots__gte=0), name="%(class)s_open_slots_nonnegative")]


class QueueSlot(Slot):
    """A non-gold comparison's queue state, with the priority active learning writes."""

    comparison = models.OneToOneField("Comparison", on_delete=models.CASCADE, primary_key=True, related_name="slot")
    priority = models.FloatField(default=0.0, help_text="Higher is handed out first (written by active learning).")

    class Meta(Slot.Meta):
        indexes = [models.Index(fields=["project", "-priority", "comparison"], condition=Q(is_open=True),
                                name="queueslot_open_idx")]


class RatingSlot(Slot):
    """A response's queue state as a rating task. ``prompt`` (never changed) orders
    the queue so a prompt's responses are handed out together.

    ``prompt`` is the response's prompt, copied, and, like ``project``, no foreign
    key in the database: the row goes with its response, which goes with its prompt.
    As a constraint, deleting n prompts ran n checks, each a scan of this whole
    table (no index leads with prompt): minutes for a large project (issue #19, 0014)."""

    response = models.OneToOneField("Response", on_delete=models.CASCADE, primary_key=True,
                                    related_name="rating_slot")
    prompt = models.ForeignKey("Prompt", on_delete=models.DO_NOTHING, related_name="+", db_index=False,
                               db_constraint=False)

    class Meta(Slot.Meta):
        indexes = [models.Index(fields=["project", "prompt", "response"], condition=Q(is_open=True),
                                name="ratingslot_open_idx")]


class RankingSlot(Slot):
    """A prompt's queue state as a ranking task."""

    prompt = models.OneToOneField("Prompt", on_delete=models.CASCADE, primary_key=True, related_name="ranking_slot")

    class Meta(Slot.Meta):
        indexes = [models.Index(fields=["project", "prompt"], condition=Q(is_open=True), name="rankingslot_open_idx")]


class Assignment(models.Model):
    """A lease of one task to one annotator; expires back into the queue."""

    class State(models.TextChoices):
        ACTIVE = "active"
        SUBMITTED = "submitted"
        SKIPPED = "skipped"
        EXPIRED = "expired"

    project = models.ForeignKey("Project", on_delete=models.CASCADE, related_name="assignments")
    kind = models.CharField(max_length=16, choices=TaskKind.choices, default=TaskKind.PAIRWISE)
    comparison = models.ForeignKey("Comparison", null=True, blank=True, on_delete=models.CASCADE, related_name="assignments")
    response = models.ForeignKey("Response", null=True, blank=True, on_delete=models.CASCADE, related_name="assignments")
    prompt = models.ForeignKey("Prompt", null=True, blank=True, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    rubric_version = models.ForeignKey("rubrics.RubricVersion", null=True, blank=True, on_delete=models.PROTECT)
    shown_left = models.ForeignKey("Response", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When it was submitted or skipped.")
    strategy = models.CharField(max_length=16, blank=True)
    selection_probability = models.FloatField(null=True, blank=True)
    skip_reason = models.TextField(blank=True)

    LIVE_STATES = (State.ACTIVE, State.SUBMITTED)

    class Meta:
        constraints = [
            # a task is never live twice for the same annotator (two tabs, a retried lease)
            models.UniqueConstraint(
                fields=["comparison", "annotator"], condition=Q(state__in=["active", "submitted"], comparison__isnull=False),
                name="assignment_live_comparison_once",
            ),
            models.UniqueConstraint(
                fields=["kind", "response", "annotator"], condition=Q(state__in=["active", "submitted"], response__isnull=False),
                name="assignment_live_response_once",
            ),
            models.UniqueConstraint(
                fields=["kind", "prompt", "annotator"],
                condition=Q(state__in=["active", "submitted"], kind="ranking", prompt__isnull=False),
                name="assignment_live_prompt_once",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "expires_at"], name="assignment_state_expiry"),
            models.Index(fields=["comparison", "state"], name="assignment_comparison_state"),
            models.Index(fields=["annotator", "state"], name="assignment_annotator_state"),
        ]
