"""Chart specs for the pages: plain dicts of numbers and titles that the template
embeds with ``json_script`` and ``frontend/static/preflab/charts.js`` draws with
uPlot (vendored, no CDN). Nothing user-written reaches markup: titles and labels
travel as JSON and are set as text by the script. The quality dashboard uses the
same specs.

Kinds:

* ``line``: ``series`` of ``{"name", "points": [[x, y], …]}``, with ``x_label``,
  an optional fixed ``y_range`` (accuracies: 0–1, so a flat or one-point curve
  sits where it belongs) and optional ``x_ticks`` naming integer x positions.
* ``histogram``: ``counts[i]`` for values in ``[edges[i], edges[i + 1])``.
* ``bars``: one bar per category: ``labels`` and ``values``.
* ``intervals``: one row per source: ``score`` with its ``low``–``high`` interval.

A chart with nothing to draw has ``empty`` set; the template says so in words.
"""

from __future__ import annotations

from typing import Any


def _series(curves: list[dict[str, Any]], key: str) -> dict[str, list[list[float]]]:
    """Points of ``key`` against step, one series per training stage."""
    out: dict[str, list[list[float]]] = {}
    for point in curves or []:
        value = point.get(key)
        if isinstance(value, (int, float)) and point.get("step") is not None:
            out.setdefault(str(point.get("stage", "")), []).append([float(point["step"]), float(value)])
    return out


def line_chart(curves: list[dict[str, Any]], key: str, title: str, x_label: str = "step",
               y_range: tuple[float, float] | None = None, x_ticks: list[str] | None = None) -> dict:
    series = _series(curves, key)
    return {"kind": "line", "title": title, "x_label": x_label, "y_range": list(y_range) if y_range else None,
            "x_ticks": x_ticks, "series": [{"name": stage or key, "points": pts} for stage, pts in series.items()],
            "empty": not series}


def bar_chart(counts: list[int], edges: list[float], title: str) -> dict:
    """A histogram: ``counts[i]`` pairs with a value in [edges[i], edges[i+1])."""
    return {"kind": "histogram", "title": title, "counts": [int(c) for c in counts or []],
            "edges": [float(e) for e in edges or []], "empty": not counts or not any(counts)}


def category_chart(labels: list[str], values: list[float], title: str) -> dict:
    return {"kind": "bars", "title": title, "labels": [str(x) for x in labels], "values": list(values),
            "empty": not any(values)}


def interval_chart(rows, title: str) -> dict:
    """Leaderboard scores with their intervals, one row per source."""
    return {"kind": "intervals", "title": title, "empty": not rows,
            "rows": [{"label": r.source, "score": float(r.score), "low": float(r.low), "high": float(r.high)}
                     for r in rows or []]}
