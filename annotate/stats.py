"""Read-only figures for the researcher's progress page, from the maintained
tallies (annotate.counters): a handful of queries whose cost grows with the
number of annotators, never with the pool or the labels."""

from __future__ import annotations

import hashlib
import json

from django.utils import timezone

from . import counters
from .models import Project, TaskKind
from .queue import gold_scores

KINDS = (TaskKind.PAIRWISE, TaskKind.RATING, TaskKind.RANKING)


def project_progress(*, project: Project) -> dict:
    tallies = counters.project_tallies(project=project)
    active = counters.live_leases(project=project)
    kinds = []
    for kind in project.task_kinds:
        if kind not in KINDS:
            continue
        units = tallies["units"].get(kind, 0)
        t = tallies["kinds"].get(kind) or {"labels": 0, "imported": 0, "skipped": 0, "expired": 0, "today": 0}
        wanted = units * project.overlap
        labels = t["labels"] + t["imported"]
        kinds.append({
            "kind": kind, "units": units, "wanted": wanted, "submitted": labels, "imported": t["imported"],
            "active": active.get(kind, 0), "skipped": t["skipped"], "expired": t["expired"], "today": t["today"],
            "percent": min(100.0, round(100 * labels / wanted, 1)) if wanted else 0.0,
        })
    per_annotator = _per_annotator(tallies["rows"])
    gold = {g["annotator__username"]: g for g in gold_scores(project=project)}
    for row in per_annotator:
        g = gold.get(row["annotator__username"])
        row["gold"] = f"{g['correct']}/{g['answered']}" if g else "–"
    return {"kinds": kinds, "annotators": per_annotator, "updated": timezone.localtime()}


def _per_annotator(rows: list[dict]) -> list[dict]:
    """Labels per kind (imported ones included), skips, today's submits and the
    mean time on task, one row per annotator."""
    out: dict[str, dict] = {}
    for r in rows:
        name = r["annotator__username"]
        row = out.setdefault(name, {"annotator__username": name, "pairwise": 0, "rating": 0, "ranking": 0,
                                    "skipped": 0, "today": 0, "time_ms": 0, "timed": 0})
        row[r["kind"]] = r["labels"] + r["imported"]
        for f in ("skipped", "today", "time_ms", "timed"):
            row[f] += r[f]
    for row in out.values():
        row["mean_s"] = round(row.pop("time_ms") / row.pop("timed") / 1000, 1) if row["timed"] else None
    return [out[name] for name in sorted(out) if any(out[name][k] for k in ("pairwise", "rating", "ranking",
                                                                              "skipped", "today"))]


def progress_etag(progress: dict) -> str:
    """A tag of what the progress fragment shows (all but the clock), so polling
    answers 304 while nothing changed."""
    shown = {k: v for k, v in progress.items() if k != "updated"}
    return '"' + hashlib.sha256(json.dumps(shown, sort_keys=True, default=str).encode()).hexdigest()[:32] + '"'
