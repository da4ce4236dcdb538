"""Shared types: precomputed reference statistics, the result, and the StatTest record.

A reference column is summarised once (`prepare_reference`); every current window is then
compared against that summary, so no test re-sorts or re-counts the reference per call.
Cleaning follows Evidently's `get_one_column_drift`: +/-inf become missing, missing values
are dropped, and an empty reference is an error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from aims_agent.errors import ReferenceDataError, UnknownAliasError
from aims_agent.records import ColumnKind

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.intp]
Labels: TypeAlias = Sequence[str] | None


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class NumericStats:
    """A cleaned numeric reference: sorted values, unique values with counts, std."""

    n: int
    sorted: FloatArray  # ascending, finite values only
    uniques: FloatArray  # ascending
    counts: IntArray  # occurrences of each unique value
    std: float  # population std (ddof=0), computed as pandas does for evidently
    cache: dict[str, object] = field(default_factory=dict)  # robust scales, prefix sums

    @property
    def kind(self) -> ColumnKind:
        return "numeric"


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class CategoricalStats:
    """A cleaned categorical reference: occurrences of each category code."""

    n: int
    counts: IntArray  # counts[code]; codes absent from the reference count 0
    n_unique: int  # categories that occur at least once

    @property
    def kind(self) -> ColumnKind:
        return "categorical"


ReferenceStats: TypeAlias = NumericStats | CategoricalStats


def clean_numeric(values: npt.ArrayLike) -> FloatArray:
    """Float64 copy without NaN and +/-inf (evidently replaces inf by NaN, then drops NaN)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def clean_categorical(codes: npt.ArrayLike) -> IntArray:
    """Integer codes without the missing marker (any negative code)."""
    c = np.asarray(codes).ravel()
    if c.size and not np.issubdtype(c.dtype, np.integer):
        raise TypeError(f"categorical codes must be integers, got {c.dtype}")
    return c[c >= 0].astype(np.intp, copy=False)


def _population_std(x: FloatArray) -> float:
    """`np.std(pd.Series(x))` bit for bit: pandas nanvar = sum((mean - x)**2) / n."""
    with np.errstate(over="ignore", invalid="ignore"):  # beyond 1e154 it is inf, as in pandas
        avg = x.sum(dtype=np.float64) / x.size
        return float(np.sqrt(((avg - x) ** 2).sum(dtype=np.float64) / x.size))


def _prepare_numeric(reference: npt.ArrayLike, n_categories: int | None) -> NumericStats:
    x = clean_numeric(reference)
    if not x.size:
        raise ReferenceDataError("reference column has no finite values")
    std = _population_std(x)  # before sorting: the summation order is evidently's
    x.sort()
    starts = np.flatnonzero(np.concatenate(([True], x[1:] != x[:-1])))
    if starts.size == x.size:  # no ties, as usual for continuous data: share, don't copy
        uniques, counts = x, np.broadcast_to(np.intp(1), x.shape)
    else:
        uniques, counts = x[starts], np.diff(np.append(starts, x.size))
    return NumericStats(n=x.size, sorted=x, uniques=uniques, counts=counts, std=std)


def _prepare_categorical(reference: npt.ArrayLike, n_categories: int | None) -> CategoricalStats:
    c = clean_categorical(reference)
    if not c.size:
        raise ReferenceDataError("reference column has no non-missing values")
    counts = np.bincount(c, minlength=n_categories or 0)
    return CategoricalStats(n=c.size, counts=counts, n_unique=int(np.count_nonzero(counts)))


_PREPARE: dict[str, Callable[[npt.ArrayLike, int | None], ReferenceStats]] = {
    "numeric": _prepare_numeric,
    "categorical": _prepare_categorical,
}


def prepare_reference(
    reference: npt.ArrayLike, *, kind: ColumnKind, n_categories: int | None = None
) -> ReferenceStats:
    """Summarise a reference column once; raises ReferenceDataError if nothing is left.

    `n_categories` (categorical only) sizes the count table to the whole vocabulary.
    """
    try:
        prepare = _PREPARE[kind]
    except KeyError:
        raise UnknownAliasError("column kind", kind, _PREPARE) from None
    return prepare(reference, n_categories)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatResult:
    """One comparison of a current window with the reference."""

    value: float  # p-value for p-value tests, distance otherwise; the verdict is made on it
    p_value: float | None  # set for p-value tests
    drifted: bool
    threshold: float
    n_reference: int  # after dropping missing / inf as evidently does
    n_current: int
    notes: Mapping[str, object] = field(default_factory=dict)  # what the test did with the data


