"""Small inline SVG line charts of training curves: no JavaScript, no plotting
library in the web process. Numbers go into attributes only through format_html,
so nothing user-written can reach the markup."""

from __future__ import annotations

from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT, PAD = 360, 150, 28
COLOURS = ("#2456a6", "#b3261e", "#1e7b34", "#8a6d00", "#6a3fa0")


def _series(curves: list[dict[str, Any]], key: str) -> dict[str, list[tuple[float, float]]]:
    """Points of ``key`` against step, one series per training stage."""
    out: dict[str, list[tuple[float, float]]] = {}
    for point in curves or []:
        value = point.get(key)
        if isinstance(value, (int, float)) and point.get("step") is not None:
            out.setdefault(str(point.get("stage", "")), []).append((float(point["step"]), float(value)))
    return out


def line_chart(curves: list[dict[str, Any]], key: str, title: str, x_label: str = "step",
               y_range: tuple[float, float] | None = None) -> SafeString:
    """``y_range`` fixes the axis (accuracies: 0–1), so a flat or one-point curve
    is drawn where it belongs instead of stretched over an invented range."""
    series = _series(curves, key)
    if not series:
        return format_html('<p class="muted">No {} recorded.</p>', title)
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    if y_range:
        y0, y1 = min(y_range[0], min(ys)), max(y_range[1], max(ys))
    else:
        y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1

    def sx(x: float) -> float:
        return PAD + (x - x0) / (x1 - x0) * (WIDTH - 2 * PAD)

    def sy(y: float) -> float:
        return HEIGHT - PAD - (y - y0) / (y1 - y0) * (HEIGHT - 2 * PAD)

    lines = format_html_join(
        "", '<polyline fill="none" stroke="{}" stroke-width="2" points="{}"><title>{}</title></polyline>',
        ((COLOURS[i % len(COLOURS)], " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts), stage or key)
         for i, (stage, pts) in enumerate(series.items())),
    )
    # A dot per point: a curve of one or two points (few versions) stays visible.
    dots = format_html_join(
        "", '<circle cx="{}" cy="{}" r="3" fill="{}"><title>{}: {}</title></circle>',
        ((f"{sx(x):.1f}", f"{sy(y):.1f}", COLOURS[i % len(COLOURS)], f"{x:g}", f"{y:.3g}")
         for i, pts in enumerate(series.values()) for x, y in pts),
    )
    lines = format_html("{}{}", lines, dots)
    legend = format_html_join(
        " ", '<tspan fill="{}">■ {}</tspan>',
        ((COLOURS[i % len(COLOURS)], stage or key) for i, stage in enumerate(series)),
    )
    return format_html(
        '<svg class="chart" role="img" aria-label="{title}" viewBox="0 0 {w} {h}" width="{w}" height="{h}">'
        '<text x="{pad}" y="14" class="chart-title">{title}</text>'
        '<line x1="{pad}" y1="{base}" x2="{right}" y2="{base}" stroke="#d9dee3"/>'
        '<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{base}" stroke="#d9dee3"/>'
        '<text x="2" y="{ytop}" class="tick">{ymax}</text><text x="2" y="{base}" class="tick">{ymin}</text>'
        '<text x="{right}" y="{h}" text-anchor="end" class="tick">{xlabel} {xmax}</text>'
        "{lines}<text x='{pad}' y='{h}' class='tick'>{legend}</text></svg>",
        title=title, w=WIDTH, h=HEIGHT, pad=PAD, base=HEIGHT - PAD, right=WIDTH - PAD, ytop=PAD + 4,
        ymax=f"{y1:.3g}", ymin=f"{y0:.3g}", xmax=f"{x1:g}", xlabel=x_label, lines=lines, legend=legend,
    )


def bar_chart(counts: list[int], edges: list[float], title: str) -> SafeString:
    """A histogram: ``counts[i]`` pairs with a score in [edges[i], edges[i+1])."""
    if not counts or not any(counts):
        return format_html('<p class="muted">No {} yet.</p>', title)
    top = max(counts)
    width = (WIDTH - 2 * PAD) / len(counts)
    bars = format_html_join(
        "", '<rect x="{}" y="{}" width="{}" height="{}" fill="#2456a6"><title>{}: {}</title></rect>',
        ((f"{PAD + i * width + 1:.1f}", f"{HEIGHT - PAD - c / top * (HEIGHT - 2 * PAD):.1f}", f"{width - 2:.1f}",
          f"{c / top * (HEIGHT - 2 * PAD):.1f}", f"{edges[i]:.3g}–{edges[i + 1]:.3g}", c) for i, c in enumerate(counts)),
    )
    return format_html(
        '<svg class="chart" role="img" aria-label="{title}" viewBox="0 0 {w} {h}" width="{w}" height="{h}">'
        '<text x="{pad}" y="14" class="chart-title">{title}</text>{bars}'
        '<text x="{pad}" y="{h}" class="tick">{lo}</text><text x="{right}" y="{h}" text-anchor="end" class="tick">{hi}</text>'
        '<text x="2" y="{ytop}" class="tick">{top}</text></svg>',
        title=title, w=WIDTH, h=HEIGHT, pad=PAD, right=WIDTH - PAD, ytop=PAD + 4, bars=bars,
        lo=f"{edges[0]:.3g}", hi=f"{edges[-1]:.3g}", top=top,
    )


def interval_chart(rows, title: str) -> SafeString:
    """Leaderboard scores with their intervals, one horizontal line per source."""
    if not rows:
        return format_html('<p class="muted">No {} yet.</p>', title)
    lo = min(r.low for r in rows)
    hi = max(r.high for r in rows)
    span = (hi - lo) or 1.0
    left, right, row_h = 130, WIDTH + 100 - PAD, 22
    height = PAD + row_h * len(rows)

    def sx(v: float) -> float:
        return left + (v - lo) / span * (right - left)

    marks = format_html_join(
        "", '<text x="4" y="{}" class="tick">{}</text>'
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#2456a6" stroke-width="2"/>'
            '<circle cx="{}" cy="{}" r="4" fill="#b3261e"><title>{}: {} [{}, {}]</title></circle>',
        ((PAD + i * row_h + 4, r.source[:20], f"{sx(r.low):.1f}", PAD + i * row_h, f"{sx(r.high):.1f}", PAD + i * row_h,
          f"{sx(r.score):.1f}", PAD + i * row_h, r.source, f"{r.score:.0f}", f"{r.low:.0f}", f"{r.high:.0f}")
         for i, r in enumerate(rows)),
    )
    return format_html(
        '<svg class="chart" role="img" aria-label="{title}" viewBox="0 0 {w} {h}" width="{w}" height="{h}">'
        '<text x="4" y="12" class="chart-title">{title}</text>{marks}</svg>',
        title=title, w=WIDTH + 100, h=height, marks=marks,
    )
