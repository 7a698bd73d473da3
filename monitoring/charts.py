"""The alerts-by-severity-per-day chart, as geometry for an inline SVG rendered by a template.

Server-side only: no script, no external library, no CDN; the template draws rectangles.
"""

from __future__ import annotations

import datetime

from monitoring.models import Severity
from monitoring.selectors import alerts_by_severity_per_day

COLOURS = {"critical": "#b91c1c", "high": "#ea580c", "medium": "#ca8a04", "low": "#2563eb"}
WIDTH, HEIGHT = 720, 200
LEFT, BOTTOM, TOP = 36, 24, 10


def severity_chart(*, days: int, now: datetime.datetime | None = None) -> dict:
    """Stacked bars (one per day, one segment per severity) with axis ticks and a legend."""
    data = alerts_by_severity_per_day(days=days, now=now)
    peak = max((day["total"] for day in data), default=0)
    scale_max = max(peak, 1)
    plot_height = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT) / max(len(data), 1)
    bar_width = max(slot * 0.7, 2)
    bars = []
    for index, day in enumerate(data):
        x = LEFT + index * slot + (slot - bar_width) / 2
        y = HEIGHT - BOTTOM
        segments = []
        for severity in sorted(Severity):  # low at the bottom, critical on top
            count = day["counts"][severity.label]
            if not count:
                continue
            height = plot_height * count / scale_max
            y -= height
            segments.append(
                {
                    "x": round(x, 1),
                    "y": round(y, 1),
                    "width": round(bar_width, 1),
                    "height": round(height, 1),
                    "colour": COLOURS[severity.label],
                    "title": f"{day['day']:%Y-%m-%d}: {count} {severity.label}",
                }
            )
        bars.append(
            {
                "segments": segments,
                "label": f"{day['day']:%d}",
                "label_x": round(x + bar_width / 2, 1),
                "total": day["total"],
                "day": day["day"],
            }
        )
    ticks = sorted({0, scale_max // 2, scale_max}) if peak else [0]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "axis_y": HEIGHT - BOTTOM,
        "label_y": HEIGHT - 8,
        "left": LEFT,
        "bars": bars,
        "ticks": [
            {"value": tick, "y": round(HEIGHT - BOTTOM - plot_height * tick / scale_max, 1)} for tick in ticks
        ],
        "legend": [{"name": name, "colour": colour} for name, colour in COLOURS.items()],
        "total": sum(day["total"] for day in data),
        "days": days,
        "summary": ", ".join(f"{day['day']:%Y-%m-%d} {day['total']}" for day in data if day["total"]),
    }
