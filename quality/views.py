"""The quality dashboard (researchers): the last stored report, a button that
queues the next, and pausing or resuming annotators; the review queue and its
items (``quality.review``). Access helper first, one service call, then a
redirect or a partial (DESIGN §10)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotate import services as annotate_services
from annotate.access import get_project_for
from annotate.models import Membership, Role
from models_svc import plots

from . import audit, reports, review
from .models import NoiseAudit, ReviewItem
from .services import STATISTIC_HELP

REVIEW_PAGE_SIZE = 50


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
    audits = NoiseAudit.objects.filter(project=project).select_related("model_version")
    latest = audit.latest_audit(project=project)
    return {"project": project, "report": done, "active": active, "result": result, "help": STATISTIC_HELP,
            "review_open": review.open_count(project=project), "audit": latest,
            "report_charts": _report_charts(result), "audit_charts": _audit_charts(latest),
            "audit_active": audits.filter(status__in=NoiseAudit.ACTIVE_STATES).first(),
            "audit_failed": audits.filter(status=NoiseAudit.Status.FAILED).first()}


def _report_charts(result: dict) -> list[dict]:
    if not result:
        return []
    weeks = result.get("agreement_by_week", [])
    curves = [{"stage": name, "step": i, "value": w[key]} for i, w in enumerate(weeks)
              for name, key in (("raw agreement", "raw_agreement"), ("Krippendorff's α", "krippendorff_alpha_nominal"))]
    mix = result.get("label_mix") or {}
    strengths = mix.get("strengths", [])
    return [
        plots.line_chart(curves, "value", "agreement by week (overall choice)", x_label="week", y_range=(0.0, 1.0),
                         x_ticks=[w["week"] for w in weeks]),
        plots.category_chart(
            [f"{s['strength']:+d}" if s["strength"] else "0" for s in strengths] + ["bad", "skip"],
            [s["labels"] for s in strengths] + [mix.get("choices", {}).get("both_bad", 0), mix.get("skips", 0)],
            "label mix: strength (−3 A much better … +3 B much better), both bad, skipped tasks"),
    ]


def _audit_charts(latest) -> list[dict]:
    if latest is None:
        return []
    hist = latest.summary.get("mu_histogram") or {}
    return [plots.bar_chart(hist.get("counts", []), hist.get("edges", []),
                            "μ of r(A) − r(B) over the ensemble, per labelled comparison")]


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


def _member_for(user, slug: str, user_id: int):
    """The project (``user`` researches it) and one of its members, or 404."""
    project, _ = get_project_for(user, slug, role=Role.RESEARCHER)
    return project, get_object_or_404(Membership.objects.select_related("user"), project=project, user_id=user_id)


@login_required
@require_POST
def annotator_pause(request, slug: str, user_id: int):
    project, member = _member_for(request.user, slug, user_id)
    reason = (request.POST.get("reason") or "").strip() or "a researcher paused you"
    annotate_services.membership_pause(project=project, user=member.user, reason=reason, by=request.user)
    messages.info(request, f"{member.user.username} is paused: they get no tasks until you resume them.")
    return redirect("quality-dashboard", slug=project.slug)


@login_required
@require_POST
def annotator_resume(request, slug: str, user_id: int):
    project, member = _member_for(request.user, slug, user_id)
    annotate_services.membership_resume(project=project, user=member.user)
    messages.info(request, f"{member.user.username} can take tasks again.")
    return redirect("quality-dashboard", slug=project.slug)


@login_required
@require_POST
def audit_run(request, slug: str):
    """Audit the labels with the active model now (it also runs after each promotion)."""
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    try:
        job = audit.noise_audit_enqueue(project=project, created_by=request.user)
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"Noise audit #{job.pk} is being made by a worker with model v{job.model_version.number}.")
    return redirect("quality-dashboard", slug=project.slug)


# --- the review queue ------------------------------------------------------------------


@login_required
@require_GET
def review_queue(request, slug: str):
    """Items of one status (open by default), highest evidence first."""
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    status = request.GET.get("status", ReviewItem.Status.OPEN)
    if status not in ReviewItem.Status.values:
        status = ReviewItem.Status.OPEN
    items = (ReviewItem.objects.filter(project=project, status=status)
             .select_related("comparison__prompt", "decided_by").order_by("-evidence", "id"))
    page = Paginator(items, REVIEW_PAGE_SIZE).get_page(request.GET.get("page"))
    counts = review.status_counts(project=project)
    return render(request, "quality/review_queue.html", {
        "project": project, "status": status, "status_label": ReviewItem.Status(status).label, "page": page,
        "counts": counts, "statuses": [(value, label, counts[value]) for value, label in ReviewItem.Status.choices],
        "reason_help": review.REASON_HELP,
    })


@login_required
@require_POST
def review_refresh(request, slug: str):
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    counts = review.review_queue_refresh(project=project)
    messages.info(request, "The queue is up to date: {flagged} comparisons flagged, {created} new, {updated} updated, "
                  "{removed} no longer flagged, {kept} decided kept as they are.".format(**counts))
    return redirect("quality-review", slug=project.slug)


def _item_page(request, project, item, *, errors=None, values=None, status=200):
    return render(request, "quality/review_item.html", {
        "project": project, "item": item, "comparison": item.comparison, "labels": review.item_labels(item=item),
        "sides": [("A", item.comparison.response_a), ("B", item.comparison.response_b)],
        "choices": [("A", "A is better"), ("B", "B is better"), ("tie", "Tie"), ("both_bad", "Both bad")],
        "reason_help": review.REASON_HELP, "errors": errors or {}, "values": values or {},
        "strengths": [(-3, "A much better"), (-2, "A better"), (-1, "A slightly better"), (0, "tie"),
                      (1, "B slightly better"), (2, "B better"), (3, "B much better")],
        "max_extra": review.MAX_EXTRA_LABELS,
    }, status=status)


def _get_item(request, slug: str, item_id: int):
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    item = get_object_or_404(ReviewItem.objects.select_related(
        "project", "decided_by", "comparison__prompt", "comparison__response_a", "comparison__response_b"),
        pk=item_id, project=project)
    return project, item


@login_required
@require_GET
def review_item(request, slug: str, item_id: int):
    project, item = _get_item(request, slug, item_id)
    return _item_page(request, project, item)


def _decision(request, slug: str, item_id: int, decide, message: str):
    """Access first, then ``decide(item)`` (one service call); back to the queue, or
    the item page again with the errors by field."""
    project, item = _get_item(request, slug, item_id)
    try:
        decide(item)
    except review.ReviewError as exc:
        return _item_page(request, project, item, errors=exc.errors, values=request.POST, status=400)
    messages.info(request, f"Item #{item.pk}: {message}")
    return redirect("quality-review", slug=project.slug)


@login_required
@require_POST
def review_adjudicate(request, slug: str, item_id: int):
    post = request.POST
    return _decision(request, slug, item_id, lambda item: review.review_item_adjudicate(
        item=item, user=request.user, choice=post.get("choice", ""), strength=post.get("strength"),
        note=post.get("note", "")), "the final label is stored.")


@login_required
@require_POST
def review_more_labels(request, slug: str, item_id: int):
    post = request.POST
    return _decision(request, slug, item_id, lambda item: review.review_item_request_labels(
        item=item, user=request.user, extra=post.get("extra", 1), note=post.get("note", "")),
        "annotators will be asked for more labels.")


@login_required
@require_POST
def review_ambiguous(request, slug: str, item_id: int):
    return _decision(request, slug, item_id, lambda item: review.review_item_mark_ambiguous(
        item=item, user=request.user, note=request.POST.get("note", "")), "marked ambiguous.")
