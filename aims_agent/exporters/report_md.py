"""The period report as Markdown (the template `templates/report.md`): the same sections as
the HTML, trends as text sparklines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aims_agent.exporters.report_sections import OUTCOMES
from aims_agent.exporters.templating import render

_BARS = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"


def sparkline(values: Sequence[float | None]) -> str:
    """`sparkline([0, 1, 2]) == "▁▄█"`; a day without a value is a blank."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    lo, hi = min(known), max(known)
    scale = (len(_BARS) - 1) / (hi - lo) if hi > lo else 0
    return "".join(" " if v is None else _BARS[round((v - lo) * scale)] for v in values)


def _spark(series: Sequence[Mapping[str, Any]], key: str) -> str:
    return sparkline([day.get(key) for day in series])


def to_markdown(data: Mapping[str, Any]) -> str:
    """The report as GitHub-flavoured Markdown."""
    return render("report.md", data=data, outcomes=OUTCOMES, spark=_spark)
