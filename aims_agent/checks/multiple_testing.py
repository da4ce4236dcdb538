"""Corrections of a family of p-values for multiple testing, by alias.

Testing 30 features at alpha = 0.05 flags about one and a half by chance in every window;
Bonferroni controls the chance of any false alarm, Benjamini-Hochberg the expected share of
false alarms among the flagged features. NaN p-values (untestable columns) stay NaN and do not
count in the family.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from aims_agent.errors import UnknownAliasError

Correction = Callable[[np.ndarray], np.ndarray]


def _none(p: np.ndarray) -> np.ndarray:
    return p


def _bonferroni(p: np.ndarray) -> np.ndarray:
    return np.asarray(np.minimum(p * len(p), 1.0))


def _benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Adjusted p-values: p_(i) * m / i, made monotone from the largest down, capped at 1."""
    m = len(p)
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


CORRECTIONS: dict[str, Correction] = {
    "none": _none,
    "bonferroni": _bonferroni,
    "benjamini-hochberg": _benjamini_hochberg,
}


def adjust(p_values: list[float], method: str) -> list[float]:
    """The adjusted p-values, in the input order."""
    try:
        correct = CORRECTIONS[method]
    except KeyError:
        raise UnknownAliasError("multiple-testing correction", method, CORRECTIONS) from None
    p = np.asarray(p_values, dtype=np.float64)
    finite = ~np.isnan(p)
    out = p.copy()
    if finite.any():
        out[finite] = correct(p[finite])
    return [float(v) for v in out]
