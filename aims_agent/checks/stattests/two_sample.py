"""Two-sample tests that treat the reference as a sample too, and robust-scale Wasserstein.

Evidently's `chisquare` takes the reference's shares as the exact expected shares of the
window, so a small reference's own sampling noise reads as drift. `chi2_contingency` and
`g_test` test the 2 x k table (reference, current) x categories for homogeneity, as
`scipy.stats.chi2_contingency(table)` and `chi2_contingency(table, lambda_="log-likelihood")`
do (Yates' correction when the table has one degree of freedom, as scipy's default).

The table holds every category seen on either side: a category new in the window (unseen in
the reference) is a column with a zero reference cell, which a contingency test handles;
categories seen on neither side are left out (their expected count would be zero). Both are
stated in the result's notes with the number of empty cells.

`wasserstein_iqr` and `wasserstein_mad` divide W1 by a robust scale of the reference
(`scipy.stats.iqr(ref, scale="normal")`, `scipy.stats.median_abs_deviation(ref,
scale="normal")`), which equals the standard deviation for normal data, so the default
threshold 0.1 means what it means for Evidently's std-normed `wasserstein`, while one extreme
value in a heavy-tailed reference no longer shrinks every distance. Where the robust scale is
0 (a column mostly one value) they fall back to the std (floored at 0.001 as Evidently does),
and say so in the notes.
"""

from __future__ import annotations

import math

import numpy as np

from aims_agent.checks.stattests._core import (
    CategoricalStats,
    FloatArray,
    IntArray,
    Labels,
    NumericStats,
    Outcome,
)
from aims_agent.checks.stattests._counts import (
    Aligned,
    align_categorical,
    align_numeric,
    w1_sorted,
)

_NORMAL_IQR = 1.3489795003921634  # 2 * sqrt(2) * erfinv(0.5): IQR of the standard normal
_NORMAL_MAD = 0.6744897501960817  # its median absolute deviation


def _contingency(al: Aligned, lambda_: float) -> Outcome:
    """p-value of scipy's chi2_contingency on the 2 x k table, and what the table held."""
    observed = np.stack((al.ref, al.cur)).astype(np.float64)
    k = observed.shape[1]
    notes: dict[str, object] = {
        "categories": k,
        "unseen_in_reference": int(np.count_nonzero(al.ref == 0)),
        "absent_from_window": int(np.count_nonzero(al.cur == 0)),
        "empty_cells": int(np.count_nonzero(observed == 0)),
        "dof": k - 1,
    }
    if k < 2:  # one category on both sides: nothing to compare (scipy: dof 0, p = 1)
        return 1.0, notes
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    if k == 2:  # Yates' continuity correction, as scipy applies by default at dof 1
        diff = expected - observed
        observed = observed + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
        notes["yates"] = True
    from scipy import special  # lazy: keeps an idle sidecar small

    if lambda_ == 1:
        stat = float(((observed - expected) ** 2 / expected).sum())
    else:
        stat = float((2.0 * special.xlogy(observed, observed / expected)).sum())
    notes["statistic"] = stat
    return float(special.chdtrc(np.float64(k - 1), stat)), notes


def chi2_contingency_numeric(ref: NumericStats, cur: FloatArray) -> Outcome:
    """Pearson's chi-square test of homogeneity over a numeric column's distinct values."""
    return _contingency(align_numeric(ref, np.sort(cur)), 1.0)


def chi2_contingency_categorical(ref: CategoricalStats, cur: IntArray, labels: Labels) -> Outcome:
    """Pearson's chi-square test of homogeneity over categories (reference x window)."""
    return _contingency(align_categorical(ref, cur), 1.0)


def g_test_numeric(ref: NumericStats, cur: FloatArray) -> Outcome:
    """The G-test (log-likelihood ratio) of homogeneity over a numeric column's values."""
    return _contingency(align_numeric(ref, np.sort(cur)), 0.0)


def g_test_categorical(ref: CategoricalStats, cur: IntArray, labels: Labels) -> Outcome:
    """The G-test (log-likelihood ratio) of homogeneity over categories."""
    return _contingency(align_categorical(ref, cur), 0.0)


def _w1(ref: NumericStats, cur: FloatArray) -> float:
    return w1_sorted(ref.sorted, np.sort(cur))


