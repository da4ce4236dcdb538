"""Turn measurements into verdicts, and verdicts into nonconformities.

The one place where a number becomes pass / warn / breach / insufficient_data (thresholds, warn
bands, minimum sample sizes), and where a breach becomes a nonconformity (the consecutive-breach
rule). Exporters record what the judge decided; they never decide.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable

from aims_agent.records import (
    VERDICT_ORDER,
    Assessment,
    BreachRule,
    Measurement,
    NcAction,
    Threshold,
    Verdict,
)

_BEYOND: dict[tuple[str, bool], Callable[[float, float], bool]] = {
    ("above", True): operator.ge,
    ("above", False): operator.gt,
    ("below", True): operator.le,
    ("below", False): operator.lt,
}


def verdict(value: float, n: int, threshold: Threshold | None) -> Verdict:
    """The verdict for one value under one threshold rule."""
    if threshold is None:
        return "pass"
    if n < threshold.min_samples or math.isnan(value) or math.isnan(threshold.breach):
        return "insufficient_data"
    beyond = _BEYOND[(threshold.direction, threshold.inclusive)]
    if beyond(value, threshold.breach):
        return "breach"
    if threshold.warn is not None and beyond(value, threshold.warn):
        return "warn"
    return "pass"


def assess(measurements: Iterable[Measurement]) -> tuple[Assessment, ...]:
    return tuple(
        Assessment(measurement=m, verdict=verdict(m.value, m.n_current, m.threshold))
        for m in measurements
    )


def overall(assessments: Iterable[Assessment]) -> Verdict:
    """A run's verdict: its headline measurements' worst, where a breach or warn is never masked
    by a metric that could not be judged, but an unjudged metric keeps the run from passing."""
    heads = [a.verdict for a in assessments if a.measurement.headline]
    if not heads:
        return "insufficient_data"
    return max(heads, key=VERDICT_ORDER.__getitem__)


def nonconformity_action(streak: int, is_open: bool, *, required: int) -> NcAction:
    """What a breach does: recur on the check's open record; else open one once `required`
    runs in a row (this one included, `streak`) have breached; else nothing yet."""
    if is_open:
        return "recur"
    return "open" if streak >= required else "none"


def breach_rule(required: int) -> BreachRule:
    """The consecutive-breach rule of a check that opens a record after `required` breaches."""

    def decide(streak: int, is_open: bool) -> NcAction:
        return nonconformity_action(streak, is_open, required=required)

    return decide
