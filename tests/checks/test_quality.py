"""The data-quality check against pandas on the same data (isna, between, isin)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aims_agent.agent.judge import assess, overall
from aims_agent.checks.base import build_check
from aims_agent.checks.kinds.quality import QualityCheck
from aims_agent.config import Limit, QualityCheckConfig, SchemaConfig
from aims_agent.records import Measurement, WindowData, WindowInfo
from aims_agent.schema import ModelSchema
from tests.checks.frames import encode


def workload_schema(gen):
    return ModelSchema(
        SchemaConfig(
            numeric=tuple(gen.NUM_COLS),
            categorical=tuple(gen.CAT_COLS),
            prediction="prediction",
            score="score",
            label="target",
            sensitive=("group",),
        )
    )


def by_key(measurements: list[Measurement]) -> dict[tuple[str, str | None], Measurement]:
    return {(m.metric, m.feature): m for m in measurements}


@pytest.fixture(scope="module")
def frames(gen):
    ref = gen.make(2000, 42, False)
    cur = gen.make(1000, 43, True)
    ref.loc[0, "num_06"] = np.inf  # the reference range ignores inf and NaN
    ref.loc[1, "num_06"] = np.nan
    ref.loc[2, "num_07"] = -np.inf
    cur.loc[::7, "num_03"] = np.nan
    cur.loc[::11, "num_04"] = np.inf
    cur.loc[::13, "num_05"] = -np.inf
    cur.loc[::9, "num_06"] = np.nan
    cur.loc[::5, "cat_2"] = None
    cur.loc[::17, "cat_3"] = "never_seen"
    cur.loc[::19, "cat_4"] = "also_new"
    cur.loc[::38, "cat_4"] = None
    return ref, cur


def test_matches_pandas_on_the_workload(gen, frames):
    ref, cur = frames
    schema = workload_schema(gen)
    reference, window = encode(schema, ref, cur, rejected=25)
    check = QualityCheck(QualityCheckConfig(id="q"), reference, schema)
    got = by_key(check.run(window))

    for col in gen.NUM_COLS:
        finite = ref[col].replace([np.inf, -np.inf], np.nan)
        lo, hi = finite.min(), finite.max()
        present = cur[col].dropna()
        miss = got[("missing_share", col)]
        assert miss.value == cur[col].isna().mean()
        assert miss.n_current == len(cur)
        oor = got[("out_of_range_share", col)]
        assert oor.value == (~present.between(lo, hi)).mean()
        assert oor.n_current == len(present)
        assert oor.params["min"] == lo and oor.params["max"] == hi
        assert oor.params["range_source"] == "reference"
    for col in gen.CAT_COLS:
        present = cur[col].dropna()
        assert got[("missing_share", col)].value == cur[col].isna().mean()
        unseen = got[("unseen_category_share", col)]
        assert unseen.value == (~present.isin(set(ref[col].dropna()))).mean()
        assert unseen.n_current == len(present)
        assert unseen.params["reference_categories"] == ref[col].nunique()
    # the injected problems are really there, so the comparison above is not vacuous
    assert got[("out_of_range_share", "num_04")].value >= 1 / 11
    assert got[("unseen_category_share", "cat_3")].value > 0
    assert got[("missing_share", "cat_2")].value == pytest.approx(0.2)
    rejected = got[("rejected_share", None)]
    assert rejected.value == 25 / 1025
    assert rejected.n_current == 1025
    # every feature gets two metrics, plus the data set's rejected share; nothing else
    features = {c.name for c in schema.features}
    assert len(got) == 2 * len(features) + 1
    assert {f for _, f in got} == features | {None}
    assert all(m.headline and m.n_reference == 2000 for m in got.values())


def test_thresholds_follow_the_config():
    schema = ModelSchema(SchemaConfig(numeric=("x",), categorical=("c",)))
    reference, window = encode(
        schema, pd.DataFrame({"x": [0.0, 1.0], "c": ["a", "b"]}), pd.DataFrame({"x": [], "c": []})
    )
    cfg = QualityCheckConfig(
        id="q", max_missing_share=0.2, max_out_of_range_share=0.1, min_samples=5
    )
    got = by_key(QualityCheck(cfg, reference, schema).run(window))
    t = got[("missing_share", "x")].threshold
    assert (t.breach, t.direction, t.inclusive, t.min_samples) == (0.2, "above", False, 5)
    assert t.warn == pytest.approx(0.8 * 0.2)
    assert got[("out_of_range_share", "x")].threshold.breach == 0.1
    assert got[("unseen_category_share", "c")].threshold.breach == cfg.max_unseen_category_share
    assert got[("rejected_share", None)].threshold.breach == cfg.max_rejected_share
    # warn_fraction 1 leaves no warn band
    no_warn = QualityCheckConfig(id="q", warn_fraction=1.0)
    got = by_key(QualityCheck(no_warn, reference, schema).run(window))
    assert all(m.threshold.warn is None for m in got.values())


def test_configured_bounds_replace_the_reference_range():
    schema = ModelSchema(SchemaConfig(numeric=("x", "y", "z")))
    ref = pd.DataFrame({"x": [0.0, 10.0], "y": [0.0, 10.0], "z": [0.0, 10.0]})
    values = [-1.0, 0.0, 2.0, 5.0, 10.0, 11.0, np.inf, -np.inf, np.nan]
    cur = pd.DataFrame({"x": values, "y": values, "z": values})
    reference, window = encode(schema, ref, cur)
    cfg = QualityCheckConfig(
        id="q",
        bounds={
            "x": Limit(min=2.0, max=5.0),
            "y": Limit(min=0.0),  # one-sided: no upper bound, but +inf is still out of range
            "z": Limit(min=-0.5, max=0.5, relative=True),  # read as absolute
        },
    )
    got = by_key(QualityCheck(cfg, reference, schema).run(window))
    present = cur["x"].dropna()
    assert got[("out_of_range_share", "x")].value == (~present.between(2.0, 5.0)).mean()
    y = got[("out_of_range_share", "y")]
    assert y.value == 3 / 8  # -1, +inf, -inf
    assert (y.params["min"], y.params["max"], y.params["range_source"]) == (0.0, None, "config")
    assert got[("out_of_range_share", "z")].value == (~present.between(-0.5, 0.5)).mean()


def test_empty_window_gives_nan_and_insufficient_data():
    schema = ModelSchema(SchemaConfig(numeric=("x",), categorical=("c",)))
    reference, window = encode(
        schema, pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]}), pd.DataFrame({"x": [], "c": []})
    )
    out = QualityCheck(QualityCheckConfig(id="q"), reference, schema).run(window)
    assert len(out) == 5
    assert all(math.isnan(m.value) and m.n_current == 0 for m in out)
    assessed = assess(out)
    assert {a.verdict for a in assessed} == {"insufficient_data"}
    assert overall(assessed) == "insufficient_data"


def test_all_missing_column_and_reference_without_finite_values():
    schema = ModelSchema(SchemaConfig(numeric=("x", "y"), categorical=("c",)))
    ref = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [np.nan, np.inf, np.nan], "c": ["a"] * 3})
    cur = pd.DataFrame({"x": [np.nan] * 4, "y": [5.0, -1e300, np.inf, np.nan], "c": [None] * 4})
    reference, window = encode(schema, ref, cur)
    got = by_key(QualityCheck(QualityCheckConfig(id="q"), reference, schema).run(window))
    assert got[("missing_share", "x")].value == 1.0
    assert got[("missing_share", "c")].value == 1.0
    # nothing present to judge: NaN over 0 rows, not 0 and not an exception
    for key in (("out_of_range_share", "x"), ("unseen_category_share", "c")):
        assert math.isnan(got[key].value) and got[key].n_current == 0
    # no finite reference value: no range, only +/-inf is out of range
    y = got[("out_of_range_share", "y")]
    assert y.value == 1 / 3 and y.params["range_source"] == "none"
    assert y.params["min"] is None and y.params["max"] is None


def test_judged_end_to_end_with_a_breach_and_a_warn():
    schema = ModelSchema(SchemaConfig(numeric=("x",), categorical=("c",)))
    ref = pd.DataFrame({"x": np.linspace(0, 1, 50), "c": ["a", "b"] * 25})
    # 9 % missing x: warn (above 0.8 * 10 %), 20 % unseen c: breach (above 5 %)
    x = np.r_[np.full(9, np.nan), np.linspace(0, 1, 91)]
    c = ["a"] * 80 + ["z"] * 20
    reference, window = encode(schema, ref, pd.DataFrame({"x": x, "c": c}))
    check = build_check(QualityCheckConfig(id="q", min_samples=30), reference, schema)
    assessed = assess(check.run(window))
    verdicts = {(a.measurement.metric, a.measurement.feature): a.verdict for a in assessed}
    assert verdicts == {
        ("missing_share", "x"): "warn",
        ("out_of_range_share", "x"): "pass",
        ("missing_share", "c"): "pass",
        ("unseen_category_share", "c"): "breach",
        ("rejected_share", None): "pass",
    }
    assert overall(assessed) == "breach"
    no_breach = [a for a in assessed if a.verdict != "breach"]
    assert overall(no_breach) == "warn"


def test_rejected_share_counts_refused_records():
    schema = ModelSchema(SchemaConfig(numeric=("x",)))
    reference, window = encode(schema, pd.DataFrame({"x": [1.0]}), pd.DataFrame({"x": [1.0] * 3}))
    check = QualityCheck(QualityCheckConfig(id="q"), reference, schema)
    info = WindowInfo(start=0.0, end=1.0, seen=0, sampled=0, rejected=7)
    only_rejected = WindowData(
        info=info, columns={"x": np.empty(0)}, vocabularies={}, record_ids=()
    )
    assert by_key(check.run(only_rejected))[("rejected_share", None)].value == 1.0
    assert by_key(check.run(window))[("rejected_share", None)].value == 0.0


_cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([np.nan, 0.0, 1.0, -1.0]),
)


@settings(max_examples=200, deadline=None)
@given(
    ref=st.lists(_cells, min_size=1, max_size=30),
    cur=st.lists(_cells, max_size=30),
    cats=st.lists(st.sampled_from(["a", "b", "c", None]), max_size=30),
)
def test_shares_equal_pandas_on_random_data(ref, cur, cats):
    schema = ModelSchema(SchemaConfig(numeric=("x",), categorical=("k",)))
    ref_df = pd.DataFrame({"x": pd.Series(ref, dtype=float), "k": (["a", "b"] * 30)[: len(ref)]})
    cur_df = pd.DataFrame({"x": pd.Series(cur, dtype=float)})
    reference, window = encode(schema, ref_df, cur_df.assign(k=None))
    # categories: a separate window of the same length as `cats`
    cat_ref, cat_window = encode(
        schema, ref_df, pd.DataFrame({"x": np.zeros(len(cats)), "k": pd.Series(cats, dtype=object)})
    )
    got = by_key(QualityCheck(QualityCheckConfig(id="q"), reference, schema).run(window))
    finite = ref_df["x"].replace([np.inf, -np.inf], np.nan)
    lo = -np.inf if finite.isna().all() else finite.min()
    hi = np.inf if finite.isna().all() else finite.max()
    present = cur_df["x"].dropna()
    expected = (~present.between(lo, hi) | present.isin([np.inf, -np.inf])).mean()
    assert_same(got[("missing_share", "x")].value, cur_df["x"].isna().mean())
    assert_same(got[("out_of_range_share", "x")].value, expected)
    kgot = by_key(QualityCheck(QualityCheckConfig(id="q"), cat_ref, schema).run(cat_window))
    k = pd.Series(cats, dtype=object)
    assert_same(kgot[("missing_share", "k")].value, k.isna().mean())
    assert_same(
        kgot[("unseen_category_share", "k")].value, (~k.dropna().isin(set(ref_df["k"]))).mean()
    )


def assert_same(got: float, expected: float) -> None:
    assert (math.isnan(got) and math.isnan(expected)) or got == expected
