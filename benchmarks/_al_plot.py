"""The active-learning harness's plots (benchmarks/active_learning.py): accuracy
against labels, mean and mean ± std band per strategy, random's final mean dashed."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

_COLOURS = ("#555555", "#2456a6", "#b3261e", "#1e7b34", "#8a6d00", "#6a3fa0")


def write_svg(path: Path, result: dict[str, Any], title: str) -> None:
    """Accuracy vs labels, mean line and mean ± std band per strategy, random's final
    mean as a dashed line. Hand-written SVG: the venv has no plotting library."""
    width, height, left, right, top, bottom = 760, 460, 64, 190, 40, 52
    series = result["strategies"]
    xs = [x for s in series.values() for x in s["labels"]]
    lows = [m - d for s in series.values() for m, d in zip(s["mean"], s["std"], strict=True)]
    highs = [m + d for s in series.values() for m, d in zip(s["mean"], s["std"], strict=True)]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    y0, y1 = math.floor(min(lows) * 50) / 50, math.ceil(max(highs) * 50) / 50
    y1 = max(y1, y0 + 0.02)

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    dashed = 'stroke="#555" stroke-dasharray="5 4"'
    legend_x = f'x1="{width - right + 14}" x2="{width - right + 38}"'
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="14" font-weight="bold">{_escape(title)}</text>',
    ]
    for i in range(6):
        y = y0 + (y1 - y0) * i / 5
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#e4e7eb"/>')
        parts.append(f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.3f}</text>')
    for x in sorted(set(series[next(iter(series))]["labels"])):
        parts.append(f'<text x="{sx(x):.1f}" y="{height - bottom + 16}" text-anchor="middle" font-size="10">{x}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">labels used</text>')
    parts.append(
        f'<text x="16" y="{(top + height - bottom) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {(top + height - bottom) / 2})">held-out pairwise accuracy</text>'
    )
    if result.get("target_accuracy") is not None:
        t = sy(result["target_accuracy"])
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{t:.1f}" y2="{t:.1f}" {dashed}/>')
    for i, (name, s) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        upper = [f"{sx(x):.1f},{sy(m + d):.1f}" for x, m, d in zip(s["labels"], s["mean"], s["std"], strict=True)]
        lower = [f"{sx(x):.1f},{sy(m - d):.1f}" for x, m, d in zip(s["labels"], s["mean"], s["std"], strict=True)]
        band = " ".join(upper + lower[::-1])
        parts.append(f'<polygon points="{band}" fill="{colour}" fill-opacity="0.10" stroke="none"/>')
        line = " ".join(f"{sx(x):.1f},{sy(m):.1f}" for x, m in zip(s["labels"], s["mean"], strict=True))
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        ly = top + 16 + 20 * i
        parts.append(f'<line {legend_x} y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="3"/>')
        parts.append(f'<text x="{width - right + 44}" y="{ly + 4}">{_escape(name)}</text>')
    ly = top + 16 + 20 * len(series)
    parts.append(f'<line {legend_x} y1="{ly}" y2="{ly}" {dashed}/>')
    parts.append(f'<text x="{width - right + 44}" y="{ly + 4}">random final</text>')
    parts.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n")


def write_png(path: Path, result: dict[str, Any], title: str) -> None:
    """The same plot as ``write_svg`` as a PNG, drawn by matplotlib (the optional
    ``bench`` extra: ``pip install -e ".[bench]"``)."""
    try:
        import matplotlib
    except ImportError:
        sys.exit('--out-png needs matplotlib: pip install -e ".[bench]"')
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    for name, s in result["strategies"].items():
        mean, std = np.asarray(s["mean"]), np.asarray(s["std"])
        (line,) = ax.plot(s["labels"], mean, label=name, linewidth=2)
        ax.fill_between(s["labels"], mean - std, mean + std, color=line.get_color(), alpha=0.15)
    ax.axhline(result["target_accuracy"], color="#555", linestyle="--", linewidth=1, label="random final")
    ax.set_xlabel("labels acquired")
    ax.set_ylabel("held-out pairwise accuracy")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
