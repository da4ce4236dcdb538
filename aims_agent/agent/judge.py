"""Turn measurements into verdicts: thresholds, warn bands and minimum sample sizes.

The one place where a number becomes pass / warn / breach / insufficient_data.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable

from aims_agent.records import VERDICT_ORDER, Assessment, Measurement, Threshold, Verdict

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
