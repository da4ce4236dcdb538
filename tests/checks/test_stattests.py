"""The fast stattests against their oracles: Evidently 0.7.23's legacy stattests and scipy.

Every comparison feeds Evidently the columns as `get_one_column_drift` does (inf -> NaN,
NaN dropped) and our functions the agent's encoding (float64 with NaN; int codes with -1).
Numeric columns reach Evidently as float64, the dtype the agent stores them in.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial import distance

from aims_agent.checks.stattests import (
    STATTESTS,
    ReferenceStats,
    StatResult,
    StatTest,
    default_stattest,
    get_stattest,
    prepare_reference,
)
from aims_agent.checks.stattests._counts import hist_counts, sturges_edges, w1_sorted
from aims_agent.errors import ReferenceDataError, UnknownAliasError
from aims_agent.records import ColumnKind

with warnings.catch_warnings():
    # importing evidently pulls in its UI stack, whose litestar dependency warns about its
    # own deprecated API at import time; nothing of ours runs here
    warnings.simplefilter("ignore", DeprecationWarning)
    from evidently.legacy.calculations.stattests import registry as ev_registry
    from evidently.legacy.core import ColumnType

REL = 1e-9
ABS = 1e-12
# our Wasserstein and Anderson-Darling follow scipy 1.17 operation for operation (np.vecdot,
# anderson_ksamp's `variant`), so they are bit-equal to it; the oldest scipy the package
# declares (scripts/oldest.sh) sums in another order: equal there to the last bit or two
SCIPY_117 = tuple(int(p) for p in scipy.__version__.split(".")[:2]) >= (1, 17)


def same(ours: float, theirs: float) -> bool:
    """Bit-equal on scipy 1.17; within 1e-12 relative on older scipy."""
    return ours == theirs if SCIPY_117 else ours == pytest.approx(theirs, rel=1e-12, abs=0)


FEATURE_TYPE = {"numeric": ColumnType.Numerical, "categorical": ColumnType.Categorical}


# --- helpers -------------------------------------------------------------------------------


@cache
def _frames(gen: ModuleType, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    return gen.make(n, 42, False), gen.make(n, 43, True)


def _evidently_clean(values: pd.Series) -> pd.Series:
    """What `get_one_column_drift` hands the stattest."""
    return values.replace([-np.inf, np.inf], np.nan).dropna()


def _codes(ref: Sequence[Any], cur: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The agent's encoding: sorted reference labels first, new labels appended as seen."""
    vocab = sorted({v for v in ref if v is not None})
    vocab += list(dict.fromkeys(v for v in cur if v is not None and v not in set(vocab)))
    index = {v: i for i, v in enumerate(vocab)}

    def encode(values: Sequence[Any]) -> np.ndarray:
        return np.array([-1 if v is None else index[v] for v in values], dtype=np.int64)

    return encode(ref), encode(cur), vocab


def _evidently_test(alias: str, kind: ColumnKind) -> ev_registry.StatTest:
    # chisquare and z are registered for categorical columns only, but Evidently's default
    # runs them on numeric columns too: look them up as categorical, call them as numeric
    lookup = "categorical" if alias in {"chisquare", "z"} else kind
    return ev_registry.get_registered_stattest(alias, FEATURE_TYPE[lookup])


def _oracle(
    alias: str, ref: pd.Series, cur: pd.Series, kind: ColumnKind, threshold: float | None = None
) -> tuple[float, bool] | None:
    """Evidently's (value, drifted), or None where Evidently raises ValueError."""
    test = _evidently_test(alias, kind)
    t = test.default_threshold if threshold is None else threshold
    ref, cur = _evidently_clean(ref), _evidently_clean(cur)
    # scipy warns inside the oracle (anderson's `variant` notice and capped p-values,
    # chisquare's division by an expected count of 0): only our side must stay silent
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value, drifted = test.func(ref.copy(), cur.copy(), FEATURE_TYPE[kind], t)
        except ValueError:
            return None
    return float(value), bool(drifted)


