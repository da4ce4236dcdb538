"""`aims_agent.checks.drift`, the numbers-only API, against Evidently's own report on the same
DataFrames, and the same numbers from every input type it takes."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

import aims_agent.checks as checks
from aims_agent.errors import ReferenceDataError, UnknownAliasError


def _evidently(ref: pd.DataFrame, cur: pd.DataFrame, numeric: list[str], categorical: list[str]):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # evidently and its dependencies warn on import and run
        from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
        from evidently.legacy.metrics import DataDriftTable
        from evidently.legacy.pipeline.column_mapping import ColumnMapping
        from evidently.legacy.report import Report

        report = Report(metrics=[DataDriftTable()])
        report.run(
            reference_data=ref,
            current_data=cur,
            column_mapping=ColumnMapping(
                numerical_features=numeric, categorical_features=categorical, target=None,
                prediction=None,
            ),
        )  # fmt: skip
        result = report.as_dict()["metrics"][0]["result"]
    aliases = {
        t.display_name: name for name, by_type in _registered_stat_tests.items()
        for t in by_type.values()
    }  # fmt: skip
    return result, aliases


@pytest.mark.parametrize(("n_ref", "n_cur"), [(3000, 2500), (600, 400)])
def test_same_tests_values_and_verdicts_as_evidentlys_report(gen, n_ref, n_cur):
    cols = gen.NUM_COLS + gen.CAT_COLS
    ref, cur = gen.make(n_ref, 42, False)[cols], gen.make(n_cur, 43, True)[cols]
    ours = checks.drift(ref, cur)
    result, aliases = _evidently(ref, cur, gen.NUM_COLS, gen.CAT_COLS)
    assert [c.column for c in ours.columns] == cols
    for name, col in result["drift_by_columns"].items():
        mine = ours[name]
        assert mine.kind == ("numeric" if name in gen.NUM_COLS else "categorical")
        assert mine.test == aliases[col["stattest_name"]], name
        assert mine.value == pytest.approx(col["drift_score"], rel=1e-9, abs=1e-12), name
        assert mine.threshold == col["stattest_threshold"]
        assert mine.drifted == col["drift_detected"], name
    assert ours.share == pytest.approx(result["share_of_drifted_columns"])
    assert set(ours.drifted) == {
        n for n, c in result["drift_by_columns"].items() if c["drift_detected"]
    }


def test_pandas_pyarrow_and_mappings_give_the_same_numbers(gen):
    cols = gen.NUM_COLS[:4] + gen.CAT_COLS[:3]
    ref, cur = gen.make(2000, 1, False)[cols], gen.make(700, 2, True)[cols]
    from_pandas = checks.drift(ref, cur)
    from_arrow = checks.drift(pa.Table.from_pandas(ref), pa.Table.from_pandas(cur))
    from_dicts = checks.drift(
        {c: ref[c].to_numpy() for c in cols}, {c: cur[c].tolist() for c in cols}
    )
    assert from_pandas == from_arrow == from_dicts


def test_a_named_test_and_threshold_are_scipys_numbers():
    rng = np.random.default_rng(7)
    ref, cur = rng.normal(size=800), rng.normal(0.3, 1.0, size=300)
    ours = checks.drift({"x": ref}, {"x": cur}, test="ks", threshold=0.01)["x"]
    assert ours.test == "ks"
    assert ours.p_value == pytest.approx(stats.ks_2samp(ref, cur).pvalue, rel=1e-9)
    assert ours.threshold == 0.01
    assert ours.drifted == (ours.p_value <= 0.01)
    per_column = checks.drift({"x": ref, "y": ref}, {"x": cur, "y": cur}, test={"y": "wasserstein"})
    assert per_column["y"].test == "wasserstein"
    assert per_column["y"].value == pytest.approx(
        stats.wasserstein_distance(ref, cur) / np.std(ref), rel=1e-9
    )


def test_kinds_booleans_missing_values_and_absent_columns():
    ref = {"flag": [True, False, True, None] * 100, "code": [1, 2, 3, 4] * 100}
    cur = {"flag": [True, True, True, None] * 50, "code": [1, 1, 2, 2] * 50}
    result = checks.drift(ref, cur, kinds={"code": "categorical"})
    assert result["flag"].kind == "categorical"
    assert result["flag"].n_reference == 300 and result["flag"].n_current == 150
    assert result["code"].kind == "categorical"
    absent = checks.drift({"a": np.arange(50.0), "b": np.arange(50.0)}, {"a": np.arange(50.0)})
    assert absent["b"].n_current == 0 and math.isnan(absent["b"].value)
    assert absent.share == 0.0  # only "a" was compared, and it did not drift


def test_bad_input_names_what_is_wrong():
    with pytest.raises(ReferenceDataError, match="expected a pandas DataFrame"):
        checks.drift([1, 2, 3], {"a": [1]})
    with pytest.raises(ReferenceDataError, match="missing columns nope"):
        checks.drift({"a": [1.0, 2.0]}, {"a": [1.0]}, columns=["nope"])
    with pytest.raises(UnknownAliasError):
        checks.drift({"a": [1.0, 2.0]}, {"a": [1.0]}, test="no-such-test")
    with pytest.raises(ReferenceDataError, match="'a'"):
        checks.drift({"a": [np.nan, np.nan]}, {"a": [1.0]})
    with pytest.raises(AttributeError):
        _ = checks.no_such_function  # type: ignore[attr-defined]
