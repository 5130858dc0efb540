"""The quality dashboard (researchers): the last stored report, a button that
queues the next, and pausing or resuming annotators. Access helper first, one
service call, then a redirect or a partial (DESIGN §10)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotate import services as annotate_services
from annotate.access import get_project_for
from annotate.models import Membership, Role

from . import reports
from .services import STATISTIC_HELP


def _context(project) -> dict:
    done, active = reports.latest_reports(project=project)
    result = done.result if done else {}
    # Paused or not is read live: a pause must show at once, not at the next report.
    live = {m.user_id: m for m in Membership.objects.filter(project=project).select_related("paused_by")}
    for row in result.get("annotators", []):
        m = live.get(row["annotator_id"])
        row["member"] = m is not None
        row["paused"] = bool(m and m.paused_at)
        row["paused_reason"] = m.paused_reason if m else ""
    return {"project": project, "report": done, "active": active, "result": result, "help": STATISTIC_HELP}


@login_required
@require_GET
def dashboard(request, slug: str):
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    return render(request, "quality/dashboard.html", _context(project))


@login_required
@require_GET
def report_status(request, slug: str):
    """The status line, polled by htmx while a report is being made; tells the page
    to reload once it is done."""
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    ctx = _context(project)
    response = render(request, "quality/partials/status.html", ctx)
    if ctx["active"] is None and request.GET.get("waiting"):
        response["HX-Refresh"] = "true"
    return response


@login_required
@require_POST
def report_refresh(request, slug: str):
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    report = reports.quality_report_enqueue(project=project, created_by=request.user)
    messages.info(request, f"Quality report #{report.pk} is being made by a worker; this page updates when it is done.")
    return redirect("quality-dashboard", slug=project.slug)


@login_required
@require_POST
def annotator_pause(request, slug: str, user_id: int):
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    member = get_object_or_404(Membership, project=project, user_id=user_id)
    reason = (request.POST.get("reason") or "").strip() or "a researcher paused you"
    annotate_services.membership_pause(project=project, user=member.user, reason=reason, by=request.user)
    messages.info(request, f"{member.user.username} is paused: they get no tasks until you resume them.")
    return redirect("quality-dashboard", slug=project.slug)


@login_required
@require_POST
def annotator_resume(request, slug: str, user_id: int):
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    member = get_object_or_404(Membership, project=project, user_id=user_id)
    annotate_services.membership_resume(project=project, user=member.user)
    messages.info(request, f"{member.user.username} can take tasks again.")
    return redirect("quality-dashboard", slug=project.slug)
