"""The contract of a check, the reference it compares against, and the registry of check kinds."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from aims_agent.agent.config import Limit
from aims_agent.agent.window import WindowData
from aims_agent.errors import UnknownAliasError
from aims_agent.records import Measurement, Threshold
from aims_agent.schema import ModelSchema


@dataclass(frozen=True, slots=True, kw_only=True)
class Reference:
    """Reference data as columns, in the same encoding as a window (categorical codes, NaN)."""

    reference_id: str
    fingerprint: str  # SHA-256 of the reference file
    n_rows: int
    columns: Mapping[str, np.ndarray]
    vocabularies: Mapping[str, tuple[str, ...]]


class Check(Protocol):
    """A configured check bound to its reference; statistics of the reference are precomputed."""

    id: str
    kind: str

    def run(self, window: WindowData) -> list[Measurement]: ...


CheckFactory = Callable[[Any, Reference, ModelSchema], Check]
CHECKS: dict[str, CheckFactory] = {}

# kind -> module that registers it; imported on first use so a sidecar loads only what it runs
_MODULES = {
    "drift": "aims_agent.checks.drift",
    "data_quality": "aims_agent.checks.quality",
    "performance": "aims_agent.checks.performance",
    "fairness": "aims_agent.checks.fairness",
}


def register(kind: str) -> Callable[[CheckFactory], CheckFactory]:
    def deco(factory: CheckFactory) -> CheckFactory:
        CHECKS[kind] = factory
        return factory

    return deco


def build_check(settings: Any, reference: Reference, schema: ModelSchema) -> Check:
    """Instantiate the check kind named by `settings.kind`."""
    if settings.kind not in _MODULES:
        raise UnknownAliasError("check kind", settings.kind, _MODULES)
    importlib.import_module(_MODULES[settings.kind])
    return CHECKS[settings.kind](settings, reference, schema)


def limit_threshold(
    limit: Limit, value: float, *, reference: float | None = None, min_samples: int = 1
) -> Threshold:
    """The one-sided threshold a `Limit` sets for `value`.

    `min` breaches below it, `max` above it (both exclusive: the bound itself passes). With both,
    the bound the value violates, or else the nearer one. Relative limits are changes against
    `reference` (`min: -0.05` = 5 % below the reference value); without a finite reference
    value they cannot be judged and give a NaN bound, which the judge reports as
    insufficient data.
    """

    def bound(b: float) -> float:
        if not limit.relative:
            return b
        if reference is None or not math.isfinite(reference):
            return math.nan
        return reference * (1 + b)

    lo = bound(limit.min) if limit.min is not None else None
    hi = bound(limit.max) if limit.max is not None else None
    use_min = hi is None or (lo is not None and (value < lo or abs(value - lo) <= abs(value - hi)))
    margin = limit.warn_margin
    if use_min:
        assert lo is not None
        return Threshold(
            breach=lo,
            direction="below",
            inclusive=False,
            min_samples=min_samples,
            warn=None if margin is None else lo + margin,
        )
    assert hi is not None
    return Threshold(
        breach=hi,
        direction="above",
        inclusive=False,
        min_samples=min_samples,
        warn=None if margin is None else hi - margin,
    )