def _oracle_default(ref: pd.Series, cur: pd.Series, kind: ColumnKind) -> str:
    chosen = ev_registry.get_stattest(
        _evidently_clean(ref), _evidently_clean(cur), FEATURE_TYPE[kind], None
    )
    return str(chosen.name)


def _assert_same(ours: StatResult, oracle: tuple[float, bool] | None, test: StatTest) -> None:
    if oracle is None or math.isnan(oracle[0]):
        assert math.isnan(ours.value)
        assert ours.drifted is False
        return
    value, drifted = oracle
    assert ours.value == pytest.approx(value, rel=REL, abs=ABS)
    assert ours.drifted is drifted
    assert ours.p_value == (ours.value if test.is_p_value else None)


def _applicable(kind: ColumnKind) -> list[str]:
    """Aliases accepted for the kind, plus chisquare / z that the default runs on numbers."""
    return [a for a, t in STATTESTS.items() if kind in t.kinds or a in {"chisquare", "z"}]


def _check_column(
    kind: ColumnKind, ref: Sequence[Any] | np.ndarray, cur: Sequence[Any] | np.ndarray
) -> None:
    """All applicable tests and the default choice on one column, against Evidently."""
    prepared: ReferenceStats
    labels: list[str] | None = None
    if kind == "numeric":
        ref_arr = np.asarray(ref, dtype=np.float64)
        cur_arr = np.asarray(cur, dtype=np.float64)
        ref_s, cur_s = pd.Series(ref_arr), pd.Series(cur_arr)
        prepared = prepare_reference(ref_arr, kind=kind)
        current: np.ndarray = cur_arr
    else:
        ref_codes, current, labels = _codes(list(ref), list(cur))
        ref_s, cur_s = pd.Series(list(ref), dtype=object), pd.Series(list(cur), dtype=object)
        prepared = prepare_reference(ref_codes, kind=kind)
    for alias in _applicable(kind):
        test = STATTESTS[alias]
        ours = test.compute(prepared, current, labels=labels)
        _assert_same(ours, _oracle(alias, ref_s, cur_s, kind), test)
        assert ours.n_reference == _evidently_clean(ref_s).size
        assert ours.n_current == _evidently_clean(cur_s).size
    assert default_stattest(prepared, current).alias == _oracle_default(ref_s, cur_s, kind)


# --- the workload (bench/workload.py) ------------------------------------------------------


@pytest.mark.parametrize("n", [5000, 500], ids=["n5000-large-ref", "n500-small-ref"])
def test_workload_columns_match_evidently(gen: ModuleType, n: int) -> None:
    ref, cur = _frames(gen, n)
    for column in ref.columns:
        kind: ColumnKind = "categorical" if ref[column].dtype == object else "numeric"
        _check_column(kind, ref[column].tolist(), cur[column].tolist())


@pytest.mark.parametrize("n", [5000, 500])
def test_verdict_direction_at_the_threshold(gen: ModuleType, n: int) -> None:
    """With the threshold set to the value itself, `<=`, `<` and `>=` must agree.

    Numeric columns only: there every test is bit-equal to Evidently, so the tie is exact
    (on categorical columns Evidently sums in the order of a Python set of labels, which
    changes with the process's hash seed, so its last bit is not reproducible anyway).
    """
    ref, cur = _frames(gen, n)
    for column in ("num_00", "num_07", "target"):
        ref_arr, cur_arr = ref[column].to_numpy(float), cur[column].to_numpy(float)
        prepared = prepare_reference(ref_arr, kind="numeric")
        for alias in _applicable("numeric"):
            value = STATTESTS[alias].compute(prepared, cur_arr).value
            ours = STATTESTS[alias].compute(prepared, cur_arr, threshold=value)
            oracle = _oracle(
                alias, pd.Series(ref_arr), pd.Series(cur_arr), "numeric", threshold=value
            )
            assert oracle is not None
            assert same(oracle[0], value), alias
            if oracle[0] == value:  # a tie only where the two are bit-equal
                assert ours.drifted is oracle[1], alias


