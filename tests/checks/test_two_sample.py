"""The two-sample tests and robust-scale Wasserstein against scipy, which defines them.

`chi2_contingency` / `g_test` equal `scipy.stats.chi2_contingency` on the 2 x k table of
reference and window counts over the categories seen on either side (Pearson and
`lambda_="log-likelihood"`, Yates at one degree of freedom as scipy's default);
`wasserstein_iqr` / `wasserstein_mad` equal `scipy.stats.wasserstein_distance` over
`scipy.stats.iqr(..., scale="normal")` / `median_abs_deviation(..., scale="normal")`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from aims_agent.checks.stattests import REGISTRY, TWO_SAMPLE, get_stattest, prepare_reference

_codes = st.lists(st.integers(-1, 7), min_size=1, max_size=120).map(
    lambda v: np.array(v, dtype=np.int64)
)


def _table(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """The 2 x k table over categories seen on either side, built independently."""
    r, c = ref[ref >= 0], cur[cur >= 0]
    seen = sorted(set(r.tolist()) | set(c.tolist()))
    return np.array([[np.sum(r == k) for k in seen], [np.sum(c == k) for k in seen]])


def _scipy(ref: np.ndarray, cur: np.ndarray, lambda_: str | None) -> float:
    table = _table(ref, cur)
    if table.shape[1] < 2:
        return 1.0
    return float(stats.chi2_contingency(table, lambda_=lambda_).pvalue)


@settings(max_examples=300, deadline=None)
@given(_codes, _codes, st.sampled_from([("chi2_contingency", None), ("g_test", "log-likelihood")]))
def test_contingency_tests_equal_scipy(ref, cur, test) -> None:
    alias, lambda_ = test
    if not (ref >= 0).any():
        return  # an empty reference is refused before any test runs
    prepared = prepare_reference(ref, kind="categorical", n_categories=5)
    result = REGISTRY[alias].compute(prepared, cur)
    if not (cur >= 0).any():
        assert math.isnan(result.value) and not result.drifted
        return
    expected = _scipy(ref, cur, lambda_)
    assert result.value == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert result.drifted == (expected < 0.05)


def test_unseen_categories_and_empty_cells_are_stated() -> None:
    ref = np.array([0] * 50 + [1] * 30 + [2] * 20)  # category 3 never in the reference
    cur = np.array([0] * 10 + [1] * 5 + [3] * 15)  # category 2 absent from the window
    prepared = prepare_reference(ref, kind="categorical", n_categories=3)
    for alias, lambda_ in (("chi2_contingency", None), ("g_test", "log-likelihood")):
        result = TWO_SAMPLE[alias].compute(prepared, cur)
        assert result.notes["categories"] == 4
        assert result.notes["unseen_in_reference"] == 1
        assert result.notes["absent_from_window"] == 1
        assert result.notes["empty_cells"] == 2
        assert result.notes["dof"] == 3
        assert result.value == pytest.approx(_scipy(ref, cur, lambda_), rel=1e-12)
        assert result.drifted  # a new category taking half the window is drift


def test_two_categories_use_yates_like_scipy() -> None:
    ref = np.array([0] * 40 + [1] * 60)
    cur = np.array([0] * 30 + [1] * 25)
    prepared = prepare_reference(ref, kind="categorical")
    result = TWO_SAMPLE["chi2_contingency"].compute(prepared, cur)
    assert result.notes["yates"] is True
    table = _table(ref, cur)
    assert result.value == pytest.approx(stats.chi2_contingency(table).pvalue, rel=1e-12)
    assert result.value != pytest.approx(
        stats.chi2_contingency(table, correction=False).pvalue, rel=1e-3
    )


def test_numeric_columns_with_few_values_are_tested_per_value() -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.poisson(2.0, 800).astype(float), rng.poisson(2.6, 300).astype(float)
    prepared = prepare_reference(ref, kind="numeric")
    values = np.union1d(ref, cur)
    table = np.array([[np.sum(ref == v) for v in values], [np.sum(cur == v) for v in values]])
    for alias, lambda_ in (("chi2_contingency", None), ("g_test", "log-likelihood")):
        got = get_stattest(alias, "numeric").compute(prepared, cur).value
        assert got == pytest.approx(stats.chi2_contingency(table, lambda_=lambda_).pvalue)


def test_the_one_sample_chisquare_cries_wolf_where_the_contingency_test_does_not() -> None:
    """Same population, 1,000 rows each: evidently's chisquare treats the reference's shares
    as exact; the contingency test knows the reference is a sample too."""
    rng = np.random.default_rng(7)
    shares = rng.dirichlet(np.full(25, 1.5))
    one_sample = two_sample = 0
    for _ in range(40):
        ref, cur = rng.choice(25, 1000, p=shares), rng.choice(25, 1000, p=shares)
        prepared = prepare_reference(ref, kind="categorical", n_categories=25)
        one_sample += REGISTRY["chisquare"].compute(prepared, cur).drifted
        two_sample += REGISTRY["chi2_contingency"].compute(prepared, cur).drifted
    assert two_sample <= 6  # about 5 % of 40, as a level-0.05 test should
    assert one_sample >= 3 * max(two_sample, 1)


_samples = st.lists(
    st.floats(-1e4, 1e4, allow_nan=False, allow_subnormal=False), min_size=1, max_size=80
).map(lambda v: np.array(v, dtype=np.float64))


@settings(max_examples=200, deadline=None)
@given(_samples, _samples)
def test_robust_wasserstein_equals_scipy(ref, cur) -> None:
    prepared = prepare_reference(ref, kind="numeric")
    w1 = stats.wasserstein_distance(ref, cur)
    for alias, scale in (
        ("wasserstein_iqr", stats.iqr(ref, scale="normal")),
        ("wasserstein_mad", stats.median_abs_deviation(ref, scale="normal")),
    ):
        result = TWO_SAMPLE[alias].compute(prepared, cur)
        if scale > 0:
            expected = w1 / scale
            assert result.notes["scale"] == alias.split("_")[1]
        else:
            expected = w1 / max(float(np.std(ref)), 0.001)
            assert str(result.notes["scale"]).startswith("std")
        assert result.value == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_robust_scale_sees_through_heavy_tails() -> None:
    """One extreme value inflates the std tenfold and hides a 0.5 sd shift from the
    std-normed distance; the IQR-normed one still reports it."""
    rng = np.random.default_rng(11)
    ref = np.append(rng.normal(0, 1, 5000), 1000.0)
    cur = rng.normal(0.5, 1, 2000)
    prepared = prepare_reference(ref, kind="numeric")
    assert not REGISTRY["wasserstein"].compute(prepared, cur).drifted
    robust = REGISTRY["wasserstein_iqr"].compute(prepared, cur)
    assert robust.drifted and robust.value > 0.4  # the shift plus the outlier's own mass


@pytest.mark.parametrize("draw", ["normal", "standard_cauchy", "lognormal"])
def test_robust_wasserstein_of_small_windows_equals_scipy(draw) -> None:
    """Windows much smaller than the reference take the O(m log n) integral: same value."""
    rng = np.random.default_rng(21)
    ref, cur = getattr(rng, draw)(size=20_000), getattr(rng, draw)(size=300) + 0.2
    prepared = prepare_reference(ref, kind="numeric")
    w1 = stats.wasserstein_distance(ref, cur)
    got = TWO_SAMPLE["wasserstein_iqr"].compute(prepared, cur).value
    assert got == pytest.approx(w1 / stats.iqr(ref, scale="normal"), rel=1e-9)
    got = TWO_SAMPLE["wasserstein_mad"].compute(prepared, cur).value
    assert got == pytest.approx(w1 / stats.median_abs_deviation(ref, scale="normal"), rel=1e-9)
