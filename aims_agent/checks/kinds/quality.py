"""Data quality of every feature: missing values, values out of range, unseen categories.

Per feature the check measures the share of the window's rows with a missing value, and
- for a numeric feature, the share of present values outside its range: the configured
  `bounds` (absolute; `relative: true` is read as absolute too, a range has no reference
  value to be relative to) or else the reference's finite [min, max]. +/-inf is always out of
  range; a reference without a finite value gives the range (-inf, inf).
- for a categorical feature, the share of present values whose category the reference never
  had (window codes >= the size of the reference vocabulary).

For the whole data set it measures the share of records that ingest refused in the window.
Every share breaches strictly above its configured maximum and warns above `warn_fraction`
of it; each one is a headline, since any of them is a quality failure. A share over no rows
is NaN, which the judge reports as insufficient data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from aims_agent.checks.base import Reference, register
from aims_agent.config import Limit, QualityCheckConfig, SchemaConfig
from aims_agent.records import ColumnKind, Measurement, Threshold, WindowData
from aims_agent.schema import ModelSchema

Array: TypeAlias = npt.NDArray[Any]  # float64 values or int32 codes
Params: TypeAlias = dict[str, object]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Feature:
    """One feature with what the reference says about it, summarised once."""

    name: str
    kind: ColumnKind
    lo: float = -math.inf  # numeric: the accepted range, inclusive
    hi: float = math.inf
    range_source: str = "none"  # "config", "reference" or "none"
    n_known: int = 0  # categorical: categories of the reference vocabulary


@dataclass(frozen=True, slots=True, kw_only=True)
class _Share:
    """`hits` of `n` judged rows, with how they were counted."""

    metric: str
    hits: int
    n: int
    method: str
    params: Params

    @property
    def value(self) -> float:
        return self.hits / self.n if self.n else math.nan


# how each kind marks a missing value: NaN for numbers, code -1 for categories
_ABSENT: dict[ColumnKind, Callable[[Array], npt.NDArray[np.bool_]]] = {
    "numeric": np.isnan,
    "categorical": lambda codes: codes < 0,
}


def _missing(feature: _Feature, values: Array) -> _Share:
    hits = int(np.count_nonzero(_ABSENT[feature.kind](values)))
    return _Share(
        metric="missing_share",
        hits=hits,
        n=len(values),
        method="share of rows with a missing value",
        params={"missing": hits},
    )


def _out_of_range(feature: _Feature, values: Array) -> _Share:
    x = values[~np.isnan(values)].astype(np.float64, copy=False)
    out = ~np.isfinite(x) | (x < feature.lo) | (x > feature.hi)
    hits = int(np.count_nonzero(out))
    return _Share(
        metric="out_of_range_share",
        hits=hits,
        n=len(x),
        method="share of present values outside [min, max]",
        params={
            "min": feature.lo if math.isfinite(feature.lo) else None,
            "max": feature.hi if math.isfinite(feature.hi) else None,
            "range_source": feature.range_source,
            "out_of_range": hits,
        },
    )


def _unseen(feature: _Feature, values: Array) -> _Share:
    present = values[values >= 0]
    hits = int(np.count_nonzero(present >= feature.n_known))
    return _Share(
        metric="unseen_category_share",
        hits=hits,
        n=len(present),
        method="share of present values in a category the reference never had",
        params={"reference_categories": feature.n_known, "unseen": hits},
    )


# the metrics each kind of feature gets, in the order they are reported
_METRICS: dict[ColumnKind, tuple[Callable[[_Feature, Array], _Share], ...]] = {
    "numeric": (_missing, _out_of_range),
    "categorical": (_missing, _unseen),
}


def _reference_range(values: Array) -> tuple[float, float, str]:
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not len(x):
        return -math.inf, math.inf, "none"
    return float(x.min()), float(x.max()), "reference"


def _configured_range(limit: Limit) -> tuple[float, float, str]:
    lo = -math.inf if limit.min is None else limit.min
    hi = math.inf if limit.max is None else limit.max
    return lo, hi, "config"


def _problems(where: str, check: QualityCheckConfig, schema: SchemaConfig) -> list[str]:
    return [
        f"{where}.bounds.{c}: not a numeric feature of the schema"
        for c in check.bounds
        if c not in schema.numeric
    ]


@register("data_quality", problems=_problems)
class QualityCheck:
    kind = "data_quality"

    def __init__(self, cfg: QualityCheckConfig, reference: Reference, schema: ModelSchema) -> None:
        self.id = cfg.id
        self.cfg = cfg
        self.n_reference = reference.n_rows
        self.features: list[_Feature] = []
        for col in schema.columns:
            if col.source != "feature":
                continue
            if col.kind == "categorical":
                known = len(reference.vocabularies.get(col.name, ()))
                self.features.append(_Feature(name=col.name, kind=col.kind, n_known=known))
                continue
            limit = cfg.bounds.get(col.name)
            lo, hi, source = (
                _configured_range(limit)
                if limit is not None
                else _reference_range(reference.columns.get(col.name, np.empty(0)))
            )
            self.features.append(
                _Feature(name=col.name, kind=col.kind, lo=lo, hi=hi, range_source=source)
            )
        self.thresholds = {
            "missing_share": self._threshold(cfg.max_missing_share),
            "out_of_range_share": self._threshold(cfg.max_out_of_range_share),
            "unseen_category_share": self._threshold(cfg.max_unseen_category_share),
            "rejected_share": self._threshold(cfg.max_rejected_share),
        }

    def _threshold(self, breach: float) -> Threshold:
        warn = self.cfg.warn_fraction * breach
        return Threshold(
            breach=breach,
            direction="above",
            inclusive=False,
            warn=None if warn == breach else warn,
            min_samples=self.cfg.min_samples,
        )

    def _measurement(self, share: _Share, feature: str | None) -> Measurement:
        return Measurement(
            check_id=self.id,
            kind=self.kind,
            metric=share.metric,
            feature=feature,
            value=share.value,
            method=share.method,
            params=share.params,
            n_reference=self.n_reference,
            n_current=share.n,
            threshold=self.thresholds[share.metric],
            headline=True,
        )

    def run(self, window: WindowData) -> list[Measurement]:
        out: list[Measurement] = []
        for feature in self.features:
            values = np.asarray(window.columns[feature.name])
            out += [
                self._measurement(metric(feature, values), feature.name)
                for metric in _METRICS[feature.kind]
            ]
        info = window.info
        rejected = _Share(
            metric="rejected_share",
            hits=info.rejected,
            n=info.seen + info.rejected,
            method="share of records refused at ingest",
            params={"rejected": info.rejected, "accepted": info.seen},
        )
        out.append(self._measurement(rejected, None))
        return out
