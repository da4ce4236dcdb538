"""Estimated performance (CBPE) against an oracle built from scikit-learn primitives on the same
data. NannyML, which defines CBPE, is not in the test environment (it pins python-dateutil below
what the rest needs), so the oracle is NannyML's construction written with scikit-learn: the
reference's scores calibrated by `IsotonicRegression`, and each window record entered twice, as a
positive with weight p and a negative with weight 1 - p, into sklearn's own weighted metrics
(accuracy_score, precision_score, recall_score, f1_score, roc_auc_score)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.isotonic import IsotonicRegression

from aims_agent.agent.judge import assess
from aims_agent.checks.base import build_check, config_problems
from aims_agent.config import EstimatedPerformanceCheckConfig, Limit, SchemaConfig
from aims_agent.errors import ConfigError
from aims_agent.schema import ModelSchema
from tests.checks.frames import encode

SCHEMA = SchemaConfig(
    numeric=("num_00",), categorical=("cat_0",), prediction="prediction", score="score",
    label="target",
)  # fmt: skip
ALL = ("accuracy", "precision", "recall", "f1", "roc_auc")
SKLEARN = {
    "accuracy": skm.accuracy_score,
    "precision": skm.precision_score,
    "recall": skm.recall_score,
    "f1": skm.f1_score,
}


def check(ref, cur, **settings):
    schema = ModelSchema(SCHEMA)
    reference, window = encode(schema, ref, cur)
    metrics = settings.pop("metrics", {m: Limit(min=0.0) for m in ALL})
    cfg = EstimatedPerformanceCheckConfig(id="est", metrics=metrics, **settings)
    return build_check(cfg, reference, schema), window


def oracle(ref, cur):
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(ref["score"], ref["target"])
    p = iso.predict(cur["score"])
    n = len(cur)
    y = np.r_[np.ones(n), np.zeros(n)]
    w = np.r_[p, 1 - p]
    yhat = np.r_[cur["prediction"], cur["prediction"]]
    got = {name: fn(y, yhat, sample_weight=w) for name, fn in SKLEARN.items()}
    got["roc_auc"] = skm.roc_auc_score(y, np.r_[cur["score"], cur["score"]], sample_weight=w)
    return got


@pytest.fixture(scope="module")
def frames(gen):
    return gen.make(6000, 42, False), gen.make(3000, 43, True)


def test_the_estimates_are_the_weighted_sklearn_metrics_of_calibrated_probabilities(frames):
    ref, cur = frames
    blind = cur.assign(target=np.nan)  # labels withheld
    est, window = check(ref, blind)
    got = {m.metric.removeprefix("estimated_"): m for m in est.run(window)}
    want = oracle(ref, cur)
    assert [m.metric for m in got.values()] == [f"estimated_{m}" for m in ALL]
    for name in ALL:
        assert got[name].value == pytest.approx(want[name], rel=1e-9, abs=1e-12), name
        assert got[name].n_current == len(cur) and got[name].params["labelled_rows"] == 0
        assert got[name].params["realised_value"] is None


def test_the_band_is_the_reference_chunk_spread_scaled_to_the_window(frames):
    ref, cur = frames
    est, window = check(ref, cur, chunk_size=500, band_sigmas=3.0)
    got = {m.metric.removeprefix("estimated_"): m for m in est.run(window)}
    for name in ALL:
        per_chunk = []
        for start in range(0, len(ref) - 499, 500):
            part = ref.iloc[start : start + 500]
            if name == "roc_auc":
                per_chunk.append(skm.roc_auc_score(part["target"], part["score"]))
            else:
                per_chunk.append(SKLEARN[name](part["target"], part["prediction"]))
        sigma = np.std(per_chunk, ddof=1) * math.sqrt(500 / len(cur))
        m = got[name]
        assert m.params["sigma"] == pytest.approx(sigma, rel=1e-9), name
        assert m.params["band_low"] == pytest.approx(m.value - 3 * sigma, rel=1e-9)
        assert m.params["band_high"] == pytest.approx(m.value + 3 * sigma, rel=1e-9)


def test_the_realised_value_is_recorded_beside_the_estimate(frames):
    ref, cur = frames
    est, window = check(ref, cur)
    got = {m.metric.removeprefix("estimated_"): m for m in est.run(window)}
    for name in ALL:
        realised = (
            skm.roc_auc_score(cur["target"], cur["score"])
            if name == "roc_auc"
            else SKLEARN[name](cur["target"], cur["prediction"])
        )
        m = got[name]
        assert m.params["realised_value"] == pytest.approx(realised, rel=1e-12), name
        assert m.params["estimate_error"] == pytest.approx(m.value - realised, rel=1e-9, abs=1e-12)
        assert m.params["labelled_rows"] == len(cur)


def test_a_breach_needs_the_whole_band_beyond_the_limit(frames):
    ref, cur = frames
    est, window = check(ref, cur, metrics={"accuracy": Limit(min=0.0)})
    m = est.run(window)[0]
    half = m.params["band_high"] - m.value
    verdicts = {}
    for name, limit in {
        "pass": m.value - 0.5 * half,  # estimate above the limit
        "warn": m.value + 0.5 * half,  # estimate below it, the band still reaching over it
        "breach": m.value + 1.5 * half,  # the whole band below it
    }.items():
        est, window = check(ref, cur, metrics={"accuracy": Limit(min=limit)})
        (assessed,) = assess(est.run(window))
        verdicts[name] = assessed.verdict
        assert assessed.measurement.params["limit"] == limit
    assert verdicts == {"pass": "pass", "warn": "warn", "breach": "breach"}


def test_relative_limits_are_against_the_reference_realised_value(frames):
    ref, cur = frames
    est, window = check(ref, cur, metrics={"roc_auc": Limit(min=-0.05, relative=True)})
    (m,) = est.run(window)
    reference = skm.roc_auc_score(ref["target"], ref["score"])
    assert m.params["reference_value"] == pytest.approx(reference, rel=1e-12)
    assert m.params["limit"] == pytest.approx(reference * 0.95, rel=1e-12)


def test_config_problems_are_named():
    bad = SchemaConfig(numeric=("x",), prediction="y", prediction_type="numeric")
    cfg = EstimatedPerformanceCheckConfig(id="e", metrics={"mae": Limit(max=1)})
    assert config_problems("models[0].checks[0]", cfg, bad) == [
        "models[0].checks[0].metrics.mae: unknown metric; known: accuracy, f1, precision, "
        "recall, roc_auc",
        "models[0].checks[0]: needs schema.label (the reference's labels calibrate it)",
        "models[0].checks[0]: needs schema.score, or schema.scores for a multiclass model (the "
        "estimate is built on them)",
        "models[0].checks[0]: needs a classifier (schema.prediction_type categorical)",
    ]


def test_a_reference_of_one_class_cannot_calibrate(frames):
    ref, cur = frames
    with pytest.raises(ConfigError, match="labelled rows of both classes"):
        check(ref.assign(target=1), cur)


def test_no_scored_rows_is_insufficient_data(frames):
    ref, cur = frames
    est, window = check(ref, cur.assign(score=np.nan))
    (m, *_) = est.run(window)
    assert math.isnan(m.value) and m.n_current == 0
    assert m.params["band_low"] is None and m.params["sigma"] is None
