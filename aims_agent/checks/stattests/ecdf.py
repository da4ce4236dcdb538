"""Tests on empirical CDFs of numeric columns: `ks`, `wasserstein`, `anderson`.

Each reproduces the scipy call Evidently makes (`ks_2samp`, `wasserstein_distance` normed
by the reference std, `anderson_ksamp`) with the same floating-point operations on the
same operands, using the reference sorted once in `prepare_reference`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from aims_agent.checks.stattests._core import FloatArray, IntArray, NumericStats
from aims_agent.checks.stattests._counts import (
    Aligned,
    align_numeric,
    unique_sorted,
    w1_sorted,
)

_KS_MAX_EXACT_N = 10000  # ks_2samp(method="auto") is exact up to this sample size


def ks_statistic(ref: NumericStats, cur_sorted: FloatArray) -> float:
    """Two-sided KS distance, evaluated only at current values (O(m log n)).

    Between two current values the current ECDF is flat and the reference ECDF monotone, so
    the extremes of their difference sit at a current value or just before one; those are
    exactly the (count, count) pairs scipy evaluates, so the float result is identical.
    """
    n, m = ref.n, cur_sorted.size
    uniques, counts = unique_sorted(cur_sorted)
    cur_le = np.cumsum(counts)
    at = ref.sorted.searchsorted(uniques, "right") / n - cur_le / m
    before = ref.sorted.searchsorted(uniques, "left") / n - (cur_le - counts) / m
    return float(max(at.max(), before.max(), -at.min(), -before.min()))


def ks_p_value(d: float, n1: int, n2: int) -> float:
    """`ks_2samp(...).pvalue` for statistic d (method="auto", two-sided), without warnings."""
    # scipy.stats costs ~70 MB resident: load it when a KS test first runs, not at start-up
    from scipy.stats import kstwo
    from scipy.stats._stats_py import _attempt_exact_2kssamp

    if max(n1, n2) <= _KS_MAX_EXACT_N:
        ok, d, prob = _attempt_exact_2kssamp(n1, n2, math.gcd(n1, n2), d, "two-sided")
        if ok:
            return float(np.clip(prob, 0, 1))
    big, small = sorted((float(n1), float(n2)), reverse=True)
    en = big * small / (big + small)
    return float(np.clip(kstwo.sf(d, np.round(en)), 0, 1))


def ks(ref: NumericStats, cur: FloatArray) -> float:
    """Evidently `ks`: the p-value of scipy's two-sample KS test."""
    return ks_p_value(ks_statistic(ref, np.sort(cur)), ref.n, cur.size)


def wasserstein(ref: NumericStats, cur: FloatArray) -> float:
    """Evidently `wasserstein`: W1(reference, current) / max(std(reference), 0.001).

    The pooled sample is merged from the presorted reference (`w1_sorted`); the CDF
    arrays may differ from scipy's only inside runs of equal values, where they are
    multiplied by a zero gap, and the integral uses scipy's `np.vecdot`: bit-equal.
    """
    return w1_sorted(ref.sorted, np.sort(cur)) / max(ref.std, 0.001)


@lru_cache(maxsize=64)
def _harmonic_terms(total: int) -> tuple[float, float]:
    """h and g of Scholz & Stephens' variance, which depend on the pooled size only."""
    hs_cs = (1.0 / np.arange(total - 1, 1, -1)).cumsum()
    return float(hs_cs[-1] + 1), float((hs_cs / np.arange(2, total)).sum())


_B0 = np.array([0.675, 1.281, 1.645, 1.96, 2.326, 2.573, 3.085])
_B1 = np.array([-0.245, 0.25, 0.678, 1.149, 1.822, 2.364, 3.615])
_B2 = np.array([-0.105, -0.305, -0.362, -0.391, -0.396, -0.345, -0.154])
_CRITICAL = _B0 + _B1 / math.sqrt(1) + _B2 / 1  # two samples: m = k - 1 = 1
_SIG = np.array([0.25, 0.1, 0.05, 0.025, 0.01, 0.005, 0.001])
_PROBIT_FIT = np.polyfit(_CRITICAL, np.log(_SIG), 2)


def _anderson_statistic(al: Aligned, n1: int, n2: int) -> float:
    """A2akN of `_anderson_ksamp_midrank`, from union counts instead of the pooled sample."""
    total = al.ref + al.cur
    big_n = n1 + n2
    lj: float | IntArray = 1.0 if big_n == al.values.size else total
    bj = (np.cumsum(total) - total) + lj / 2.0
    a2akn = 0.0
    for counts, size in ((al.ref, np.int64(n1)), (al.cur, np.int64(n2))):
        mij = np.cumsum(counts).astype(float)
        mij -= counts / 2.0
        numerator = lj / float(big_n) * (big_n * mij - bj * size) ** 2
        inner = numerator / (bj * (big_n - bj) - big_n * lj / 4.0)
        a2akn += inner.sum() / size
    a2akn *= (big_n - 1.0) / big_n
    return float(a2akn)


def anderson(ref: NumericStats, cur: FloatArray) -> float:
    """Evidently `anderson`: `anderson_ksamp([ref, cur])` p-value, midrank, capped to [.001, .25].

    Where scipy raises (a single distinct value, a pooled size of 2, a negative variance
    estimate) the p-value is NaN, which never signals drift.
    """
    al = align_numeric(ref, np.sort(cur))
    big_n = ref.n + cur.size
    if al.values.size < 2 or big_n < 3:
        return math.nan
    a2kn = _anderson_statistic(al, ref.n, cur.size)
    h, g = _harmonic_terms(big_n)
    k = 2
    big_h = 1.0 / ref.n + 1.0 / cur.size
    a = (4 * g - 6) * (k - 1) + (10 - 6 * g) * big_h
    b = (2 * g - 4) * k**2 + 8 * h * k + (2 * g - 14 * h - 4) * big_h - 8 * h + 4 * g - 6
    c = (6 * h + 2 * g - 2) * k**2 + (4 * h - 4 * g + 6) * k + (2 * h - 6) * big_h + 4 * h
    d = (2 * h + 6) * k**2 - 4 * h * k
    with np.errstate(divide="ignore", invalid="ignore"):
        sigmasq = np.float64(a * big_n**3 + b * big_n**2 + c * big_n + d) / (
            (big_n - 1.0) * (big_n - 2.0) * (big_n - 3.0)
        )
    if sigmasq < 0:
        return math.nan
    a2 = (a2kn - 1) / math.sqrt(sigmasq)
    if a2 < _CRITICAL.min():
        return float(_SIG.max())
    if a2 > _CRITICAL.max():
        return float(_SIG.min())
    return math.exp(np.polyval(_PROBIT_FIT, a2))