def test_prepared_reference_is_reused_across_windows(gen: ModuleType) -> None:
    ref, cur = _frames(gen, 5000)
    columns: tuple[tuple[str, ColumnKind], ...] = (("num_01", "numeric"), ("cat_1", "categorical"))
    for column, kind in columns:
        ref_codes, cur_codes, labels = _codes(ref[column].tolist(), cur[column].tolist())
        ref_arr, cur_arr = (
            (ref[column].to_numpy(float), cur[column].to_numpy(float))
            if kind == "numeric"
            else (ref_codes, cur_codes)
        )
        prepared = prepare_reference(ref_arr, kind=kind)
        for start, stop in ((0, 100), (100, 1100), (1100, 1101), (2000, 5000)):
            window = cur[column].iloc[start:stop]
            for alias in _applicable(kind):
                ours = STATTESTS[alias].compute(prepared, cur_arr[start:stop], labels=labels)
                oracle = _oracle(alias, ref[column], window.reset_index(drop=True), kind)
                _assert_same(ours, oracle, STATTESTS[alias])


# --- edge cases ----------------------------------------------------------------------------

_rng = np.random.default_rng(7)
_NAN_INF_REF = np.concatenate([_rng.normal(0, 1, 300), [np.nan] * 20, [np.inf, -np.inf] * 5])
_NAN_INF_CUR = np.concatenate([[np.inf, np.nan, -np.inf], _rng.normal(0.3, 1, 200), [np.nan]])
_LABELS_500 = [f"lbl_{i:03d}" for i in range(500)]
_UNICODE = ["é", "日本", "🙂", "Ω", "a", "Z", "ß", "ñ"]

NUMERIC_EDGES: dict[str, tuple[Any, Any]] = {
    "nan-and-inf-mixed": (_NAN_INF_REF, _NAN_INF_CUR),
    "nan-inf-large-ref": (np.tile(_NAN_INF_REF, 4), _NAN_INF_CUR),
    "constant-same": ([3.0] * 40, [3.0] * 25),
    "constant-different": ([3.0] * 40, [4.0] * 25),
    "constant-reference": ([3.0] * 1500, _rng.normal(3, 1, 60)),
    "constant-zero-std-large": ([0.0] * 1200, [0.0] * 10 + [1e-9]),
    "tiny-n3": ([1.0, 2.0, 3.5], [0.5, 2.5, 4.0]),
    "tiny-n3-ties": ([1.0, 1.0, 2.0], [1.0, 2.0, 2.0]),
    "booleans-01": (_rng.random(800) < 0.3, _rng.random(600) < 0.45),
    "booleans-01-large": (_rng.random(3000) < 0.3, _rng.random(900) < 0.3),
    "ints-4-values": (_rng.integers(1, 5, 700), _rng.integers(1, 5, 400)),
    "ints-5-then-6-values": (_rng.integers(0, 5, 700), _rng.integers(0, 6, 400)),
    "ints-2-then-3-values": (_rng.integers(0, 2, 700), _rng.integers(0, 3, 400)),
    "ints-few-values-large": (_rng.integers(0, 5, 4000), _rng.integers(0, 5, 700)),
    "ints-20-values": (_rng.integers(0, 20, 3000), _rng.integers(0, 25, 700)),
    "ints-21-values": (_rng.integers(0, 21, 3000), _rng.integers(0, 21, 700)),
    "ref-1000-rows": (_rng.normal(0, 1, 1000), _rng.normal(0, 1, 300)),
    "ref-1001-rows": (_rng.normal(0, 1, 1001), _rng.normal(0, 1, 300)),
    "negative-zero": ([-0.0, 0.0, 1.0, 2.0] * 30, [0.0, -0.0, 2.0] * 20),
    "heavy-tail": (_rng.standard_cauchy(2000), _rng.standard_cauchy(500) * 2),
    "huge-magnitudes": (_rng.normal(0, 1e200, 300), _rng.normal(0, 1e200, 200)),
    "range-wider-than-float-max": (np.r_[_rng.normal(0, 1, 100), -1.5e308, 1.5e308], [0.0, 1.0]),
    "unequal-sizes-asymptotic-ks": (_rng.normal(0, 1, 12000), _rng.normal(0.02, 1, 700)),
}

