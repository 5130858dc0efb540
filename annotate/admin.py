from django.contrib import admin

from .models import Assignment, Comparison, ImportJob, Judgment, Membership, Project, Prompt, Ranking, Rating, Response


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


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["external_id", "project", "created_at"]
    list_filter = ["project"]
    search_fields = ["external_id"]


@admin.register(Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = ["external_id", "prompt", "source"]
    search_fields = ["external_id", "source"]
    raw_id_fields = ["prompt"]


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "prompt", "response_a", "response_b", "is_gold"]
    list_filter = ["project", "is_gold"]
    raw_id_fields = ["prompt", "response_a", "response_b"]


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = ["id", "comparison", "annotator", "choice", "strength", "source", "created_at"]
    list_filter = ["source", "choice"]
    raw_id_fields = ["comparison", "annotator", "assignment", "shown_left", "import_job"]


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    list_display = ["id", "response", "annotator", "rubric_version", "source"]
    raw_id_fields = ["response", "annotator", "assignment", "import_job"]


@admin.register(Ranking)
class RankingAdmin(admin.ModelAdmin):
    list_display = ["id", "prompt", "annotator", "source"]
    raw_id_fields = ["prompt", "annotator", "assignment", "import_job"]


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
