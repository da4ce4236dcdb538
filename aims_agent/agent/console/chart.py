"""A check's runs as an SVG chart: the headline value of each run against its breach and warn
thresholds, each run a dot in its verdict's colour. The geometry is computed here; the markup
is the autoescaped template `templates/history.svg`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

from aims_agent.agent.console.pages import ENV
from aims_agent.exporters.report_svg import COLOURS

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 760, 220, 56, 12, 12, 28


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def history_chart(runs: Sequence[Mapping[str, Any]], *, label: str) -> Markup:
    values = [_finite(r["value"]) for r in runs]
    lines = {k: [_finite(r[k]) for r in runs] for k in ("breach", "warn")}
    known = [v for v in (*values, *lines["breach"], *lines["warn"]) if v is not None]
    lo, hi = (min(known), max(known)) if known else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(1, len(runs) - 1)

    def x(i: int) -> float:
        return LEFT + plot_w * (i / n if len(runs) > 1 else 0.5)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v - lo) / (hi - lo))

    dots = [
        {
            "x": f"{x(i):.1f}",
            "y": f"{y(v):.1f}",
            "fill": COLOURS.get(r["outcome"], "#37474f"),
            "title": f"{r['at']}: {r['outcome'].replace('_', ' ')}, {r['metric']} = {v:.4g}",
        }
        for i, (r, v) in enumerate(zip(runs, values, strict=True))
        if v is not None
    ]
    path = " ".join(f"{d['x']},{d['y']}" for d in dots)
    steps = {
        k: " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(vs) if v is not None)
        for k, vs in lines.items()
    }
    gaps = [
        {"x": f"{x(i):.1f}", "title": f"{r['at']}: {r['outcome'].replace('_', ' ')}"}
        for i, r in enumerate(runs)
        if r["outcome"] in ("not_run", "error")
    ]
    ticks = [{"y": f"{y(v):.1f}", "text": f"{v:.3g}"} for v in (lo, (lo + hi) / 2, hi)]
    return Markup(  # noqa: S704 - an autoescaped template's output
        ENV.get_template("history.svg").render(
            width=WIDTH, height=HEIGHT, left=LEFT, top=TOP, bottom=HEIGHT - BOTTOM,
            right=WIDTH - RIGHT, label=label, dots=dots, path=path, breach=steps["breach"],
            warn=steps["warn"], gaps=gaps, ticks=ticks, empty=not dots,
        )
    )  # fmt: skip
