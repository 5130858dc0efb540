from django.contrib import admin
from django.db import transaction

from . import counters, slots
from .models import (
    Assignment, Comparison, ImportJob, Judgment, Membership, Project, Prompt, Ranking, Rating, Response, TaskKind,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "overlap", "selection_strategy", "rubric_version", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


class RecountingAdmin(admin.ModelAdmin):
    """Rows whose deletion here moves a project's figures: the project's tallies
    are recounted after it (annotate.counters), as every other writer keeps them."""

    @staticmethod
    def project_of(obj) -> Project:
        raise NotImplementedError

    @transaction.atomic
    def delete_model(self, request, obj):
        project = self.project_of(obj)
        super().delete_model(request, obj)
        counters.counters_reconcile(project=project)

    @transaction.atomic
    def delete_queryset(self, request, queryset):
        projects = {p.pk: p for p in map(self.project_of, queryset)}
        super().delete_queryset(request, queryset)
        for project in projects.values():
            counters.counters_reconcile(project=project)


class QueueUnitAdmin(RecountingAdmin):
    """Prompts, responses and comparisons are the queue's units: saving one here
    puts it into the queue or takes it out (a comparison marked gold leaves it)
    through the same service as every other path, and deleting ones recounts the
    project's figures (deleting a unit deletes its slot row and leases with it).
    What ties a unit to its project and its pair cannot change once it exists."""

    kind: str
    structure: list[str] = []

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), *(self.structure if obj is not None else [])]

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        slots.queue_slots_rebuild(project=self.project_of(obj), kinds=[self.kind], unit_ids=[obj.pk])


@admin.register(Prompt)
class PromptAdmin(QueueUnitAdmin):
    kind = TaskKind.RANKING
    structure = ["project"]

    list_display = ["external_id", "project", "created_at"]
    list_filter = ["project"]
    search_fields = ["external_id"]

    @staticmethod
    def project_of(obj) -> Project:
        return obj.project


@admin.register(Response)
class ResponseAdmin(QueueUnitAdmin):
    kind = TaskKind.RATING
    structure = ["prompt"]
    list_display = ["external_id", "prompt", "source"]
    search_fields = ["external_id", "source"]
    raw_id_fields = ["prompt"]

    @staticmethod
    def project_of(obj) -> Project:
        return obj.prompt.project


@admin.register(Comparison)
class ComparisonAdmin(QueueUnitAdmin):
    kind = TaskKind.PAIRWISE
    structure = ["project", "prompt", "response_a", "response_b"]
    list_display = ["id", "project", "prompt", "response_a", "response_b", "is_gold"]
    list_filter = ["project", "is_gold"]
    raw_id_fields = ["prompt", "response_a", "response_b"]

    @staticmethod
    def project_of(obj) -> Project:
        return obj.project

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        before = Comparison.objects.filter(pk=obj.pk).values_list("is_gold", "gold_choice").first() if change else None
        super().save_model(request, obj, form, change)
        if before is not None and before != (obj.is_gold, obj.gold_choice):
            # its people's labels now count as gold answers, or stop to, or are scored
            # against another answer: the tallies keep both, so recount the
            # project's (rare, and exact)
            counters.counters_reconcile(project=obj.project)


class LabelAdmin(RecountingAdmin):
    """Labels edited or deleted here: the project's tallies are recounted after the
    change (who labelled, the source, a gold answer's choice all move figures)."""

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        counters.counters_reconcile(project=self.project_of(obj))


@admin.register(Judgment)
class JudgmentAdmin(LabelAdmin):
    list_display = ["id", "comparison", "annotator", "choice", "strength", "source", "created_at"]
    list_filter = ["source", "choice"]
    raw_id_fields = ["comparison", "annotator", "assignment", "shown_left", "import_job"]

    @staticmethod
    def project_of(obj) -> Project:
        return obj.comparison.project


@admin.register(Rating)
class RatingAdmin(LabelAdmin):
    list_display = ["id", "response", "annotator", "rubric_version", "source"]
    raw_id_fields = ["response", "annotator", "assignment", "import_job"]

    @staticmethod
    def project_of(obj) -> Project:
        return obj.response.prompt.project


@admin.register(Ranking)
class RankingAdmin(LabelAdmin):
    list_display = ["id", "prompt", "annotator", "source"]
    raw_id_fields = ["prompt", "annotator", "assignment", "import_job"]

    @staticmethod
    def project_of(obj) -> Project:
        return obj.prompt.project


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "kind", "annotator", "state", "expires_at"]
    list_filter = ["state", "kind"]
    raw_id_fields = ["comparison", "response", "prompt", "annotator", "shown_left"]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "format", "status", "records_done", "created_at", "finished_at"]
    list_filter = ["status", "format"]
    readonly_fields = ["counts", "error", "error_line", "error_field"]
