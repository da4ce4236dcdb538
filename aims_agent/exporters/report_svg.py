"""Charts of the period report, drawn as inline SVG: no script, no library, no request.

`chart(series)` stacks each day's runs by verdict; with `values=True` it also plots the daily
mean of the headline metric above the bars, against the breach and warn thresholds.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from aims_agent.exporters.report_sections import OUTCOMES

COLOURS = {
    "pass": "#2e7d32",
    "warn": "#f9a825",
    "breach": "#c62828",
    "insufficient_data": "#9e9e9e",
    "error": "#6a1b9a",
    "not_run": "#37474f",
}


def _e(value: object) -> str:
    return html.escape(str(value))


def chart(
    series: Sequence[Mapping[str, Any]],
    *,
    label: str,
    threshold: Any = None,
    values: bool = False,
    width: int = 720,
) -> str:
    """Stacked daily verdict bars; with `values`, the daily mean of the headline metric above
    them, against the breach (and warn) threshold as dashed lines."""
    n = max(1, len(series))
    left, right, top = 44, 8, 8
    plot = width - left - right
    step = plot / n
    vals = [d.get("value_mean") for d in series] if values else []
    has_values = any(v is not None for v in vals)
    vh = 90 if has_values else 0
    bh, gap = 80, 18 if has_values else 0
    height = top + vh + gap + bh + 20
    parts = [
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{_e(label)}"><title>{_e(label)}</title>'
    ]
    if has_values:
        parts.append(_value_panel(series, vals, threshold, left, top, plot, vh, step))
    y0 = top + vh + gap  # top of the bars panel
    peak = max([int(d.get("runs", 0)) for d in series] + [1])
    parts.append(
        f'<line x1="{left}" y1="{y0 + bh}" x2="{left + plot}" y2="{y0 + bh}" stroke="#888"/>'
        f'<text x="{left - 4}" y="{y0 + 8}" text-anchor="end">{peak}</text>'
        f'<text x="{left - 4}" y="{y0 + bh}" text-anchor="end">0</text>'
        f'<text x="2" y="{y0 + bh / 2}" >runs</text>'
    )
    bar = min(max(step * 0.8, 0.6), 28.0)  # a few days' bars stay bars, not blocks
    for i, day in enumerate(series):
        x, y = left + i * step, float(y0 + bh)
        for outcome in OUTCOMES:
            count = int(day.get(outcome, 0))
            if not count:
                continue
            h = bh * count / peak
            y -= h
            parts.append(
                f'<rect x="{x + (step - bar) / 2:.2f}" y="{y:.2f}" width="{bar:.2f}" '
                f'height="{h:.2f}" fill="{COLOURS[outcome]}"><title>{_e(day["date"])}: '
                f"{count} {outcome.replace('_', ' ')}</title></rect>"
            )
    every = max(1, math.ceil(n / 8))
    for i in range(0, len(series), every):
        x = left + (i + 0.5) * step
        parts.append(
            f'<text x="{x:.1f}" y="{y0 + bh + 13}" text-anchor="middle">'
            f"{_e(series[i]['date'][5:])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _value_panel(
    series: Sequence[Mapping[str, Any]],
    vals: Sequence[Any],
    threshold: Any,
    left: float,
    top: float,
    plot: float,
    vh: float,
    step: float,
) -> str:
    t = threshold if isinstance(threshold, Mapping) else {}
    lines = {k: float(t[k]) for k in ("breach", "warn") if isinstance(t.get(k), int | float)}
    known = [float(v) for v in vals if v is not None]
    highs = [float(d["value_max"]) for d in series if d.get("value_max") is not None]
    lo = min([0.0, *known, *lines.values()])
    hi = max([*known, *highs, *lines.values()]) or 1.0
    hi += (hi - lo) * 0.08
    if hi <= lo:  # one value at or below zero and no threshold: any positive height will do
        hi = lo + 1.0

    def y(v: float) -> float:
        return top + vh - (v - lo) / (hi - lo) * vh

    out = [
        f'<line x1="{left}" y1="{top + vh}" x2="{left + plot}" y2="{top + vh}" stroke="#888"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{hi:.3g}</text>',
        f'<text x="{left - 4}" y="{top + vh}" text-anchor="end">{lo:.3g}</text>',
        f'<text x="2" y="{top + vh / 2}">value</text>',
    ]
    for name, v in lines.items():
        colour = COLOURS["breach" if name == "breach" else "warn"]
        out.append(
            f'<line x1="{left}" y1="{y(v):.2f}" x2="{left + plot}" y2="{y(v):.2f}" '
            f'stroke="{colour}" stroke-dasharray="5 3"><title>{name} threshold {v:g}</title></line>'
            f'<text x="{left + plot - 2}" y="{y(v) + (-3 if name == "breach" else 10):.2f}" '
            f'text-anchor="end">{name} {v:g}</text>'
        )
    segment: list[str] = []
    for i, v in enumerate([*vals, None]):
        if v is None:
            if len(segment) > 1:
                out.append(
                    f'<polyline points="{" ".join(segment)}" fill="none" stroke="#1f4e99" '
                    'stroke-width="1.5"/>'
                )
            segment = []
            continue
        x = left + (i + 0.5) * step
        segment.append(f"{x:.2f},{y(float(v)):.2f}")
        out.append(
            f'<circle cx="{x:.2f}" cy="{y(float(v)):.2f}" r="2.2" fill="#1f4e99">'
            f"<title>{_e(series[i]['date'])}: mean {float(v):.4g}</title></circle>"
        )
    return "".join(out)
