"""The period report as one self-contained HTML file: inline CSS (for print too), inline SVG.

No script, web font, image or link leaves the file: the Content-Security-Policy in its head
allows only inline styles and `data:` images, so a browser that opens it makes no request. The
page is the template `templates/report.html` (Jinja2, autoescaped); the charts come from
`report_svg`; every colour is paired with a word, so the printed page reads in grey too. Links
are in-page fragments only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

from aims_agent.exporters.report_sections import OUTCOMES
from aims_agent.exporters.report_svg import COLOURS, band_chart, chart
from aims_agent.exporters.templating import render

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _charts(data: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
    """One trend chart per check and per control, keyed (model, check) / (model, "control",
    control); one per metric of an estimate, keyed (model, check, metric)."""
    out: dict[tuple[str, ...], Any] = {}
    for m in data["models"]:
        for c in m["checks"]:
            label = f"Check {c['id']} of {m['name']}: daily verdicts and mean {c.get('metric')}"
            t = c.get("threshold") or {}
            out[(m["name"], c["id"])] = chart(c["series"], label=label, threshold=t, values=True)
        for c in m["checks"]:  # an estimate's windows against its band and limit
            s = c.get("section") or {}
            for metric in s.get("metrics", {}) if s.get("kind") == "estimated_performance" else ():
                label = f"{c['id']} of {m['name']}: estimated {metric} per window"
                out[(m["name"], c["id"], metric)] = band_chart(s["windows"], metric, label=label)
        for c in m["controls"]:
            label = f"{c['id']}: daily verdicts"
            out[(m["name"], "control", c["id"])] = chart(c["series"], label=label, width=400)
    return out


def to_html(data: Mapping[str, Any]) -> str:
    """The report as one HTML document that needs nothing beyond itself."""
    return render(
        "report.html",
        data=data,
        csp=Markup(CSP),  # a constant: its quotes stay quotes
        charts=_charts(data),
        outcomes=OUTCOMES,
        colours=COLOURS,
    )
