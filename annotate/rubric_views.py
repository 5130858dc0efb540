"""Project pages about the project's rubric: pin a published version (from the
project page or the rubric page) and derive pairwise labels from ratings. They
write the project, so they live in annotate, above rubrics."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from rubrics import derive
from rubrics.access import get_version_for
from rubrics.models import RubricVersion

from . import derived, services
from .access import get_project_for
from .models import Role


def _pin(request, project, version) -> None:
    try:
        services.project_pin_rubric(project=project, version=version)
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{project.name} now uses {version.rubric.name} v{version.number}; "
                                  "labels already made keep their own version.")


@login_required
@require_POST
def project_pin(request, slug: str):
    """From the project page: choose one of the published versions."""
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    version = get_object_or_404(RubricVersion, pk=request.POST.get("version") or 0,
                                status=RubricVersion.Status.PUBLISHED)
    _pin(request, project, version)
    return redirect("project-detail", slug=project.slug)


@login_required
@require_POST
def version_pin(request, slug: str, number: int):
    """From the rubric page: choose one of the projects the user runs."""
    version = get_version_for(request.user, slug, number)
    project, _ = get_project_for(request.user, request.POST.get("project", ""), role=Role.RESEARCHER)
    _pin(request, project, version)
    return redirect(version.get_absolute_url())


@login_required
@require_http_methods(["GET", "POST"])
def project_derived(request, slug: str):
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    rule = request.POST.get("rule") or request.GET.get("rule") or (
        project.rubric_version.aggregation if project.rubric_version else "hierarchical")
    if rule not in derive.RULES:
        raise Http404("No such rule.")
    if request.method == "POST":
        try:
            derived.derived_judgments_enqueue(project=project, rule=rule)
        except ValueError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Deriving pairwise labels by {rule} in the background; "
                                      "reload in a moment to see them.")
        return redirect(reverse("project-derived", args=[slug]) + f"?rule={rule}")
    return render(request, "rubrics/derived.html", {
        "project": project, "rule": rule, "rules": derive.RULES, "report": derived.derivation_report(project=project, rule=rule),
    })
