"""Charts of the period report, drawn as inline SVG: no script, no library, no request.

`chart(series)` stacks each day's runs by verdict; with `values=True` it also plots the daily
mean of the headline metric above the bars, against the breach and warn thresholds. The
geometry is computed here; the markup is the template `templates/chart.svg` (autoescaped).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

from aims_agent.exporters.report_sections import OUTCOMES
from aims_agent.exporters.templating import render

COLOURS = {
    "pass": "#2e7d32",
    "warn": "#f9a825",
    "breach": "#c62828",
    "insufficient_data": "#9e9e9e",
    "error": "#6a1b9a",
    "not_run": "#37474f",
}


def chart(
    series: Sequence[Mapping[str, Any]],
    *,
    label: str,
    threshold: Any = None,
    values: bool = False,
    width: int = 720,
) -> Markup:
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
    y0 = top + vh + gap  # top of the bars panel
    peak = max([int(d.get("runs", 0)) for d in series] + [1])
    bar = min(max(step * 0.8, 0.6), 28.0)  # a few days' bars stay bars, not blocks
    rects = []
    for i, day in enumerate(series):
        x, y = left + i * step, float(y0 + bh)
        for outcome in OUTCOMES:
            count = int(day.get(outcome, 0))
            if not count:
                continue
            h = bh * count / peak
            y -= h
            rects.append(
                {
                    "x": f"{x + (step - bar) / 2:.2f}",
                    "y": f"{y:.2f}",
                    "w": f"{bar:.2f}",
                    "h": f"{h:.2f}",
                    "fill": COLOURS[outcome],
                    "title": f"{day['date']}: {count} {outcome.replace('_', ' ')}",
                }
            )
    every = max(1, math.ceil(n / 8))
    ticks = [
        {"x": f"{left + (i + 0.5) * step:.1f}", "text": str(series[i]["date"])[5:]}
        for i in range(0, len(series), every)
    ]
    panel = _value_panel(series, vals, threshold, left, top, plot, vh, step) if has_values else None
    return Markup(  # noqa: S704 - an autoescaped template's output
        render(
            "chart.svg",
            width=width,
            height=height,
            label=label,
            left=left,
            plot=plot,
            y0=y0,
            bh=bh,
            peak=peak,
            rects=rects,
            ticks=ticks,
            panel=panel,
        )
    )


def _value_panel(
    series: Sequence[Mapping[str, Any]],
    vals: Sequence[Any],
    threshold: Any,
    left: float,
    top: float,
    plot: float,
    vh: float,
    step: float,
) -> dict[str, Any]:
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

    thresholds = [
        {
            "name": name,
            "value": f"{v:g}",
            "y": f"{y(v):.2f}",
            "text_y": f"{y(v) + (-3 if name == 'breach' else 10):.2f}",
            "colour": COLOURS["breach" if name == "breach" else "warn"],
        }
        for name, v in lines.items()
    ]
    segments: list[str] = []
    points = []
    segment: list[str] = []
    for i, v in enumerate([*vals, None]):
        if v is None:
            if len(segment) > 1:
                segments.append(" ".join(segment))
            segment = []
            continue
        x = left + (i + 0.5) * step
        segment.append(f"{x:.2f},{y(float(v)):.2f}")
        points.append(
            {
                "x": f"{x:.2f}",
                "y": f"{y(float(v)):.2f}",
                "title": f"{series[i]['date']}: mean {float(v):.4g}",
            }
        )
    return {
        "top": top,
        "vh": vh,
        "hi": f"{hi:.3g}",
        "lo": f"{lo:.3g}",
        "thresholds": thresholds,
        "segments": segments,
        "points": points,
    }


def band_chart(
    windows: Sequence[Mapping[str, Any]], metric: str, *, label: str, width: int = 720
) -> Markup:
    """An estimate over its windows: the band shaded, the estimate as a line, the limit dashed
    and the realised value, where labels arrived, as dots."""
    rows = [(w, (w.get("metrics") or {}).get(metric) or {}) for w in windows]
    left, right, top, vh = 44, 8, 8, 120
    height = top + vh + 22
    plot = width - left - right
    step = plot / max(1, len(rows))
    known = [
        float(v)
        for _, e in rows
        for v in (e.get(k) for k in ("estimate", "band_low", "band_high", "limit", "realised"))
        if isinstance(v, int | float) and math.isfinite(v)
    ]
    lo, hi = (min(known), max(known)) if known else (0.0, 1.0)
    pad = (hi - lo) * 0.08 or 0.05
    lo, hi = lo - pad, hi + pad

    def x(i: int) -> float:
        return left + (i + 0.5) * step

    def y(v: float) -> float:
        return top + vh - (v - lo) / (hi - lo) * vh

    def num(e: Mapping[str, Any], k: str) -> float | None:
        v = e.get(k)
        return float(v) if isinstance(v, int | float) and math.isfinite(v) else None

    band = [(i, num(e, "band_low"), num(e, "band_high")) for i, (_, e) in enumerate(rows)]
    band = [b for b in band if b[1] is not None and b[2] is not None]
    area = " ".join(f"{x(i):.2f},{y(h):.2f}" for i, _, h in band if h is not None)
    area += " " + " ".join(
        f"{x(i):.2f},{y(lw):.2f}" for i, lw, _ in reversed(band) if lw is not None
    )
    line = [(i, num(e, "estimate")) for i, (_, e) in enumerate(rows)]
    limits = [num(e, "limit") for _, e in rows]
    limit = next((v for v in reversed(limits) if v is not None), None)
    dots = [
        {
            "x": f"{x(i):.2f}",
            "y": f"{y(r):.2f}",
            "title": f"{w.get('window_end')}: realised {r:.4g}",
        }
        for i, (w, e) in enumerate(rows)
        if (r := num(e, "realised")) is not None
    ]
    points = [
        {
            "x": f"{x(i):.2f}",
            "y": f"{y(v):.2f}",
            "title": f"{rows[i][0].get('window_end')}: estimate {v:.4g}",
        }
        for i, v in line
        if v is not None
    ]
    return Markup(  # noqa: S704 - an autoescaped template's output
        render(
            "band.svg",
            width=width,
            height=height,
            label=label,
            left=left,
            plot=plot,
            top=top,
            vh=vh,
            hi=f"{hi:.3g}",
            lo=f"{lo:.3g}",
            area=area.strip() if len(band) > 1 else "",
            estimate=" ".join(f"{p['x']},{p['y']}" for p in points),
            points=points,
            dots=dots,
            limit=None if limit is None else {"y": f"{y(limit):.2f}", "value": f"{limit:.4g}"},
            colours=COLOURS,
        )
    )
