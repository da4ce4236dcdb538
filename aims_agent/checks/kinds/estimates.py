"""What the label-free performance estimates share: the metric names they publish, and the
threshold that breaches only when the whole band is beyond the limit."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from aims_agent.config import EstimatedPerformanceCheckConfig, Limit
from aims_agent.errors import ConfigError
from aims_agent.records import Measurement, Threshold

PREFIX = "estimated_"  # records and series name the metric estimated_<metric>
NOT_READY = {"status": "training in a child process: not ready yet"}
T = TypeVar("T")


class Training(Generic[T]):
    """A model an estimate trains once on its reference: in the agent's child process (the
    agent calls `submit` at start), or in this process at first use when nobody did (one-shot
    runs, tests). `get()` is None while the child trains; a failed training raises its error
    at every call (each run records it)."""

    def __init__(self, fn: Callable[..., T], *args: Any) -> None:
        self._call: tuple[Callable[..., T], tuple[Any, ...]] | None = (fn, args)
        self.future: Future[T] | None = None
        self._done: T | None = None

    def submit(self, executor: Executor) -> Future[T]:
        assert self._call is not None, "trained already"
        fn, args = self._call
        self.future = executor.submit(fn, *args)
        return self.future

    def get(self) -> T | None:
        if self._done is None:
            if self.future is None:
                assert self._call is not None
                fn, args = self._call
                self._done = fn(*args)
            elif self.future.done():
                self._done = self.future.result()
            else:
                return None
            self._call = None  # the reference's table is not needed any more
        return self._done


def finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def weighted_roc_auc(score: npt.NDArray[np.float64], p: npt.NDArray[np.float64]) -> float:
    """The expected ROC AUC: the weighted Mann-Whitney statistic with each record positive
    with weight p and negative with weight 1 - p, ties in score counted half (the trapezoidal
    area of the expected ROC curve)."""
    pos, neg = float(p.sum()), float((1 - p).sum())
    if not pos or not neg:
        return math.nan
    uniq, inverse = np.unique(score, return_inverse=True)
    w_pos = np.bincount(inverse, weights=p, minlength=len(uniq))
    w_neg = np.bincount(inverse, weights=1 - p, minlength=len(uniq))
    below = np.cumsum(w_neg) - w_neg  # negative weight strictly below each score
    return float((w_pos @ below + 0.5 * (w_pos @ w_neg)) / (pos * neg))


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Estimate:
    """One metric of a window, estimated, with what its record states."""

    metric: str  # as configured: roc_auc, mae, ...
    value: float
    realised: float  # on the window's labelled rows; NaN without
    labelled_rows: int
    scored_rows: int
    method: str
    about: dict[str, Any]  # how it was estimated (calibration, loss model)


MIN_CHUNKS = 4  # the reference is cut into at least this many chunks for the band's spread


def chunk_rows(cfg: EstimatedPerformanceCheckConfig, n_reference: int) -> int:
    """Rows per reference chunk: `chunk_size`, fewer where the reference is small."""
    return min(cfg.chunk_size, max(1, n_reference // MIN_CHUNKS))


class Banded(Protocol):
    """An estimate check as its band sees it: per metric the reference's realised value and
    chunk-to-chunk spread, over chunks of `chunk` of its `n_reference` labelled rows."""

    @property
    def id(self) -> str: ...
    @property
    def cfg(self) -> EstimatedPerformanceCheckConfig: ...
    @property
    def n_reference(self) -> int: ...
    @property
    def chunk(self) -> int: ...
    @property
    def sigma(self) -> Mapping[str, float]: ...
    @property
    def reference_value(self) -> Mapping[str, float]: ...


def estimate_measurement(check: Banded, est: Estimate) -> Measurement:
    """The record of an estimate: its band (`band_sigmas` x the reference's chunk-to-chunk
    spread scaled to the window), the threshold that breaches only with the whole band beyond
    the limit, the realised value and the estimate's error."""
    cfg, chunk, n_reference = check.cfg, check.chunk, check.n_reference
    chunk_sigma, reference_value = check.sigma[est.metric], check.reference_value[est.metric]
    n = est.scored_rows
    sigma = chunk_sigma * math.sqrt(chunk / n) if n else math.nan
    half = cfg.band_sigmas * sigma
    threshold, bound = band_threshold(
        cfg.metrics[est.metric], est.value, half, reference_value, cfg.min_samples
    )
    params: dict[str, Any] = {
        "band_low": finite(est.value - half),
        "band_high": finite(est.value + half),
        "sigma": finite(sigma),
        "limit": finite(bound),
        **est.about,
        "reference_value": finite(reference_value),
        "reference_rows": n_reference,
        "chunk_size": chunk,
        "labelled_rows": est.labelled_rows,
        "realised_value": finite(est.realised),
        "estimate_error": finite(est.value - est.realised),
    }
    return Measurement(
        check_id=check.id,
        kind="estimated_performance",
        metric=PREFIX + est.metric,
        value=est.value,
        method=est.method,
        params=params,
        n_reference=n_reference,
        n_current=n,
        threshold=threshold,
        headline=True,
    )


def label_and_prediction(check_id: str, schema: Any, reference: Any) -> tuple[str, str]:
    """The label and prediction columns of an estimate trained on the reference's labels;
    ConfigError if the schema or the reference has no label."""
    roles = {c.source: c.name for c in schema.columns if c.source in ("label", "prediction")}
    if "label" not in roles or roles["label"] not in reference.columns:
        raise ConfigError([f"checks.{check_id}: the reference needs its labels (schema.label)"])
    return roles["label"], roles["prediction"]
