"""Pages: access helper first, one service call, then a redirect or a partial."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseNotModified
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from . import counters, forms, presenters, queue, stats, submit
from .access import can_create_project, can_manage, get_assignment_for, get_project_for
from .presenters import PREFERENCE_SCALE, task_payload
from .models import Project
from rubrics.models import RubricVersion


@login_required
@require_GET
def home(request):
    projects = list(Project.objects.visible_to(request.user).order_by("name"))
    rows = [
        {"project": p, "progress": queue.annotator_progress(project=p, annotator=request.user),
         "kinds": [k for k in p.task_kinds if k in queue.QUEUE_KINDS]}
        for p in projects
    ]
    return render(request, "annotate/home.html", {"rows": rows, "can_create": can_create_project(request.user)})


@login_required
@require_GET
def project_detail(request, slug: str):
    project, role = get_project_for(request.user, slug)
    ctx = {"project": project, "role": role, "can_manage": can_manage(role)}
    if ctx["can_manage"]:
        # rubrics' label_counts' figures, as on the rubric page, read from the maintained tallies
        ctx["stats"] = counters.project_figures(project=project)
        ctx["jobs"] = project.import_jobs.all()[:20]
        ctx["any_active"] = any(j.is_active for j in ctx["jobs"])
        ctx["published_versions"] = RubricVersion.objects.filter(
            status=RubricVersion.Status.PUBLISHED).select_related("rubric").order_by("rubric__name", "-number")
    else:
        # The home page's "done in total" for this project, by kind: the same tallies.
        ctx["mine"] = queue.annotator_progress(project=project, annotator=request.user)
    return render(request, "annotate/project_detail.html", ctx)


# --- annotation ----------------------------------------------------------------------


def _task_context(request, project: Project, kind: str, assignment=None, **extra) -> dict:
    paused = None
    if assignment is None:
        try:
            assignment = queue.assignment_lease(project=project, annotator=request.user, kind=kind)
        except queue.TaskError as exc:
            if exc.code != "paused":
                raise Http404("This project has no such tasks.") from None
            paused = exc.errors["reason"]
    return {
        "paused": paused,
        "project": project,
        "kind": kind,
        "assignment": assignment,
        "task": task_payload(assignment, project) if assignment else None,
        # one key per rendering of the form: a double click or a retried POST repeats it
        "idempotency_key": uuid.uuid4().hex,
        "progress": queue.annotator_progress(project=project, annotator=request.user),
        "flags": submit.FLAGS,
        "scale": PREFERENCE_SCALE,
        "errors": {},
        "values": {},
        **extra,
    }


@login_required
@require_GET
def work(request, slug: str, kind: str):
    project, _ = get_project_for(request.user, slug)
    return render(request, "annotate/work.html", _task_context(request, project, kind))


@login_required
@require_POST
def task_submit(request, slug: str, assignment_id: int):
    project, _ = get_project_for(request.user, slug)
    assignment = get_assignment_for(request.user, assignment_id, project=project)
    ctx_extra = {}
    try:
        forms.task_submit_from_post(assignment=assignment, user=request.user, data=request.POST)
    except queue.TaskError as exc:
        if exc.code in ("invalid",):
            # same task again, with the answers kept and the problems named
            ctx = _task_context(request, project, assignment.kind, assignment, errors=exc.errors,
                                values=request.POST, notice=str(exc))
            return _task_response(request, ctx)
        ctx_extra["notice"] = str(exc)
    ctx = _task_context(request, project, assignment.kind, **ctx_extra)
    return _task_response(request, ctx)


@login_required
@require_POST
def task_skip(request, slug: str, assignment_id: int):
    project, _ = get_project_for(request.user, slug)
    assignment = get_assignment_for(request.user, assignment_id, project=project)
    try:
        submit.assignment_skip(assignment=assignment, user=request.user, reason=request.POST.get("reason", ""))
    except queue.TaskError as exc:
        ctx = _task_context(request, project, assignment.kind, assignment, errors={"reason": str(exc)},
                            values=request.POST, notice=str(exc))
        return _task_response(request, ctx)
    return _task_response(request, _task_context(request, project, assignment.kind, notice="Skipped."))


def _task_response(request, ctx):
    if request.htmx:
        return render(request, "annotate/partials/task.html", ctx)
    if ctx.get("notice"):
        messages.info(request, ctx["notice"])
    return render(request, "annotate/work.html", ctx)


@login_required
@require_GET
def progress(request, slug: str):
    project, _ = get_project_for(request.user, slug, role="researcher")
    ctx = {"project": project, **stats.project_progress(project=project)}
    if not request.htmx:
        return render(request, "annotate/progress.html", ctx)
    # the 5 s poll: 304 while the figures are the ones the page already shows
    etag = stats.progress_etag(ctx)
    if etag in request.headers.get("If-None-Match", ""):
        response = HttpResponseNotModified()
    else:
        response = render(request, "annotate/partials/progress.html", ctx)
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    return response


@login_required
@require_GET
def my_labels(request, slug: str):
    """The annotator's own recent labels of every kind, spans shown back on the text; nobody else's."""
    project, _ = get_project_for(request.user, slug)
    return render(request, "annotate/my_labels.html",
                  {"project": project, **presenters.my_labels(project=project, annotator=request.user)})
