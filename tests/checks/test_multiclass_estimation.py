"""Multiclass CBPE against an oracle built from scikit-learn primitives on the same data (the
project's three-class workload, bench/workload.py `make_multiclass`). NannyML, which defines
CBPE, is not in the test environment (it pins python-dateutil below what the rest needs), so
the oracle is NannyML's construction written with scikit-learn: each class's reference scores
calibrated by `IsotonicRegression` against "the label is this class", normalised per record,
and each window record entered once per class k, labelled k with weight P[k], into sklearn's
own weighted metrics (accuracy_score; precision, recall and f1_score with average="macro";
roc_auc_score with multi_class="ovr", average="macro")."""

from __future__ import annotations

import math
import re

import msgspec
import numpy as np
import pytest
from pydantic import ValidationError
from sklearn import metrics as skm
from sklearn.isotonic import IsotonicRegression

from aims_agent.agent.judge import assess
from aims_agent.checks.base import build_check, config_problems
from aims_agent.config import EstimatedPerformanceCheckConfig, Limit, SchemaConfig
from aims_agent.schema import ModelSchema
from bench.workload import CLASSES, SCORE_COLS, make_multiclass
from tests.checks.frames import encode

SCHEMA = SchemaConfig(
    numeric=("num_00", "num_01"), categorical=("cat_0",), prediction="prediction", label="label",
    scores=dict(zip(CLASSES, SCORE_COLS, strict=True)),
)  # fmt: skip
ALL = ("accuracy", "precision", "recall", "f1", "roc_auc")
MACRO = {
    "precision": skm.precision_score,
    "recall": skm.recall_score,
    "f1": skm.f1_score,
}


SORTED = sorted(CLASSES)  # roc_auc_score wants its labels, and the score columns, in order


def sklearn_metric(name, y, yhat, scores, weight=None):
    """`scores` columns in the order of CLASSES."""
    if name == "accuracy":
        return skm.accuracy_score(y, yhat, sample_weight=weight)
    if name == "roc_auc":
        ordered = scores[:, [CLASSES.index(c) for c in SORTED]]
        return skm.roc_auc_score(
            y, ordered, multi_class="ovr", average="macro", labels=SORTED, sample_weight=weight
        )
    return MACRO[name](
        y, yhat, average="macro", labels=list(CLASSES), sample_weight=weight, zero_division=0
    )


def check(ref, cur, **settings):
    schema = ModelSchema(SCHEMA)
    reference, window = encode(schema, ref, cur)
    metrics = settings.pop("metrics", {m: Limit(min=0.0) for m in ALL})
    cfg = EstimatedPerformanceCheckConfig(id="est", metrics=metrics, **settings)
    return build_check(cfg, reference, schema), window


def calibrated(ref, cur):
    p = np.column_stack(
        [
            IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            .fit(ref[col], (ref["label"] == c).astype(float))
            .predict(cur[col])
            for c, col in zip(CLASSES, SCORE_COLS, strict=True)
        ]
    )
    return p / p.sum(axis=1, keepdims=True)


def oracle(ref, cur):
    p = calibrated(ref, cur)
    n, k = p.shape
    y = np.repeat(np.array(CLASSES, dtype=object)[None, :], n, axis=0).ravel()
    w = p.ravel()
    yhat = np.repeat(cur["prediction"].to_numpy(), k)
    scores = np.repeat(cur[list(SCORE_COLS)].to_numpy(), k, axis=0)
    return {name: sklearn_metric(name, y, yhat, scores, w) for name in ALL}


@pytest.fixture(scope="module")
def frames():
    return make_multiclass(6000, 42, False), make_multiclass(3000, 43, True)


def by_name(ms):
    return {m.metric.removeprefix("estimated_"): m for m in ms}


def test_the_estimates_are_the_weighted_sklearn_metrics_of_calibrated_probabilities(frames):
    ref, cur = frames
    blind = cur.assign(label=None)  # labels withheld
    est, window = check(ref, blind)
    got = by_name(est.run(window))
    want = oracle(ref, cur)
    assert list(got) == list(ALL)
    for name in ALL:
        assert got[name].value == pytest.approx(want[name], rel=1e-9, abs=1e-12), name
        assert got[name].n_current == len(cur) and got[name].params["labelled_rows"] == 0
        assert got[name].params["realised_value"] is None
        assert got[name].params["classes"] == list(CLASSES)


