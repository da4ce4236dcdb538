"""The contract of a check, the reference it compares against, and the registry of check kinds."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from aims_agent.config import CheckConfig, Limit, SchemaConfig
from aims_agent.errors import UnknownAliasError
from aims_agent.records import Measurement, Threshold, WindowData
from aims_agent.schema import ModelSchema


@dataclass(frozen=True, slots=True, kw_only=True)
class Reference:
    """Reference data as columns, in the same encoding as a window (categorical codes, NaN)."""

    reference_id: str
    fingerprint: str  # SHA-256 of the reference file
    n_rows: int
    columns: Mapping[str, np.ndarray]
    vocabularies: Mapping[str, tuple[str, ...]]
    # what checks compute from the reference once and may reuse between runs (null quantiles
    # of the calibrated drift preset); the caller may fill and persist it
    cache: MutableMapping[str, object] = field(default_factory=dict)


class Check(Protocol):
    """A configured check bound to its reference; statistics of the reference are precomputed."""

    id: str
    kind: str

    def run(self, window: WindowData) -> list[Measurement]: ...


CheckFactory = Callable[[Any, Reference, ModelSchema], Check]
# (YAML path of the check, its settings, the model's schema config) -> problems, each
# "<path>.<field>: <reason>": what a kind needs of the config, said by the kind itself
ProblemFinder = Callable[[str, Any, SchemaConfig], list[str]]
CHECKS: dict[str, CheckFactory] = {}
PROBLEMS: dict[str, ProblemFinder] = {}

# kind -> module that registers it; imported on first use so a sidecar loads only what it runs
_MODULES = {
    "drift": "aims_agent.checks.kinds.drift",
    "data_quality": "aims_agent.checks.kinds.quality",
    "performance": "aims_agent.checks.kinds.performance",
    "fairness": "aims_agent.checks.kinds.fairness",
    "intended_use": "aims_agent.checks.kinds.intended_use",
    "estimated_performance": "aims_agent.checks.kinds.estimated_performance",
    "oversight": "aims_agent.checks.kinds.oversight",
}


# kind -> what its monitoring records measure, in a sentence (the record's `check.definition`)
DEFINITIONS: dict[str, str] = {
    "drift": "share of monitored features whose distribution in the window differs from the "
    "reference under each feature's statistical test",
    "data_quality": "share of the window's values per feature that are missing, outside the "
    "reference or configured range, or unseen categories; share of records refused at ingest",
    "performance": "model performance metrics on the window's records that carry ground-truth "
    "labels, against absolute bounds or the reference's own performance",
    "fairness": "gaps in selection rate and error rates between groups of each sensitive "
    "attribute; groups below the minimum size are reported as insufficient data",
    "intended_use": "share of the window's records outside the model's intended-use envelope "
    "(configured or the reference's ranges and categories), missing required fields, and far "
    "from the reference as a whole (robust Mahalanobis distance above the reference's own "
    "quantile)",
    "estimated_performance": "classifier performance estimated without labels from the "
    "model's calibrated scores (confidence-based performance estimation), with a band from the "
    "reference's chunk-to-chunk spread and, where labels arrived, the realised value beside it",
    "oversight": "human oversight of the window's decisions from reviewers' feedback: the share "
    "of decisions needing review that were reviewed, and among reviewed decisions the shares "
    "overridden and escalated, complaints per decision and the median time to review",
}


def register(
    kind: str, *, problems: ProblemFinder | None = None
) -> Callable[[CheckFactory], CheckFactory]:
    """Register a check kind's factory and, optionally, what it finds wrong in a config."""

    def deco(factory: CheckFactory) -> CheckFactory:
        CHECKS[kind] = factory
        if problems is not None:
            PROBLEMS[kind] = problems
        return factory

    return deco


def _load(kind: str) -> None:
    if kind not in _MODULES:
        raise UnknownAliasError("check kind", kind, _MODULES)
    importlib.import_module(_MODULES[kind])


def build_check(settings: CheckConfig, reference: Reference, schema: ModelSchema) -> Check:
    """Instantiate the check kind named by `settings.kind`."""
    _load(settings.kind)
    return CHECKS[settings.kind](settings, reference, schema)


def config_problems(where: str, settings: CheckConfig, schema: SchemaConfig) -> list[str]:
    """What the check kind of `settings` finds wrong with it against the model's schema."""
    _load(settings.kind)
    finder = PROBLEMS.get(settings.kind)
    return [] if finder is None else finder(where, settings, schema)


def schema_columns(schema: SchemaConfig) -> set[str]:
    """Every column name a model's schema declares."""
    names = {*schema.numeric, *schema.categorical, schema.prediction, *schema.sensitive}
    return names | {n for n in (schema.score, schema.label) if n}


def unknown_metrics(where: str, names: Any, known: Any) -> list[str]:
    return [
        f"{where}.metrics.{m}: unknown metric; known: {', '.join(sorted(known))}"
        for m in names
        if m not in known
    ]


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
