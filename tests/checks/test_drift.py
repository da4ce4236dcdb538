"""The drift check against Evidently's own report, through the agent's real encoding path."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from aims_agent.agent.judge import assess, overall
from aims_agent.agent.reference import load_reference
from aims_agent.agent.window import Window
from aims_agent.checks.kinds.drift import DriftCheck
from aims_agent.checks.multiple_testing import adjust
from aims_agent.config import DriftCheckConfig, SchemaConfig
from aims_agent.schema import ModelSchema


def setup(gen, tmp_path, n_ref, n_cur, **cfg):
    cfg.setdefault("preset", "evidently")
    schema = ModelSchema(
        SchemaConfig(
            numeric=tuple(gen.NUM_COLS),
            categorical=tuple(gen.CAT_COLS),
            prediction="prediction",
            score="score",
        )
    )
    ref = gen.make(n_ref, 42, False)
    cur = gen.make(n_cur, 43, True)
    ref.to_parquet(tmp_path / "ref.parquet", index=False)
    reference = load_reference(tmp_path / "ref.parquet", schema)
    window = Window(
        schema,
        capacity=max(1, n_cur),
        span=1e9,
        reference_categories=reference.vocabularies,
        rng=np.random.default_rng(0),
    )
    names = [c.name for c in schema.columns]
    rows = list(cur[names].itertuples(index=False, name=None))
    if rows:
        window.offer(rows, [str(i) for i in range(n_cur)], [0.0] * n_cur, now=1.0)
    check = DriftCheck(DriftCheckConfig(id="d", **cfg), reference, schema)
    return check, window.snapshot(now=1.0), ref, cur


def evidently_table(gen, ref, cur):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # evidently and its dependencies warn on import and run
        from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
        from evidently.legacy.metrics import DataDriftTable
        from evidently.legacy.pipeline.column_mapping import ColumnMapping
        from evidently.legacy.report import Report

        cols = gen.NUM_COLS + gen.CAT_COLS
        report = Report(metrics=[DataDriftTable()])
        report.run(
            reference_data=ref[cols],
            current_data=cur[cols],
            column_mapping=ColumnMapping(
                numerical_features=gen.NUM_COLS,
                categorical_features=gen.CAT_COLS,
                target=None,
                prediction=None,
            ),
        )
        result = report.as_dict()["metrics"][0]["result"]
    aliases = {
        t.display_name: name
        for name, by_type in _registered_stat_tests.items()
        for t in by_type.values()
    }
    return result, aliases


@pytest.mark.parametrize(("n_ref", "n_cur"), [(3000, 2500), (600, 500)])
def test_same_tests_values_and_verdicts_as_evidentlys_report(gen, tmp_path, n_ref, n_cur):
    check, window, ref, cur = setup(gen, tmp_path, n_ref, n_cur, include_prediction=False)
    judged = assess(check.run(window))
    result, aliases = evidently_table(gen, ref, cur)
    by_feature = {a.measurement.feature: a for a in judged if a.measurement.feature}
    for name, col in result["drift_by_columns"].items():
        ours = by_feature[name]
        assert ours.measurement.method == aliases[col["stattest_name"]], name
        assert ours.measurement.value == pytest.approx(col["drift_score"], rel=1e-9, abs=1e-12)
        assert ours.measurement.threshold.breach == col["stattest_threshold"]
        assert (ours.verdict == "breach") == col["drift_detected"], name
    share = next(a for a in judged if a.measurement.metric == "drift_share")
    assert share.measurement.value == pytest.approx(result["share_of_drifted_columns"])
    assert (share.verdict == "breach") == result["dataset_drift"]


def test_outputs_are_tested_but_not_counted_in_the_share(gen, tmp_path):
    check, window, *_ = setup(gen, tmp_path, 2000, 2000)
    judged = assess(check.run(window))
    outputs = {
        a.measurement.feature for a in judged if a.measurement.params.get("role") == "output"
    }
    assert outputs == {"prediction", "score"}
    share = next(a for a in judged if a.measurement.headline)
    assert share.measurement.params["features"] == 28


def test_configured_test_and_threshold_override_the_default(gen, tmp_path):
    check, window, *_ = setup(
        gen, tmp_path, 2000, 2000, columns={"num_05": {"test": "psi", "threshold": 0.3}}
    )
    m = next(m for m in check.run(window) if m.feature == "num_05")
    assert m.method == "psi" and m.threshold.breach == 0.3


def test_empty_and_tiny_windows_are_insufficient_data(gen, tmp_path):
    check, window, *_ = setup(gen, tmp_path, 2000, 0)
    assert overall(assess(check.run(window))) == "insufficient_data"
    check, window, *_ = setup(gen, tmp_path, 2000, 10, min_samples=30)
    judged = assess(check.run(window))
    assert overall(judged) == "insufficient_data"
    assert all(a.verdict == "insufficient_data" for a in judged)


@pytest.mark.parametrize("method", ["bonferroni", "benjamini-hochberg"])
def test_multiple_testing_correction_of_p_value_tests(gen, tmp_path, method):
    plain, window, *_ = setup(gen, tmp_path, 600, 500)  # <= 1000 rows: ks and chisquare
    fixed, _, *_ = setup(gen, tmp_path, 600, 500, multiple_testing=method)
    raw = {m.feature: m for m in plain.run(window) if m.p_value is not None}
    corrected = {m.feature: m for m in fixed.run(window) if m.p_value is not None}
    names = sorted(raw)
    p = np.array([raw[n].value for n in names])
    expected = (
        np.minimum(p * len(p), 1)
        if method == "bonferroni"
        else stats.false_discovery_control(p, method="bh")
    )
    got = np.array([corrected[n].value for n in names])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert all(corrected[n].params["raw_p_value"] == raw[n].value for n in names)
    # a correction can only clear features, never flag new ones
    plain_share = next(m for m in plain.run(window) if m.headline).value
    fixed_share = next(m for m in fixed.run(window) if m.headline).value
    assert fixed_share <= plain_share


def test_adjust_keeps_nan_out_of_the_family():
    out = adjust([0.01, math.nan, 0.04], "bonferroni")
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.08)


def test_output_drift_tests_each_class_score_of_a_multiclass_model():
    from bench.workload import SCORE_COLS, make_multiclass
    from tests.checks.frames import encode

    cfg = SchemaConfig(
        numeric=("num_00",), categorical=("cat_0",), prediction="prediction", label="label",
        scores={c.removeprefix("p_"): c for c in SCORE_COLS},
    )  # fmt: skip
    schema = ModelSchema(cfg)
    reference, window = encode(
        schema, make_multiclass(2000, 42, False), make_multiclass(800, 43, True)
    )
    check = DriftCheck(
        DriftCheckConfig(id="d", include_prediction=True, preset="evidently"), reference, schema
    )
    tested = {m.feature for m in check.run(window) if m.feature}
    assert {*SCORE_COLS, "prediction", "num_00", "cat_0"} <= tested


@pytest.mark.parametrize("preset", ["evidently", "calibrated"])
def test_columns_on_threads_give_the_same_measurements(gen, tmp_path, preset):
    """`aims-agent check` judges columns two at a time: the numbers are the one-by-one run's."""
    from aims_agent.checks.parallel import columns_in_threads

    check, window, _, _ = setup(gen, tmp_path, 3000, 2000, preset=preset)
    alone = check.run(window)
    with columns_in_threads(2):
        together = check.run(window)
    assert together == alone
    assert [m.feature for m in together] == [m.feature for m in alone]