CATEGORICAL_EDGES: dict[str, tuple[Any, Any]] = {
    "single-category": (["a"] * 50, ["a"] * 30),
    "single-category-large": (["a"] * 1500, ["a"] * 30),
    "two-categories": (list(_rng.choice(["x", "y"], 600)), list(_rng.choice(["x", "y"], 200))),
    "new-category-in-current": (["a", "b"] * 100, ["a", "b", "c"] * 30),
    "only-new-categories": (["a", "b"] * 100, ["c", "d"] * 30),
    "category-only-in-reference": (["a", "b", "c", "d"] * 100, ["a", "b"] * 40),
    "category-only-in-reference-large": (["a", "b", "c"] * 600, ["a", "b"] * 40),
    "missing-values": (["a", None, "b", "c", None] * 60, [None, "a", "c", "c"] * 30),
    "high-cardinality-500": (
        list(_rng.choice(_LABELS_500, 20000)),
        list(_rng.choice(_LABELS_500[:450], 3000)),
    ),
    "high-cardinality-500-small": (
        list(_rng.choice(_LABELS_500, 900)),
        list(_rng.choice(_LABELS_500, 400)),
    ),
    "unicode-labels": (list(_rng.choice(_UNICODE[:6], 700)), list(_rng.choice(_UNICODE, 300))),
    "unicode-labels-large": (
        list(_rng.choice(_UNICODE[:6], 3000)),
        list(_rng.choice(_UNICODE, 300)),
    ),
    "z-new-label-sorts-first": (["m", "n", "o"] * 100, ["A", "m", "n", "o", "o"] * 30),
    "tiny-n3": (["a", "b", "a"], ["b", "c", "b"]),
}


@pytest.mark.parametrize("name", list(NUMERIC_EDGES))
def test_numeric_edge_cases_match_evidently(name: str) -> None:
    ref, cur = NUMERIC_EDGES[name]
    _check_column("numeric", np.asarray(ref, dtype=np.float64), np.asarray(cur, np.float64))


@pytest.mark.parametrize("name", list(CATEGORICAL_EDGES))
def test_categorical_edge_cases_match_evidently(name: str) -> None:
    ref, cur = CATEGORICAL_EDGES[name]
    _check_column("categorical", ref, cur)


@pytest.mark.parametrize("alias", list(STATTESTS))
@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_empty_current_window_is_nan_and_not_drifted(alias: str, kind: ColumnKind) -> None:
    test = STATTESTS[alias]
    if kind == "numeric":
        prepared = prepare_reference(_rng.normal(size=50), kind=kind)
        empty = np.array([np.nan, np.inf, -np.inf])
    else:
        prepared = prepare_reference(np.array([0, 1, 1, 2]), kind=kind)
        empty = np.array([-1, -1], dtype=np.int64)
    if kind not in test.kinds and alias not in {"chisquare", "z"}:
        with pytest.raises(UnknownAliasError):
            test.compute(prepared, empty)
        return
    for current in (empty, empty[:0]):
        result = test.compute(prepared, current)
        assert math.isnan(result.value)
        assert result.drifted is False
        assert result.n_current == 0
        assert result.n_reference == prepared.n
        assert (result.p_value is None) is (not test.is_p_value)
    assert default_stattest(prepared, empty).alias in STATTESTS