def _unsupported(alias: str, kind: ColumnKind) -> UnknownAliasError:
    from aims_agent.checks.stattests import REGISTRY  # the registry imports this module

    known = (a for a, t in REGISTRY.items() if kind in t.kinds)
    return UnknownAliasError(f"{kind} stattest", alias, known)


# a test's value, or its value and notes on how the data were handled (unseen categories...)
Outcome: TypeAlias = float | tuple[float, dict[str, object]]
NumericFn: TypeAlias = Callable[[NumericStats, FloatArray], Outcome]
CategoricalFn: TypeAlias = Callable[[CategoricalStats, IntArray, Labels], Outcome]


@dataclass(frozen=True, slots=True, kw_only=True)
class StatTest:
    """A drift test as Evidently registers it, computed against precomputed reference stats.

    `kinds` are the column types Evidently accepts the alias for. `chisquare` and `z` are
    categorical-only there, yet Evidently's default picks them for numeric columns with few
    values, so they also carry a numeric implementation.
    """

    alias: str
    kinds: frozenset[ColumnKind]
    is_p_value: bool
    default_threshold: float
    drifted_if: Callable[[float, float], bool]  # (value, threshold) -> drift, as evidently
    numeric: NumericFn | None = None
    categorical: CategoricalFn | None = None
    origin: str = "evidently"  # whose definition: "evidently" (its legacy stattest) or "scipy"
    # how the null quantile of the value shrinks with the window's effective size n:
    # n ** -power (distances on CDFs and root divergences 0.5, psi 1); 0 for p-values
    null_power: float = 0.5
    # the same value computed faster on a clean sample (to rounding), for calibration replicates
    replicate: NumericFn | None = None

    def prepare(
        self, reference: npt.ArrayLike, *, kind: ColumnKind, n_categories: int | None = None
    ) -> ReferenceStats:
        """Summarise the reference once; the result is shared by every test of the column."""
        return prepare_reference(reference, kind=kind, n_categories=n_categories)

    def replicate_value(self, prepared: ReferenceStats, sample: npt.NDArray[np.generic]) -> float:
        """The test's value on an already clean sample (a resampled window)."""
        if self.replicate is not None and isinstance(prepared, NumericStats):
            with np.errstate(all="ignore"):
                out = self.replicate(prepared, sample.astype(np.float64, copy=False))
            return out[0] if isinstance(out, tuple) else out
        return self.compute(prepared, sample).value

    def compute(
        self,
        prepared: ReferenceStats,
        current: npt.ArrayLike,
        *,
        threshold: float | None = None,
        n_categories: int | None = None,
        labels: Labels = None,
    ) -> StatResult:
        """Compare a current window with the prepared reference.

        `labels` (the vocabulary, code -> label) matters only for `z` with more than two
        categories, where evidently tests the first label in sorted order against the rest;
        without it the smallest code stands for that label. `n_categories` is accepted
        for symmetry with `prepare` and is not needed: codes are counted as they come.
        """
        del n_categories
        t = self.default_threshold if threshold is None else float(threshold)
        value: Outcome = math.nan
        # extreme magnitudes overflow to inf / NaN exactly as in evidently; silently here
        with np.errstate(all="ignore"):
            if isinstance(prepared, NumericStats):
                if self.numeric is None:
                    raise _unsupported(self.alias, "numeric")
                xs = clean_numeric(current)
                n_cur = xs.size
                if n_cur:
                    value = self.numeric(prepared, xs)
            else:
                if self.categorical is None:
                    raise _unsupported(self.alias, "categorical")
                cs = clean_categorical(current)
                n_cur = cs.size
                if n_cur:
                    value = self.categorical(prepared, cs, labels)
        notes: dict[str, object] = {}
        if isinstance(value, tuple):
            value, notes = value
        return StatResult(
            notes=notes,
            value=value,
            p_value=value if self.is_p_value else None,
            drifted=bool(self.drifted_if(value, t)),
            threshold=t,
            n_reference=prepared.n,
            n_current=n_cur,
        )
