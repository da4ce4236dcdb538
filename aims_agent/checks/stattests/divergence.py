"""Distances between binned distributions: `psi`, `jensenshannon`, `hellinger`.

`psi` and `jensenshannon` use Evidently's `get_binned_data`: numeric columns whose
reference has more than 20 distinct values are cut into Sturges bins over the pooled
sample; anything else (categorical columns, numeric ones with <= 20 values) is compared
value by value over the union of values. `psi` then fills empty cells with a small
epsilon, `jensenshannon` does not. `hellinger` always bins numeric columns, with Sturges
bins over the pooled *distinct* values and density-normalised histograms.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from aims_agent.checks.stattests._core import (
    CategoricalStats,
    FloatArray,
    IntArray,
    Labels,
    NumericStats,
)
from aims_agent.checks.stattests._counts import (
    align_categorical,
    align_numeric,
    fill_zeroes,
    hist_counts,
    sturges_edges,
    union_nunique_numeric,
)

_MAX_VALUES_UNBINNED = 20  # get_binned_data bins a numeric column above this many values


def _numeric_percents(ref: NumericStats, cur: FloatArray) -> tuple[FloatArray, FloatArray] | None:
    """Reference and current shares per bin (or per value); None where numpy cannot bin."""
    cur_sorted = np.sort(cur)
    if ref.uniques.size <= _MAX_VALUES_UNBINNED:
        al = align_numeric(ref, cur_sorted)
        return al.ref / ref.n, al.cur / cur.size
    lo, hi = min(ref.sorted[0], cur_sorted[0]), max(ref.sorted[-1], cur_sorted[-1])
    edges = sturges_edges(lo, hi, ref.n + cur.size)
    if edges is None:
        return None
    return hist_counts(ref.sorted, edges) / ref.n, hist_counts(cur_sorted, edges) / cur.size


def _categorical_percents(ref: CategoricalStats, cur: IntArray) -> tuple[FloatArray, FloatArray]:
    al = align_categorical(ref, cur)
    return al.ref / ref.n, al.cur / cur.size


def _psi(ref_pct: FloatArray, cur_pct: FloatArray) -> float:
    ref_pct, cur_pct = fill_zeroes(ref_pct), fill_zeroes(cur_pct)
    return float(np.sum((ref_pct - cur_pct) * np.log(ref_pct / cur_pct)))


_TINY = sys.float_info.min


def _rel_entr(x: FloatArray, y: FloatArray) -> FloatArray:
    """`scipy.special.rel_entr` (scipy 1.17, xsf: log1p of the relative difference where x / y
    is within (0.5, 2), as accurate as it gets), elementwise with the C library's log1p / log.
    A Python loop: the arrays are a column's categories or histogram bins, and importing
    scipy.special costs 0.13-0.2 s of a one-shot `aims-agent check` (-X importtime)."""
    out = []
    for a, b in zip(x.tolist(), y.tolist(), strict=True):
        if math.isnan(a) or math.isnan(b):
            out.append(math.nan)
        elif a <= 0 or b <= 0:
            out.append(0.0 if a == 0 and b >= 0 else math.inf)
        elif 0.5 < (ratio := a / b) < 2:
            out.append(a * math.log1p((a - b) / b))
        elif _TINY < ratio < math.inf:
            out.append(a * math.log(ratio))
        else:  # the ratio under- or overflowed
            out.append(a * (math.log(a) - math.log(b)))
    return np.asarray(out, dtype=np.float64)


def _js(ref_pct: FloatArray, cur_pct: FloatArray) -> float:
    """`scipy.spatial.distance.jensenshannon(p, q)` (natural log), the same operations in
    numpy with scipy.special's `rel_entr` (`_rel_entr`, bit-equal), without loading scipy;
    NaN where rounding takes the divergence a hair below 0."""
    p = ref_pct / np.sum(ref_pct)
    q = cur_pct / np.sum(cur_pct)
    m = (p + q) / 2.0
    js = np.sum(_rel_entr(p, m)) + np.sum(_rel_entr(q, m))
    with np.errstate(invalid="ignore"):
        return float(np.sqrt(js / 2.0))


def psi_numeric(ref: NumericStats, cur: FloatArray) -> float:
    """Evidently `psi` on a numeric column."""
    pct = _numeric_percents(ref, cur)
    return math.nan if pct is None else _psi(*pct)


def psi_categorical(ref: CategoricalStats, cur: IntArray, labels: Labels) -> float:
    """Evidently `psi` on a categorical column."""
    return _psi(*_categorical_percents(ref, cur))


def js_numeric(ref: NumericStats, cur: FloatArray) -> float:
    """Evidently `jensenshannon` (natural log) on a numeric column."""
    pct = _numeric_percents(ref, cur)
    return math.nan if pct is None else _js(*pct)


def js_categorical(ref: CategoricalStats, cur: IntArray, labels: Labels) -> float:
    """Evidently `jensenshannon` (natural log) on a categorical column."""
    return _js(*_categorical_percents(ref, cur))


def _hellinger(bhattacharyya: float) -> float:
    return math.sqrt(1 - float(np.clip(bhattacharyya, 0, 1)))


def hellinger_numeric(ref: NumericStats, cur: FloatArray) -> float:
    """Evidently `hellinger` on a numeric column: densities on Sturges bins of distinct values.

    The coefficient is summed bin by bin from the left, as evidently's loop does, so a
    distance near 0 (where sqrt(1 - x) amplifies rounding) stays bit-equal.
    """
    cur_sorted = np.sort(cur)
    lo, hi = min(ref.sorted[0], cur_sorted[0]), max(ref.sorted[-1], cur_sorted[-1])
    edges = sturges_edges(lo, hi, union_nunique_numeric(ref, cur_sorted))
    if edges is None:
        return math.nan
    widths = np.diff(edges)
    ref_counts, cur_counts = hist_counts(ref.sorted, edges), hist_counts(cur_sorted, edges)
    h1 = ref_counts / widths / ref_counts.sum()  # np.histogram(..., density=True)
    h2 = cur_counts / widths / cur_counts.sum()
    bin_width = (edges[-1] - edges[0]) / (edges.size - 1)
    total = 0.0
    for term in (np.sqrt(h1 * h2) * bin_width).tolist():
        total += term
    return _hellinger(total)


def hellinger_categorical(ref: CategoricalStats, cur: IntArray, labels: Labels) -> float:
    """Evidently `hellinger` on a categorical column: 1 - sum sqrt(p * q) over categories."""
    ref_pct, cur_pct = _categorical_percents(ref, cur)
    return _hellinger(float(np.sqrt(ref_pct * cur_pct).sum()))