@pytest.mark.parametrize(
    ("kind", "values"),
    [("numeric", [np.nan, np.inf, -np.inf]), ("numeric", []), ("categorical", [-1, -1])],
)
def test_empty_reference_is_rejected(kind: ColumnKind, values: list[float]) -> None:
    with pytest.raises(ReferenceDataError):
        prepare_reference(np.array(values), kind=kind)


def test_z_uses_the_first_label_in_sorted_order() -> None:
    """Evidently's z-test compares the first label in sorted order against the rest."""
    ref = ["m", "n", "o"] * 100
    cur = ["A", "m", "n", "o", "o"] * 30
    ref_codes, cur_codes, labels = _codes(ref, cur)
    prepared = prepare_reference(ref_codes, kind="categorical")
    oracle = _oracle("z", pd.Series(ref), pd.Series(cur), "categorical")
    assert oracle is not None
    with_labels = STATTESTS["z"].compute(prepared, cur_codes, labels=labels)
    assert with_labels.value == pytest.approx(oracle[0], rel=REL, abs=ABS)
    # without labels the smallest code ("m") stands in for the first label
    without = STATTESTS["z"].compute(prepared, cur_codes)
    assert without.value != pytest.approx(oracle[0], rel=REL, abs=ABS)


# --- registry ------------------------------------------------------------------------------


def test_registry_matches_evidently() -> None:
    kinds = {ColumnType.Numerical: "numeric", ColumnType.Categorical: "categorical"}
    for alias, test in STATTESTS.items():
        ev = _evidently_test(alias, next(iter(test.kinds)))
        assert ev.name == alias == test.alias
        assert test.default_threshold == ev.default_threshold
        assert test.kinds == {kinds[t] for t in ev.allowed_feature_types}


def test_get_stattest() -> None:
    assert get_stattest("ks", "numeric") is STATTESTS["ks"]
    assert get_stattest("psi", "categorical") is STATTESTS["psi"]
    for alias, kind in (("nope", "numeric"), ("ks", "categorical"), ("chisquare", "numeric")):
        with pytest.raises(UnknownAliasError) as info:
            get_stattest(alias, kind)  # type: ignore[arg-type]
        assert info.value.alias == alias
    with pytest.raises(
        UnknownAliasError,
        match="known: chi2_contingency, chisquare, g_test, hellinger, jensenshannon, psi, z$",
    ):
        get_stattest("ks", "categorical")


def test_stattest_prepare_is_the_shared_reference_summary() -> None:
    ref = _rng.normal(size=100)
    a = STATTESTS["ks"].prepare(ref, kind="numeric")
    b = prepare_reference(ref, kind="numeric")
    cur = _rng.normal(size=40)
    assert STATTESTS["wasserstein"].compute(a, cur) == STATTESTS["wasserstein"].compute(b, cur)


def test_categorical_codes_must_be_integers() -> None:
    with pytest.raises(TypeError):
        prepare_reference(np.array([0.0, 1.0]), kind="categorical")


def test_unknown_column_kind_is_rejected() -> None:
    with pytest.raises(UnknownAliasError):
        prepare_reference(np.array([0.0]), kind="text")  # type: ignore[arg-type]


def test_int32_codes_give_the_same_results() -> None:
    """The window stores codes as int32; the width of the integer must not matter."""
    ref = _rng.integers(-1, 6, 400)
    cur = _rng.integers(-1, 8, 300)
    wide = prepare_reference(ref, kind="categorical", n_categories=6)
    narrow = prepare_reference(ref.astype(np.int32), kind="categorical", n_categories=6)
    for alias in _applicable("categorical"):
        test = STATTESTS[alias]
        expected = test.compute(wide, cur, n_categories=8)
        assert test.compute(narrow, cur.astype(np.int32), n_categories=8) == expected


# --- scipy / numpy directly ----------------------------------------------------------------


