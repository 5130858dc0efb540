from django.contrib import admin

from .models import Criterion, Rubric, RubricVersion


class CriterionInline(admin.StackedInline):
    model = Criterion
    extra = 0


@admin.register(Rubric)
class RubricAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]


@admin.register(RubricVersion)
class RubricVersionAdmin(admin.ModelAdmin):
    list_display = ["rubric", "number", "status", "published_at"]
    list_filter = ["status"]
    inlines = [CriterionInline]

    def has_change_permission(self, request, obj=None):
        # Published versions are frozen; edits go through a new draft (rubrics.services).
        if obj is not None and obj.status != RubricVersion.Status.DRAFT:
            return False
        return super().has_change_permission(request, obj)