def w1_prefix(ref: NumericStats, cur_sorted: FloatArray) -> float:
    """W1 between the reference and a sorted sample in O(m log n), from prefix sums of the
    sorted reference; the same integral as `_w1` (equal to rounding), for the many resampled
    windows of a calibration, where the merge's O(n) per window would dominate.

    G(x) = integral of the reference CDF up to x; between consecutive sample values the
    sample's CDF is a constant h and |F - h| integrates in closed form around the reference
    value where F reaches h.
    """
    r, n, m = ref.sorted, ref.n, cur_sorted.size
    prefix = ref.cache.get("prefix")
    if not isinstance(prefix, np.ndarray):
        prefix = np.concatenate(([0.0], np.cumsum(r)))
        ref.cache["prefix"] = prefix

    def g(x: FloatArray, cnt: IntArray) -> FloatArray:  # cnt: reference values <= x
        return np.asarray((cnt * x - prefix[cnt]) / n)

    c = cur_sorted
    cnt_c = r.searchsorted(c, "right")
    g_c = g(c, cnt_c)
    a, b = c[:-1], c[1:]
    j = np.arange(1, m, dtype=np.int64)
    k = -(-(j * n) // m)  # F(x) >= j / m from the k-th smallest reference value on
    x_star = r[k - 1]
    y = np.clip(x_star, a, b)
    # where y is x_star itself, at least k reference values are <= it; count ties past it
    cnt_y = np.where(
        y == x_star, r.searchsorted(y, "right"), np.where(y == a, cnt_c[:-1], cnt_c[1:])
    )
    h = j / m
    ga, gb, gy = g_c[:-1], g_c[1:], g(y, cnt_y)
    middle = (gb - ga - h * (b - a)) + 2 * (h * (y - a) - (gy - ga))
    top = max(r[-1], c[-1])
    g_top = (n * top - prefix[n]) / n  # every reference value is <= top
    ends = g_c[0] + (top - c[-1]) - (g_top - g_c[-1])
    return float(middle.sum() + ends)


def iqr_scale(ref: NumericStats) -> float:
    """`scipy.stats.iqr(ref, scale="normal")`, from the sorted reference (cached)."""
    got = ref.cache.get("iqr")
    if not isinstance(got, float):
        got = ref.cache["iqr"] = (_percentile(ref.sorted, 0.75) - _percentile(ref.sorted, 0.25)) / (
            _NORMAL_IQR
        )
    return got


def _percentile(x: FloatArray, q: float) -> float:
    """numpy's default (linear) percentile of a sorted array, without np.percentile (which
    sorts again and loads numpy.ma)."""
    h = (x.size - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, x.size - 1)
    t = h - lo
    a, b = float(x[lo]), float(x[hi])
    return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t


def mad_scale(ref: NumericStats) -> float:
    """`scipy.stats.median_abs_deviation(ref, scale="normal")` (cached)."""
    got = ref.cache.get("mad")
    if not isinstance(got, float):
        x = ref.sorted
        got = ref.cache["mad"] = float(np.median(np.abs(x - np.median(x))) / _NORMAL_MAD)
    return got


# a window this many times smaller than a large reference: the O(m log n) integral. Its
# rounding error is absolute (eps x the values' magnitude), so only where it pays
_PREFIX_RATIO, _PREFIX_MIN_REFERENCE = 8, 2_000


def _robust(ref: NumericStats, cur: FloatArray, name: str, scale: float) -> Outcome:
    notes: dict[str, object] = {"scale": name, "scale_value": scale}
    if not scale > 0 or not math.isfinite(scale):
        scale = max(ref.std, 0.001)
        notes.update(scale=f"std ({name} is 0)", scale_value=scale)
    small = cur.size * _PREFIX_RATIO <= ref.n and ref.n >= _PREFIX_MIN_REFERENCE
    return (w1_prefix(ref, np.sort(cur)) if small else _w1(ref, cur)) / scale, notes


def wasserstein_iqr(ref: NumericStats, cur: FloatArray) -> Outcome:
    """W1(reference, current) / (IQR of the reference / 1.349)."""
    return _robust(ref, cur, "iqr", iqr_scale(ref))


def wasserstein_mad(ref: NumericStats, cur: FloatArray) -> Outcome:
    """W1(reference, current) / (MAD of the reference / 0.6745)."""
    return _robust(ref, cur, "mad", mad_scale(ref))


def _robust_fast(ref: NumericStats, cur: FloatArray, scale: float) -> float:
    if not scale > 0 or not math.isfinite(scale):
        scale = max(ref.std, 0.001)
    return w1_prefix(ref, np.sort(cur)) / scale


def wasserstein_iqr_fast(ref: NumericStats, cur: FloatArray) -> Outcome:
    """`wasserstein_iqr` through `w1_prefix`, for resampled windows."""
    return _robust_fast(ref, cur, iqr_scale(ref))


def wasserstein_mad_fast(ref: NumericStats, cur: FloatArray) -> Outcome:
    """`wasserstein_mad` through `w1_prefix`, for resampled windows."""
    return _robust_fast(ref, cur, mad_scale(ref))


def wasserstein_std_fast(ref: NumericStats, cur: FloatArray) -> Outcome:
    """Evidently's `wasserstein` (std-normed) through `w1_prefix`, for resampled windows."""
    return w1_prefix(ref, np.sort(cur)) / max(ref.std, 0.001)