def _float_arrays(min_size: int = 1) -> st.SearchStrategy[np.ndarray]:
    """Float samples, sometimes from a handful of values so that ties occur."""
    continuous = st.lists(
        st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
        min_size=min_size,
        max_size=80,
    )
    tied = st.lists(st.sampled_from([-2.0, -0.5, 0.0, 1.0, 3.25]), min_size=min_size, max_size=80)
    return st.one_of(continuous, tied).map(lambda v: np.array(v, dtype=np.float64))


def _scipy_quiet(fn: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's own notices, not ours
        return fn()


@settings(max_examples=200, deadline=None)
@given(_float_arrays(), _float_arrays())
def test_ks_equals_scipy(ref: np.ndarray, cur: np.ndarray) -> None:
    ours = STATTESTS["ks"].compute(prepare_reference(ref, kind="numeric"), cur)
    assert ours.value == _scipy_quiet(lambda: stats.ks_2samp(ref, cur).pvalue)


@settings(max_examples=200, deadline=None)
@given(_float_arrays(), _float_arrays())
def test_wasserstein_equals_scipy(ref: np.ndarray, cur: np.ndarray) -> None:
    ours = STATTESTS["wasserstein"].compute(prepare_reference(ref, kind="numeric"), cur)
    expected = stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001)
    assert ours.value == pytest.approx(expected, rel=REL, abs=ABS)


@settings(max_examples=300, deadline=None)
@given(_float_arrays(), _float_arrays())
def test_w1_of_sorted_samples_is_scipys_bit_for_bit(ref: np.ndarray, cur: np.ndarray) -> None:
    """The integral `wasserstein` and the robust-scale tests share: scipy's own floats, ties
    and all (the pooled order differs from scipy's only where the gap is zero)."""
    assert w1_sorted(np.sort(ref), np.sort(cur)) == stats.wasserstein_distance(ref, cur)


@settings(max_examples=150, deadline=None)
@given(_float_arrays(min_size=2), _float_arrays(min_size=2))
def test_anderson_equals_scipy(ref: np.ndarray, cur: np.ndarray) -> None:
    ours = STATTESTS["anderson"].compute(prepare_reference(ref, kind="numeric"), cur)
    if np.unique(np.concatenate([ref, cur])).size < 2:
        assert math.isnan(ours.value)
        return
    midrank = {"variant": "midrank"} if SCIPY_117 else {"midrank": True}
    expected = _scipy_quiet(lambda: stats.anderson_ksamp([ref, cur], **midrank).pvalue)
    assert ours.value == pytest.approx(expected, rel=REL, abs=ABS)


@settings(max_examples=100, deadline=None)
@given(_float_arrays(), _float_arrays())
def test_numeric_distances_equal_evidently_on_random_samples(
    ref: np.ndarray, cur: np.ndarray
) -> None:
    prepared = prepare_reference(ref, kind="numeric")
    for alias in ("psi", "jensenshannon", "hellinger"):
        ours = STATTESTS[alias].compute(prepared, cur)
        _assert_same(
            ours, _oracle(alias, pd.Series(ref), pd.Series(cur), "numeric"), STATTESTS[alias]
        )


@settings(max_examples=200, deadline=None)
@given(_float_arrays(), st.integers(1, 300_000))
def test_sturges_edges_and_counts_equal_numpy(values: np.ndarray, pad: int) -> None:
    size = values.size + pad  # the pooled size only enters through log2(size)
    pooled = np.concatenate([values, np.full(pad, values[0])])
    edges = sturges_edges(values.min(), values.max(), size)
    assert edges is not None
    np.testing.assert_array_equal(edges, np.histogram_bin_edges(pooled, bins="sturges"))
    np.testing.assert_array_equal(
        hist_counts(np.sort(values), edges), np.histogram(values, edges)[0]
    )


