"""What the label-free performance estimates share: the metric names they publish, and the
threshold that breaches only when the whole band is beyond the limit."""

from __future__ import annotations

import math

from aims_agent.config import Limit
from aims_agent.records import Threshold

PREFIX = "estimated_"  # records and series name the metric estimated_<metric>


def finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def band_threshold(
    limit: Limit, value: float, half: float, reference: float, min_samples: int
) -> tuple[Threshold, float]:
    """The threshold on the estimate that says "the whole band is beyond the limit": for a
    `min`, breach below limit - half (the band's top under the limit), warn below the limit
    itself; for a `max` the mirror. With both bounds, the one the estimate is nearer to."""

    def bound(b: float) -> float:
        if not limit.relative:
            return b
        return reference * (1 + b) if math.isfinite(reference) else math.nan

    lo = bound(limit.min) if limit.min is not None else None
    hi = bound(limit.max) if limit.max is not None else None
    use_min = hi is None or (lo is not None and (value < lo or abs(value - lo) <= abs(value - hi)))
    if use_min:
        assert lo is not None
        return Threshold(
            breach=lo - half, direction="below", inclusive=False, warn=lo, min_samples=min_samples
        ), lo
    assert hi is not None
    return Threshold(
        breach=hi + half, direction="above", inclusive=False, warn=hi, min_samples=min_samples
    ), hi
