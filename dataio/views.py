"""Import and export pages: access helper first, one service call, then a redirect
or a partial. The project page (annotate) links here and shows the import jobs."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotate.access import get_project_for
from annotate.models import ExportJob, ImportJob, Project

from .exports import services as exports
from .forms import FORMAT_HELP, ExportForm, ImportForm
from .imports import services as imports


@login_required
@require_GET
def import_jobs_partial(request, slug: str):
    project, role = get_project_for(request.user, slug, role="researcher")
    jobs = project.import_jobs.all()[:20]
    return render(
        request,
        "dataio/partials/import_jobs.html",
        {"project": project, "jobs": jobs, "any_active": any(j.is_active for j in jobs)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def import_upload(request, slug: str):
    project, role = get_project_for(request.user, slug, role="researcher")
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = imports.import_job_store_upload(
                project=project, format=form.cleaned_data["format"], upload=form.cleaned_data["file"], created_by=request.user
            )
        except ValueError as exc:
            form.add_error("file", str(exc))
        else:
            imports.import_job_enqueue(job=job)
            messages.info(request, f"Import #{job.pk} queued: progress is shown below.")
            return redirect("project-detail", slug=project.slug)
    return render(request, "dataio/import_upload.html", {"project": project, "form": form, "formats": FORMAT_HELP})


@login_required
@require_POST
def import_cancel(request, slug: str, job_id: int):
    project, role = get_project_for(request.user, slug, role="researcher")
    job = get_object_or_404(ImportJob, pk=job_id, project=project)
    if imports.import_job_cancel(job=job):
        messages.info(request, f"Import #{job.pk}: cancel requested.")
    return redirect("project-detail", slug=project.slug)


# --- exports ----------------------------------------------------------------------------


def _export_jobs(project: Project) -> dict:
    jobs = list(project.export_jobs.all()[:20])
    return {"project": project, "jobs": jobs, "any_active": any(j.is_active for j in jobs)}


@login_required
@require_http_methods(["GET", "POST"])
def exports_page(request, slug: str):
    project, _ = get_project_for(request.user, slug, role="researcher")
    form = ExportForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        job = exports.export_job_create(project=project, spec=form.cleaned_data["spec"], created_by=request.user)
        exports.export_job_enqueue(job=job)
        messages.info(request, f"Export #{job.pk} queued at snapshot {job.snapshot_id}: progress is shown below.")
        return redirect("exports", slug=project.slug)
    return render(request, "dataio/exports.html", {"form": form, **_export_jobs(project)})


@login_required
@require_GET
def export_jobs_partial(request, slug: str):
    project, _ = get_project_for(request.user, slug, role="researcher")
    return render(request, "dataio/partials/export_jobs.html", _export_jobs(project))


@login_required
@require_GET
def export_detail(request, slug: str, job_id: int):
    """A finished export's card rendered as markdown (sanitised by the template's
    filter, like every user-written text), with links to download it and the data."""
    project, _ = get_project_for(request.user, slug, role="researcher")
    job = get_object_or_404(ExportJob, pk=job_id, project=project)
    card = exports.export_job_card(job=job)
    return render(request, "dataio/export_detail.html", {"project": project, "job": job, "card": card})


@login_required
@require_POST
def export_cancel(request, slug: str, job_id: int):
    project, _ = get_project_for(request.user, slug, role="researcher")
    job = get_object_or_404(ExportJob, pk=job_id, project=project)
    if exports.export_job_cancel(job=job):
        messages.info(request, f"Export #{job.pk}: cancel requested.")
    return redirect("exports", slug=project.slug)


@login_required
@require_GET
def export_file(request, slug: str, job_id: int, which: str):
    project, _ = get_project_for(request.user, slug, role="researcher")
    job = get_object_or_404(ExportJob, pk=job_id, project=project)
    try:
        path, name = exports.export_job_file(job=job, which=which)
    except FileNotFoundError:
        raise Http404("This export has no such file.") from None
    if which == "card":  # shown in the browser as plain text, never rendered as HTML
        return FileResponse(open(path, "rb"), content_type="text/plain; charset=utf-8", filename=name)
    return FileResponse(open(path, "rb"), as_attachment=True, filename=name)