def test_classic_tests_equal_scipy_on_workload(gen: ModuleType) -> None:
    ref, cur = _frames(gen, 5000)
    r, c = ref["num_03"].to_numpy(float), cur["num_03"].to_numpy(float)
    prepared = prepare_reference(r, kind="numeric")
    assert STATTESTS["ks"].compute(prepared, c).value == stats.ks_2samp(r, c).pvalue
    assert same(
        STATTESTS["wasserstein"].compute(prepared, c).value,
        stats.wasserstein_distance(r, c) / np.std(r),
    )
    midrank = {"variant": "midrank"} if SCIPY_117 else {"midrank": True}
    anderson = _scipy_quiet(lambda: stats.anderson_ksamp([r, c], **midrank).pvalue)
    assert same(STATTESTS["anderson"].compute(prepared, c).value, anderson)
    edges = np.histogram_bin_edges(np.concatenate([r, c]), bins="sturges")
    p, q = np.histogram(r, edges)[0] / r.size, np.histogram(c, edges)[0] / c.size
    assert STATTESTS["jensenshannon"].compute(prepared, c).value == distance.jensenshannon(p, q)

    ref_codes, cur_codes, _ = _codes(ref["cat_2"].tolist(), cur["cat_2"].tolist())
    counted = prepare_reference(ref_codes, kind="categorical")
    f_ref = np.bincount(ref_codes)
    f_cur = np.bincount(cur_codes, minlength=f_ref.size)
    expected = stats.chisquare(f_cur, f_ref * (cur_codes.size / ref_codes.size)).pvalue
    ours = STATTESTS["chisquare"].compute(counted, cur_codes).value
    assert ours == pytest.approx(expected, rel=REL, abs=ABS)


def test_default_choice_follows_size_and_distinct_values() -> None:
    small = prepare_reference(np.array([0.0, 1.0] * 50), kind="numeric")
    assert default_stattest(small, np.array([0.0, 1.0])).alias == "z"
    assert default_stattest(small, np.array([0.0, 2.0])).alias == "chisquare"  # 3 values
    assert default_stattest(small, np.arange(6.0)).alias == "ks"  # 6 values
    large = prepare_reference(np.arange(1001.0) % 5, kind="numeric")
    assert default_stattest(large, np.array([1.0])).alias == "jensenshannon"
    assert default_stattest(large, np.array([7.0])).alias == "wasserstein"
    cats = prepare_reference(np.array([0, 1] * 500), kind="categorical")
    assert default_stattest(cats, np.array([0, 1])).alias == "z"
    assert default_stattest(cats, np.array([2])).alias == "chisquare"
    many = prepare_reference(np.array([0, 1] * 501), kind="categorical")
    assert default_stattest(many, np.array([0])).alias == "jensenshannon"
    for test in (STATTESTS["ks"], STATTESTS["wasserstein"], STATTESTS["jensenshannon"]):
        ev = _evidently_test(test.alias, "numeric")
        assert test.default_threshold == ev.default_threshold


def test_rel_entr_is_scipys_bit_for_bit():
    """The Jensen-Shannon path's `rel_entr` (a Python loop over libm's log, so a one-shot check
    need not import scipy.special) against scipy's, edge cases included."""
    from scipy import special

    from aims_agent.checks.stattests.divergence import _rel_entr

    rng = np.random.default_rng(5)
    x = np.concatenate([rng.dirichlet(np.ones(200)), [0.0, 0.0, 1.0, math.nan, -1.0, 0.5, 0.3]])
    y = np.concatenate([rng.dirichlet(np.ones(200)), [0.0, 0.4, 0.0, 0.2, 0.3, math.nan, -0.1]])
    x = np.concatenate([x, rng.dirichlet(np.full(50, 0.1)) * 1e-300, [1e-300, 1e300]])
    y = np.concatenate([y, rng.dirichlet(np.ones(50)), [1e300, 1e-300]])
    ours, theirs = _rel_entr(x, y), special.rel_entr(x, y)
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
    assert all(same(a, b) for a, b in zip(ours, theirs, strict=True) if not math.isnan(a))
