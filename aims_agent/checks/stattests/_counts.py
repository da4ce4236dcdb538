"""Counting and binning shared by the tests, on precomputed reference statistics.

Everything here reproduces what Evidently gets from pandas/numpy on the concatenated
columns (value counts over the union of values, `np.histogram_bin_edges(..., "sturges")`,
`np.histogram` with explicit edges) without touching the reference beyond lookups.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from aims_agent.checks.stattests._core import (
    CategoricalStats,
    FloatArray,
    IntArray,
    NumericStats,
)


class Aligned(NamedTuple):
    """Counts of reference and current over the union of their values, in value order."""

    ref: IntArray
    cur: IntArray
    keys: IntArray  # categorical: the codes; numeric: positions in `values`
    values: FloatArray  # numeric: the sorted union of values; categorical: empty


def unique_sorted(xs: FloatArray) -> tuple[FloatArray, IntArray]:
    """Unique values and counts of an already sorted array (what np.unique does after sorting)."""
    if not xs.size:
        return xs, np.zeros(0, np.intp)
    starts = np.flatnonzero(np.concatenate(([True], xs[1:] != xs[:-1])))
    return xs[starts], np.diff(np.append(starts, xs.size))


def _new_values(ref: NumericStats, uniques: FloatArray) -> tuple[IntArray, FloatArray]:
    """Insertion points into the reference uniques of current values it lacks, and those values."""
    pos = np.searchsorted(ref.uniques, uniques)
    hit = pos < ref.uniques.size
    hit[hit] = ref.uniques[pos[hit]] == uniques[hit]
    return pos[~hit], uniques[~hit]


def align_numeric(ref: NumericStats, cur_sorted: FloatArray) -> Aligned:
    """Counts over the sorted union of values: O(reference uniques + current)."""
    uniques, counts = unique_sorted(cur_sorted)
    pos, new = _new_values(ref, uniques)
    values = np.insert(ref.uniques, pos, new)
    ref_counts = np.insert(ref.counts, pos, 0)
    cur_counts = np.zeros(values.size, np.intp)
    cur_counts[np.searchsorted(values, uniques)] = counts
    return Aligned(ref_counts, cur_counts, np.arange(values.size), values)


def w1_sorted(ref_sorted: FloatArray, cur_sorted: FloatArray) -> float:
    """W1 between two sorted samples: the integral of |F - G| over the pooled sample, as scipy's
    `wasserstein_distance` takes it (the CDFs at each pooled value times the gap to the next,
    summed by `np.vecdot`).

    The pooled order comes from one stable argsort of the two sorted runs (current after
    equal reference values; the CDFs differ from scipy's only inside runs of equal values,
    where the gap is zero), and the reference's count at each value is its position minus
    the current's count: about 2x faster than placing the current by binary search.
    """
    n, m = ref_sorted.size, cur_sorted.size
    pooled = np.concatenate((ref_sorted, cur_sorted))
    order = pooled.argsort(kind="stable")
    # counts in int32 where they fit: numpy's cumsum of booleans into int32 is 3x faster
    cur_count: IntArray = np.cumsum(order[:-1] >= n, dtype=np.int32 if n + m < 2**31 else np.intp)
    position: IntArray = np.arange(1, pooled.size, dtype=cur_count.dtype)
    cdf_gap: FloatArray = (position - cur_count) / n
    cdf_gap -= cur_count / m
    np.abs(cdf_gap, out=cdf_gap)
    return float(np.vecdot(cdf_gap, np.diff(pooled[order])))


def align_categorical(ref: CategoricalStats, cur: IntArray) -> Aligned:
    """Counts of the codes present on either side, in code order."""
    cur_counts = np.bincount(cur, minlength=ref.counts.size)
    ref_counts = ref.counts
    if cur_counts.size > ref_counts.size:
        padding = np.zeros(cur_counts.size - ref_counts.size, np.intp)
        ref_counts = np.concatenate((ref_counts, padding))
    keys = np.flatnonzero((ref_counts > 0) | (cur_counts > 0))
    return Aligned(ref_counts[keys], cur_counts[keys], keys, np.zeros(0))


def union_nunique_numeric(ref: NumericStats, cur_sorted: FloatArray) -> int:
    """`pd.concat([reference, current]).nunique()` for cleaned numeric columns."""
    uniques, _ = unique_sorted(cur_sorted)
    return ref.uniques.size + _new_values(ref, uniques)[1].size


def union_nunique_categorical(ref: CategoricalStats, cur: IntArray) -> int:
    """`pd.concat([reference, current]).nunique()` for cleaned categorical columns."""
    return align_categorical(ref, cur).keys.size


def sturges_edges(lo: float, hi: float, size: int) -> FloatArray | None:
    """`np.histogram_bin_edges(a, bins="sturges")` for data with min lo, max hi, `size` items.

    The bin count is numpy's float computation ceil(range / (ptp / (log2(size) + 1))), not
    ceil(log2(size) + 1): the two differ by one when rounding lands just above an integer.
    None where numpy raises: a range wider than the largest float, or bins too narrow to
    have distinct edges.
    """
    first, last = np.float64(lo), np.float64(hi)
    with np.errstate(over="ignore"):
        width = (last - first) / (np.log2(size) + 1.0)
    if not np.isfinite(width):
        return None
    if first == last:
        first, last = first - 0.5, last + 0.5
    n_bins = int(np.ceil((last - first) / width)) if width else 1
    edges = np.linspace(first, last, n_bins + 1, endpoint=True, dtype=np.float64)
    return edges if bool(np.all(edges[:-1] < edges[1:])) else None


def hist_counts(sorted_x: FloatArray, edges: FloatArray) -> IntArray:
    """`np.histogram(x, edges)[0]` for sorted x: half-open bins, the last one closed."""
    cum = np.concatenate(
        (sorted_x.searchsorted(edges[:-1], "left"), sorted_x.searchsorted(edges[-1:], "right"))
    )
    return np.diff(cum)


def fill_zeroes(percents: FloatArray) -> FloatArray:
    """Evidently's `feel_zeroes`: empty bins get min(non-zero) / 1e6, or 1e-4 if that is larger."""
    zero = percents == 0
    if zero.any():
        smallest = percents[~zero].min()
        percents = percents.copy()
        percents[zero] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return percents
