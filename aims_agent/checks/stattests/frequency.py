"""Tests on category frequencies: `chisquare` and `z` (two-proportion z-test).

Both compare counts over the union of values seen in reference and current. Evidently's
default also runs them on numeric columns with few distinct values, treating each value
as a category, so both have a numeric entry point over the sorted union of values.
"""

from __future__ import annotations

import numpy as np

from aims_agent.checks.stattests._core import (
    CategoricalStats,
    FloatArray,
    IntArray,
    Labels,
    NumericStats,
)
from aims_agent.checks.stattests._counts import Aligned, align_categorical, align_numeric


def _chisquare(al: Aligned, n_ref: int, n_cur: int) -> float:
    """scipy.stats.chisquare(f_obs=current counts, f_exp=reference counts scaled to n_cur).

    A value absent from the reference has expected count 0: the statistic is inf and the
    p-value 0, as in scipy (which also warns about the division; here it is silent).
    """
    f_exp = al.ref * (n_cur / n_ref)
    f_obs = al.cur.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = ((f_obs - f_exp) ** 2 / f_exp).sum()
    from scipy import special  # lazy: keeps an idle sidecar small

    return float(special.chdtrc(np.float64(al.ref.size - 1), stat))


def chisquare_numeric(ref: NumericStats, cur: FloatArray) -> float:
    """Evidently `chisquare` p-value on a numeric column's distinct values."""
    return _chisquare(align_numeric(ref, np.sort(cur)), ref.n, cur.size)


def chisquare_categorical(ref: CategoricalStats, cur: IntArray, labels: Labels) -> float:
    """Evidently `chisquare` p-value on a categorical column."""
    return _chisquare(align_categorical(ref, cur), ref.n, cur.size)


def _z(al: Aligned, first: int, n1: int, n2: int) -> float:
    """Two-sided p-value for the share of values other than key `first` (index into `al`).

    Evidently returns 1 when both sides hold the same single value.
    """
    if al.ref.size == 1:
        return 1.0
    p1 = float(n1 - al.ref[first]) / n1
    p2 = float(n2 - al.cur[first]) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    from scipy import special

    return float(2 * (1 - special.ndtr(np.abs(z))))


def z_numeric(ref: NumericStats, cur: FloatArray) -> float:
    """Evidently `z` p-value on a numeric column: the smallest value against the rest."""
    return _z(align_numeric(ref, np.sort(cur)), 0, ref.n, cur.size)


def z_categorical(ref: CategoricalStats, cur: IntArray, labels: Labels) -> float:
    """Evidently `z` p-value on a categorical column: the first label in sorted order
    against the rest (evidently sorts the labels); the smallest code without `labels`."""
    al = align_categorical(ref, cur)
    first = 0
    if labels is not None:
        first = min(range(al.keys.size), key=lambda i: labels[int(al.keys[i])])
    return _z(al, first, ref.n, cur.size)
