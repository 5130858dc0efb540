"""The reward-model page of a project (researchers and admins): retrain, live
runs, versions with metrics and curves, promote and roll back. Access helper
first, one service call, then a redirect (plain forms) or a partial (htmx)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotate.access import get_project_for
from annotate.models import Role

from . import plots
from .ml.presets import PRESETS
from .models import ModelVersion, RewardSettings, TrainingRun
from .services import lifecycle, project_settings


def _get_project(request, slug: str):
    project, _ = get_project_for(request.user, slug, role=Role.RESEARCHER)
    return project


def _runs_context(project) -> dict:
    runs = list(TrainingRun.objects.filter(project=project).select_related("created_by")[:20])
    return {"project": project, "runs": runs, "any_active": any(r.is_active for r in runs)}


def _back(request, project):
    if request.htmx:
        return render(request, "models_svc/partials/runs.html", _runs_context(project))
    return redirect("model-page", slug=project.slug)


@login_required
@require_GET
def model_page(request, slug: str):
    project = _get_project(request, slug)
    versions = list(ModelVersion.objects.filter(project=project).select_related("run"))
    shown = None
    wanted = request.GET.get("run")
    if wanted:
        shown = get_object_or_404(TrainingRun, project=project, pk=wanted)
    elif versions:
        shown = versions[0].run
    curves = (shown.metrics or {}).get("curves", []) if shown else []
    return render(request, "models_svc/page.html", {
        **_runs_context(project),
        "settings": project_settings.settings_for(project),
        "versions": versions,
        "active": next((v for v in versions if v.state == ModelVersion.State.ACTIVE), None),
        # Roll back only when a version other than the active one was ever active.
        "can_roll_back": any(v.promoted_at and v.state != ModelVersion.State.ACTIVE for v in versions),
        "shown": shown,
        "charts": [plots.line_chart(curves, "loss", "training loss"),
                   plots.line_chart(curves, "eval_accuracy", "held-out pairwise accuracy", y_range=(0.0, 1.0))],
        "modes": RewardSettings.Mode.choices,
        "objectives": RewardSettings.Objective.choices,
        "presets": [(key, p.label, p.missing()) for key, p in PRESETS.items()],
    })


@login_required
@require_GET
def runs_partial(request, slug: str):
    ctx = _runs_context(_get_project(request, slug))
    response = render(request, "models_svc/partials/runs.html", ctx)
    if request.GET.get("was_active") and not ctx["any_active"]:
        # The last run just ended: reload the page so its version and curves show.
        response["HX-Refresh"] = "true"
    return response


@login_required
@require_POST
def retrain(request, slug: str):
    project = _get_project(request, slug)
    try:
        run = lifecycle.training_run_enqueue(
            project=project, mode=request.POST.get("mode") or None, objective=request.POST.get("objective") or None,
            created_by=request.user,
        )
    except lifecycle.TrainingRefused as exc:
        messages.error(request, f"Not queued: {exc}.")
    else:
        messages.success(request, f"Run #{run.pk} queued ({run.config['mode']}, {run.config['objective']}).")
    return redirect("model-page", slug=project.slug)


@login_required
@require_POST
def settings_update(request, slug: str):
    project = _get_project(request, slug)
    try:
        project_settings.reward_settings_update(
            project=project,
            mode=request.POST.get("mode", "head"),
            objective=request.POST.get("objective", "bt"),
            refresh_after_labels=request.POST.get("refresh_after_labels", "0"),
            auto_promote=request.POST.get("auto_promote") in ("on", "true", "1"),
            promote_min_eval_pairs=request.POST.get("promote_min_eval_pairs"),
            preset=request.POST.get("preset"),
            backbone=request.POST.get("backbone"),
            may_set_paths=request.user.is_staff,
        )
    except ValueError as exc:
        messages.error(request, f"Settings not saved: {exc}.")
    else:
        messages.success(request, "Reward-model settings saved.")
    return redirect("model-page", slug=project.slug)


@login_required
@require_POST
def run_cancel(request, slug: str, run_id: int):
    project = _get_project(request, slug)
    lifecycle.training_run_cancel(run=get_object_or_404(TrainingRun, project=project, pk=run_id))
    return _back(request, project)


@login_required
@require_POST
def version_promote(request, slug: str, number: int):
    project = _get_project(request, slug)
    version = lifecycle.model_version_promote(version=get_object_or_404(ModelVersion, project=project, number=number))
    messages.success(request, f"Model v{version.number} is now active.")
    return redirect("model-page", slug=project.slug)


@login_required
@require_POST
def version_rollback(request, slug: str):
    project = _get_project(request, slug)
    try:
        version = lifecycle.model_version_rollback(project=project)
    except ValueError as exc:
        messages.error(request, str(exc).capitalize() + ".")
    else:
        messages.success(request, f"Rolled back: model v{version.number} is active again.")
    return redirect("model-page", slug=project.slug)


@login_required
@require_GET
def selection_page(request, slug: str):
    """Active learning at a glance: the strategy in force, the pool's scores, the
    learning curve over versions, and the leaderboard of response sources."""
    from annotate.models import Project

    from .ml.leaderboard import leaderboard, projected_votes
    from .selection import source_battles

    project = _get_project(request, slug)
    s = project_settings.settings_for(project)
    last = s.last_rescore or {}
    versions = list(ModelVersion.objects.filter(project=project).order_by("number"))
    curve = [{"stage": "held-out accuracy", "step": v.metrics.get("train_pairs"), "eval_accuracy": v.metrics.get("eval_accuracy")}
             for v in versions]
    battles = source_battles(project)
    rows = leaderboard(battles, rounds=100)
    hist = last.get("score_histogram") or []
    return render(request, "models_svc/selection.html", {
        "project": project, "settings": s, "last": last, "rows": rows,
        "projection": projected_votes(rows, len(battles)),
        "strategies": Project.Strategy.choices,
        "charts": [
            plots.bar_chart(hist, last.get("score_edges") or list(range(len(hist) + 1)), "pool acquisition scores"),
            plots.line_chart(curve, "eval_accuracy", "learning curve", x_label="labels", y_range=(0.0, 1.0)),
            plots.interval_chart(rows, "sources (Bradley-Terry, 95% bootstrap interval)"),
        ],
    })


@login_required
@require_POST
def selection_update(request, slug: str):
    project = _get_project(request, slug)
    try:
        project_settings.selection_settings_update(project=project, strategy=request.POST.get("strategy", ""),
                                                   exploration_rate=request.POST.get("exploration_rate", "0"))
    except ValueError as exc:
        messages.error(request, f"Not saved: {exc}.")
    else:
        messages.success(request, "Selection settings saved; they apply from the next rescoring.")
    return redirect("model-selection", slug=project.slug)


@login_required
@require_POST
def rescore_now(request, slug: str):
    project = _get_project(request, slug)
    lifecycle.comparisons_rescore_enqueue(project_id=project.pk)
    messages.success(request, "Rescoring queued; the queue's priorities change when it finishes.")
    return redirect("model-selection", slug=project.slug)
