"""Read-only figures for the researcher's progress page."""

from __future__ import annotations

from django.db.models import Count, Q
from django.utils import timezone

from .models import Assignment, Comparison, Judgment, Project, Prompt, Response, TaskKind
from .queue import gold_scores


def project_progress(*, project: Project) -> dict:
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    now = timezone.now()
    units = {
        TaskKind.PAIRWISE: Comparison.objects.filter(project=project, is_gold=False).count(),
        TaskKind.RATING: Response.objects.filter(prompt__project=project).count(),
        TaskKind.RANKING: Prompt.objects.filter(project=project).count(),
    }
    agg = dict(
        (row["kind"], row)
        for row in Assignment.objects.filter(project=project)
        .values("kind")
        .annotate(
            submitted=Count("id", filter=Q(state="submitted")),
            active=Count("id", filter=Q(state="active", expires_at__gt=now)),
            skipped=Count("id", filter=Q(state="skipped")),
            expired=Count("id", filter=Q(state="expired")),
            today=Count("id", filter=Q(state="submitted", finished_at__gte=today)),
        )
    )
    kinds = []
    for kind in project.task_kinds:
        if kind not in units:
            continue
        row = agg.get(kind, {})
        wanted = units[kind] * project.overlap
        submitted = row.get("submitted", 0)
        kinds.append({
            "kind": kind, "units": units[kind], "wanted": wanted, "submitted": submitted,
            "active": row.get("active", 0), "skipped": row.get("skipped", 0), "expired": row.get("expired", 0),
            "today": row.get("today", 0), "percent": round(100 * submitted / wanted, 1) if wanted else 0.0,
        })
    per_annotator = list(
        Assignment.objects.filter(project=project)
        .values("annotator__username")
        .annotate(
            pairwise=Count("id", filter=Q(state="submitted", kind="pairwise")),
            rating=Count("id", filter=Q(state="submitted", kind="rating")),
            ranking=Count("id", filter=Q(state="submitted", kind="ranking")),
            skipped=Count("id", filter=Q(state="skipped")),
            today=Count("id", filter=Q(state="submitted", finished_at__gte=today)),
        )
        .order_by("annotator__username")
    )
    gold = {g["annotator__username"]: g for g in gold_scores(project=project)}
    times = {}
    for name, ms in Judgment.objects.filter(comparison__project=project, source="human", time_on_task_ms__isnull=False).values_list(
        "annotator__username", "time_on_task_ms"
    ):
        times.setdefault(name, []).append(ms)
    for row in per_annotator:
        g = gold.get(row["annotator__username"])
        row["gold"] = f"{g['correct']}/{g['answered']}" if g else "–"
        t = sorted(times.get(row["annotator__username"], []))
        row["median_s"] = round(t[len(t) // 2] / 1000, 1) if t else None
    return {"kinds": kinds, "annotators": per_annotator, "updated": timezone.localtime()}
