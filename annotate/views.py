"""Pages: access helper first, one service call, then a redirect or a partial."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.db.models import Count, Q
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import services
from .access import can_manage, get_project_for
from .forms import FORMAT_HELP, ImportForm
from .models import Comparison, ImportJob, Judgment, Project, Prompt, Response


@require_GET
def healthz(request):
    """200 when the database answers; 503 with the reason otherwise."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any database failure means "not ready"
        return JsonResponse({"status": "unavailable", "database": str(exc)[:200]}, status=503)
    return JsonResponse({"status": "ok", "database": connection.vendor})


@login_required
@require_GET
def home(request):
    projects = (
        Project.objects.visible_to(request.user)
        .annotate(
            n_prompts=Count("prompts", distinct=True),
            n_comparisons=Count("comparisons", distinct=True),
        )
        .order_by("name")
    )
    return render(request, "annotate/home.html", {"projects": projects})


def _project_stats(project: Project) -> dict[str, int]:
    return {
        "prompts": Prompt.objects.filter(project=project).count(),
        "responses": Response.objects.filter(prompt__project=project).count(),
        "comparisons": Comparison.objects.filter(project=project).count(),
        "judgments": Judgment.objects.filter(comparison__project=project).count(),
    }


@login_required
@require_GET
def project_detail(request, slug: str):
    project, role = get_project_for(request.user, slug)
    ctx = {"project": project, "role": role, "can_manage": can_manage(role)}
    if ctx["can_manage"]:
        ctx["stats"] = _project_stats(project)
        ctx["jobs"] = project.import_jobs.all()[:20]
        ctx["any_active"] = any(j.is_active for j in ctx["jobs"])
    else:
        ctx["my_judgments"] = Judgment.objects.filter(comparison__project=project, annotator=request.user).count()
    return render(request, "annotate/project_detail.html", ctx)


@login_required
@require_GET
def import_jobs_partial(request, slug: str):
    project, role = get_project_for(request.user, slug, role="researcher")
    jobs = project.import_jobs.all()[:20]
    return render(
        request,
        "annotate/partials/import_jobs.html",
        {"project": project, "jobs": jobs, "any_active": any(j.is_active for j in jobs)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def import_upload(request, slug: str):
    project, role = get_project_for(request.user, slug, role="researcher")
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.import_job_store_upload(
                project=project, format=form.cleaned_data["format"], upload=form.cleaned_data["file"], created_by=request.user
            )
        except ValueError as exc:
            form.add_error("file", str(exc))
        else:
            services.import_job_enqueue(job=job)
            messages.info(request, f"Import #{job.pk} queued: progress is shown below.")
            return redirect("project-detail", slug=project.slug)
    return render(request, "annotate/import_upload.html", {"project": project, "form": form, "formats": FORMAT_HELP})


@login_required
@require_POST
def import_cancel(request, slug: str, job_id: int):
    project, role = get_project_for(request.user, slug, role="researcher")
    job = get_object_or_404(ImportJob, pk=job_id, project=project)
    if services.import_job_cancel(job=job):
        messages.info(request, f"Import #{job.pk}: cancel requested.")
    return redirect("project-detail", slug=project.slug)
