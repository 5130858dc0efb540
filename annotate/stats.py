"""Read-only figures for the researcher's progress page."""

from __future__ import annotations

from django.db.models import Count, Q
from django.utils import timezone

from .models import HUMAN_SOURCES, Assignment, Comparison, Judgment, LabelSource, Project, Prompt, Ranking, Rating, Response, TaskKind
from .queue import gold_scores


def _labels(project: Project) -> dict[str, tuple[type, dict]]:
    """Each kind's people's labels (made here or imported; gold answers are scored
    apart, derived labels are no one's work): the table and the project filter."""
    return {
        TaskKind.PAIRWISE: (Judgment, {"comparison__project": project, "comparison__is_gold": False}),
        TaskKind.RATING: (Rating, {"response__prompt__project": project}),
        TaskKind.RANKING: (Ranking, {"prompt__project": project}),
    }


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
    tables = _labels(project)
    kinds = []
    for kind in project.task_kinds:
        if kind not in units:
            continue
        row = agg.get(kind, {})
        wanted = units[kind] * project.overlap
        model, scope = tables[kind]
        by_source = dict(model.objects.filter(source__in=HUMAN_SOURCES, **scope).values("source")
                         .annotate(n=Count("id")).values_list("source", "n"))
        labels = sum(by_source.values())
        kinds.append({
            "kind": kind, "units": units[kind], "wanted": wanted, "submitted": labels,
            "imported": by_source.get(LabelSource.IMPORTED, 0),
            "active": row.get("active", 0), "skipped": row.get("skipped", 0), "expired": row.get("expired", 0),
            "today": row.get("today", 0), "percent": min(100.0, round(100 * labels / wanted, 1)) if wanted else 0.0,
        })
    per_annotator = _per_annotator(project, tables, today)
    gold = {g["annotator__username"]: g for g in gold_scores(project=project)}
    _add_gold_and_time(project, per_annotator, gold)
    return {"kinds": kinds, "annotators": per_annotator, "updated": timezone.localtime()}


def _per_annotator(project: Project, tables: dict, today) -> list[dict]:
    """Labels per kind (imported ones included) and, from the leases, skips and
    today's submits, one row per annotator."""
    rows: dict[str, dict] = {}

    def row(name: str) -> dict:
        return rows.setdefault(name, {"annotator__username": name, "pairwise": 0, "rating": 0, "ranking": 0,
                                      "skipped": 0, "today": 0})

    for kind, (model, scope) in tables.items():
        for name, n in (model.objects.filter(source__in=HUMAN_SOURCES, **scope).values("annotator__username")
                        .annotate(n=Count("id")).values_list("annotator__username", "n")):
            row(name)[kind] = n
    for name, skipped, done_today in (
        Assignment.objects.filter(project=project).values("annotator__username")
        .annotate(skipped=Count("id", filter=Q(state="skipped")),
                  today=Count("id", filter=Q(state="submitted", finished_at__gte=today)))
        .values_list("annotator__username", "skipped", "today")
    ):
        row(name).update(skipped=skipped, today=done_today)
    return [rows[name] for name in sorted(rows)]


def _add_gold_and_time(project: Project, per_annotator: list[dict], gold: dict) -> None:
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
