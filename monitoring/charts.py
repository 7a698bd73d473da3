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
        "ticks": [{"value": tick, "y": round(HEIGHT - BOTTOM - plot_height * tick / scale_max, 1)} for tick in ticks],
        "legend": [{"name": name, "colour": colour} for name, colour in COLOURS.items()],
        "total": sum(day["total"] for day in data),
        "days": days,
        "summary": ", ".join(f"{day['day']:%Y-%m-%d} {day['total']}" for day in data if day["total"]),
    }


# One small chart per series (the dashboard's failed logins, lockouts, MFA failures per day). Each
# has its own title, its own fill pattern and the value above every bar, so nothing depends on
# telling colours apart (WCAG 2.1 SC 1.4.1).
DAILY_WIDTH, DAILY_HEIGHT = 420, 150
DAILY_LEFT, DAILY_BOTTOM, DAILY_TOP = 30, 22, 16
PATTERNS = ("solid", "hatch", "dots")


def daily_count_chart(*, key: str, title: str, series: list[dict], pattern: str) -> dict:
    """Bars of one per-day count (``series``: ``{"day", "count"}``, oldest first), as SVG geometry."""
    if pattern not in PATTERNS:
        raise ValueError(f"pattern must be one of {', '.join(PATTERNS)}")
    peak = max((point["count"] for point in series), default=0)
    scale_max = max(peak, 1)
    plot_height = DAILY_HEIGHT - DAILY_BOTTOM - DAILY_TOP
    slot = (DAILY_WIDTH - DAILY_LEFT) / max(len(series), 1)
    bar_width = max(slot * 0.7, 2)
    bars = []
    for index, point in enumerate(series):
        x = DAILY_LEFT + index * slot + (slot - bar_width) / 2
        height = plot_height * point["count"] / scale_max
        y = DAILY_HEIGHT - DAILY_BOTTOM - height
        bars.append(
            {
                "x": round(x, 1),
                "y": round(y, 1),
                "width": round(bar_width, 1),
                "height": round(height, 1),
                "count": point["count"],
                "value_y": round(y - 3, 1),
                "centre_x": round(x + bar_width / 2, 1),
                # Every other day's date (today's always) keeps the labels legible at this width.
                "label": f"{point['day']:%d}" if (len(series) - 1 - index) % 2 == 0 else "",
                "title": f"{point['day']:%Y-%m-%d}: {point['count']}",
            }
        )
    return {
        "key": key,
        "title": title,
        "pattern": pattern,
        "pattern_id": f"chart-pattern-{key}",
        "width": DAILY_WIDTH,
        "height": DAILY_HEIGHT,
        "axis_y": DAILY_HEIGHT - DAILY_BOTTOM,
        "label_y": DAILY_HEIGHT - 6,
        "left": DAILY_LEFT,
        "peak": peak,
        "bars": bars,
        "total": sum(point["count"] for point in series),
        "summary": ", ".join(f"{point['day']:%Y-%m-%d} {point['count']}" for point in series if point["count"]),
        "series": series,
    }