def test_the_realised_values_are_sklearns_and_the_estimate_tracks_them(frames):
    ref, cur = frames
    est, window = check(ref, cur)
    got = by_name(est.run(window))
    scores = cur[list(SCORE_COLS)].to_numpy()
    for name in ALL:
        realised = sklearn_metric(name, cur["label"], cur["prediction"], scores)
        m = got[name]
        assert m.params["realised_value"] == pytest.approx(realised, rel=1e-12), name
        assert m.params["estimate_error"] == pytest.approx(m.value - realised, abs=1e-12)
        assert m.params["labelled_rows"] == len(cur)
    # groups A and B: drifted inputs, the same relation of outcome to score; the realised value
    # is inside the band (group C's model degrades without its scores saying so: CBPE cannot
    # see that, NannyML's neither)
    same = cur[cur["group"] != "C"]
    est, window = check(ref, same)
    for name, m in by_name(est.run(window)).items():
        realised = m.params["realised_value"]
        assert m.params["band_low"] <= realised <= m.params["band_high"], name


def test_the_band_is_the_reference_chunk_spread_scaled_to_the_window(frames):
    ref, cur = frames
    est, window = check(ref, cur, chunk_size=500, band_sigmas=3.0)
    got = by_name(est.run(window))
    for name in ALL:
        per_chunk = [
            sklearn_metric(
                name, part["label"], part["prediction"], part[list(SCORE_COLS)].to_numpy()
            )
            for part in (ref.iloc[s : s + 500] for s in range(0, len(ref) - 499, 500))
        ]
        sigma = np.std(per_chunk, ddof=1) * math.sqrt(500 / len(cur))
        m = got[name]
        assert m.params["sigma"] == pytest.approx(sigma, rel=1e-9), name
        assert m.params["band_low"] == pytest.approx(m.value - 3 * sigma, rel=1e-9)
        ref_value = sklearn_metric(
            name, ref["label"], ref["prediction"], ref[list(SCORE_COLS)].to_numpy()
        )
        assert m.params["reference_value"] == pytest.approx(ref_value, rel=1e-12)


def test_a_breach_needs_the_whole_band_beyond_the_limit(frames):
    ref, cur = frames
    est, window = check(ref, cur, metrics={"f1": Limit(min=0.0)})
    m = est.run(window)[0]
    half = m.params["band_high"] - m.value
    verdicts = {}
    for name, limit in {
        "pass": m.value - 0.5 * half,
        "warn": m.value + 0.5 * half,
        "breach": m.value + 1.5 * half,
    }.items():
        est, window = check(ref, cur, metrics={"f1": Limit(min=limit)})
        (assessed,) = assess(est.run(window))
        verdicts[name] = assessed.verdict
    assert verdicts == {"pass": "pass", "warn": "warn", "breach": "breach"}


def test_rows_without_every_score_are_left_out(frames):
    ref, cur = frames
    part = cur.iloc[:1000].copy()
    part.loc[part.index[::4], SCORE_COLS[1]] = np.nan
    est, window = check(ref, part.assign(label=None), metrics={"accuracy": Limit(min=0.0)})
    (m,) = est.run(window)
    kept = part[part[SCORE_COLS[1]].notna()]
    assert m.n_current == len(kept)
    assert m.value == pytest.approx(oracle(ref, kept)["accuracy"], rel=1e-9)


def test_records_carry_scores_per_class_and_a_bad_one_is_named():
    schema = ModelSchema(SCHEMA)
    record = schema.decoder.decode(
        b'{"id": 1, "features": {"num_00": 1.5}, "prediction": "refer",'
        b' "scores": {"approve": 0.2, "refer": 0.7, "decline": 0.1}}'
    )
    row = schema.row(record)
    assert [row[schema.index[c]] for c in SCORE_COLS] == [0.2, 0.7, 0.1]
    for body, where in (
        (b'"scores": {"approve": "high"}', "got `str` - at `$.scores.approve`"),
        (b'"scores": {"maybe": 0.5}', "unknown field `maybe` - at `$.scores`"),
    ):
        with pytest.raises(msgspec.ValidationError, match=re.escape(where)):
            schema.decoder.decode(
                b'{"id": 1, "features": {}, "prediction": "refer", ' + body + b"}"
            )


def test_config_problems_are_named():
    base = {"numeric": ("x",), "prediction": "y", "label": "t"}
    for extra, message in (
        ({"score": "s", "scores": {"a": "pa", "b": "pb"}}, "not both"),
        ({"scores": {"a": "pa"}}, "at least two classes"),
        ({"scores": {"a": "pa", "b": "pb"}, "prediction_type": "numeric"}, "categorical"),
        ({"scores": {"a": "x", "b": "pb"}}, "column names"),
    ):
        with pytest.raises(ValidationError, match=message):
            SchemaConfig(**base, **extra)
    cfg = EstimatedPerformanceCheckConfig(id="e")
    assert config_problems("c", cfg, SchemaConfig(**base, scores={"a": "pa", "b": "pb"})) == []
    problems = config_problems("c", cfg, SchemaConfig(**base))
    assert any("schema.scores" in p for p in problems)
