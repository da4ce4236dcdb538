"""The performance check against scikit-learn on the same data, to 1e-12 relative."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
from sklearn.exceptions import UndefinedMetricWarning

from aims_agent.agent.judge import assess, overall
from aims_agent.checks.base import Reference, build_check
from aims_agent.checks.kinds.performance import METRICS, NEEDS_SCORE, PerformanceCheck
from aims_agent.config import Limit, PerformanceCheckConfig, SchemaConfig
from aims_agent.errors import ConfigError, UnknownAliasError
from aims_agent.schema import ModelSchema
from tests.checks.frames import encode

CLASSIFICATION = tuple(METRICS["classification"])
REGRESSION = tuple(METRICS["regression"])


def schema_for(prediction_type="categorical", score="score"):
    return ModelSchema(
        SchemaConfig(
            numeric=("x",),
            prediction="prediction",
            prediction_type=prediction_type,
            score=score,
            label="target",
        )
    )


def run(ref, cur, task="classification", metrics=None, schema=None, **cfg):
    names = metrics or (CLASSIFICATION if task == "classification" else REGRESSION)
    cfg = PerformanceCheckConfig(
        id="p", task=task, metrics={m: Limit(min=-1e9) for m in names}, **cfg
    )
    if schema is None:
        schema = schema_for("categorical" if task == "classification" else "numeric")
    reference, window = encode(schema, ref, cur)
    check = PerformanceCheck(cfg, reference, schema)
    return {m.metric: m for m in check.run(window)}


def close(got: float, expected: float) -> bool:
    return (math.isnan(got) and math.isnan(expected)) or math.isclose(
        got, expected, rel_tol=1e-12, abs_tol=0.0
    )


def ece(y, s) -> float:
    """sklearn's calibration curve weighted by its bins' counts; the bins, (a, b] with 0 in the
    first, counted by pandas."""
    prob_true, prob_pred = calibration_curve(y, s, n_bins=10, strategy="uniform")
    edges = np.linspace(0.0, 1.0, 11)
    counts = pd.cut(pd.Series(s), edges, right=True, include_lowest=True).value_counts(sort=False)
    counts = counts.to_numpy()[counts.to_numpy() > 0]
    return float(np.sum(counts / len(s) * np.abs(prob_true - prob_pred)))


def sklearn_labels(y, p, *, pos=1):
    """The label metrics by scikit-learn; `y` / `p` any labels, binarised for `pos`."""
    yb, pb = np.asarray(y) == pos, np.asarray(p) == pos
    return {
        "accuracy": skm.accuracy_score(y, p),
        "precision": skm.precision_score(yb, pb, zero_division=0),
        "recall": skm.recall_score(yb, pb, zero_division=0),
        "f1": skm.f1_score(yb, pb, zero_division=0),
    }


def sklearn_scores(y, s, *, pos=1):
    """The score metrics by scikit-learn; `s` is P(y == pos)."""
    yb = np.asarray(y) == pos
    with warnings.catch_warnings():
        # a single class: roc_auc warns and returns NaN, which is what we report too
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        auc = skm.roc_auc_score(yb, s)
    return {
        "roc_auc": auc,
        "log_loss": skm.log_loss(yb, s, labels=[False, True]),
        "brier": skm.brier_score_loss(yb, s, pos_label=True),
        "ece": ece(yb, s),
    }


def sklearn_classification(y, p, s, *, pos=1):
    return sklearn_labels(y, p, pos=pos) | sklearn_scores(y, s, pos=pos)


def sklearn_regression(y, p):
    return {
        "mae": skm.mean_absolute_error(y, p),
        "rmse": skm.root_mean_squared_error(y, p),
        "r2": skm.r2_score(y, p),
        "mape": skm.mean_absolute_percentage_error(y, p),
    }


@pytest.fixture(scope="module")
def workload(gen):
    ref = gen.make(3000, 42, False)
    cur = gen.make(2000, 43, True)
    cur["target"] = cur["target"].astype(object)
    cur.loc[::6, "target"] = None  # unlabelled rows
    cur.loc[::10, "score"] = np.nan  # missing scores, left out of the score metrics
    cur["x"] = cur["num_00"]
    ref["x"] = ref["num_00"]
    return ref, cur


def test_classification_matches_sklearn_on_the_workload(workload):
    ref, cur = workload
    got = run(ref, cur)
    lab = cur[cur["target"].notna()]
    scored = lab[lab["score"].notna()]
    expected = sklearn_labels(lab["target"].astype(int), lab["prediction"])
    expected |= sklearn_scores(scored["target"].astype(int), scored["score"])
    ref_expected = sklearn_classification(ref["target"], ref["prediction"], ref["score"])
    for name in CLASSIFICATION:
        m = got[name]
        assert close(m.value, expected[name]), (name, m.value, expected[name])
        assert close(m.params["reference_value"], ref_expected[name]), name
        assert m.n_current == len(scored if name in NEEDS_SCORE else lab)
        assert m.n_reference == 3000
        assert m.headline and m.feature is None and m.params["positive_label"] == "1"
    assert got["roc_auc"].params["unusable_scores"] == len(lab) - len(scored)


def test_regression_matches_sklearn_with_zero_labels(gen):
    rng = np.random.default_rng(7)
    frames = []
    for n, seed in ((1500, 42), (1000, 43)):
        df = gen.make(n, seed, seed == 43)
        y = df["num_05"].to_numpy()
        y[::25] = 0.0  # MAPE divides by max(|y|, eps)
        df = pd.DataFrame({"x": df["num_00"], "target": y, "prediction": y + rng.normal(0, 0.5, n)})
        frames.append(df)
    ref, cur = frames
    cur.loc[::9, "target"] = np.nan
    got = run(ref, cur, task="regression", schema=schema_for("numeric", score=None))
    lab = cur.dropna()
    expected = sklearn_regression(lab["target"], lab["prediction"])
    ref_expected = sklearn_regression(ref["target"], ref["prediction"])
    assert expected["mape"] > 1e6  # the zero labels dominate, as in sklearn
    for name in REGRESSION:
        assert close(got[name].value, expected[name]), name
        assert close(got[name].params["reference_value"], ref_expected[name]), name
        assert got[name].n_current == len(lab)
        assert "positive_label" not in got[name].params


def test_text_labels_with_their_own_vocabularies():
    rng = np.random.default_rng(3)
    n = 400
    y = rng.choice(["yes", "no", "maybe"], n, p=[0.4, 0.5, 0.1])
    p = np.where(rng.random(n) < 0.7, y, rng.choice(["no", "yes", "unsure"], n))
    s = np.clip(np.where(y == "yes", 0.6, 0.3) + rng.normal(0, 0.2, n), 0, 1)
    ref = pd.DataFrame({"x": 0.0, "target": ["no", "yes"] * 5, "prediction": ["yes"] * 10})
    ref["score"] = 0.5
    cur = pd.DataFrame({"x": 0.0, "target": y, "prediction": p, "score": s})
    got = run(ref, cur, positive_label="yes")
    expected = sklearn_classification(y, p, s, pos="yes")
    for name in CLASSIFICATION:
        assert close(got[name].value, expected[name]), name


def test_empty_window_and_no_labels_give_nan():
    ref = pd.DataFrame({"x": 0.0, "target": [0, 1, 1], "prediction": [0, 1, 0], "score": 0.5})
    empty = ref.iloc[:0]
    unlabelled = ref.assign(target=None)
    for cur in (empty, unlabelled):
        got = run(ref, cur, min_samples=1)
        assert all(math.isnan(m.value) and m.n_current == 0 for m in got.values())
        assessed = assess(got.values())
        assert {a.verdict for a in assessed} == {"insufficient_data"}
    for cur in (empty, unlabelled):
        got = run(ref, cur, task="regression", schema=schema_for("numeric", score=None))
        assert all(math.isnan(m.value) and m.n_current == 0 for m in got.values())


def test_single_class_and_no_predicted_positives_follow_sklearn():
    ref = pd.DataFrame({"x": 0.0, "target": [0, 1], "prediction": [0, 1], "score": [0.2, 0.8]})
    y = np.zeros(50, dtype=int)
    p = np.zeros(50, dtype=int)
    s = np.linspace(0, 1, 50)
    got = run(ref, pd.DataFrame({"x": 0.0, "target": y, "prediction": p, "score": s}))
    expected = sklearn_classification(y, p, s)
    for name in CLASSIFICATION:
        assert close(got[name].value, expected[name]), name
    assert math.isnan(got["roc_auc"].value)
    assert got["precision"].value == got["recall"].value == got["f1"].value == 0.0
    assert got["accuracy"].value == 1.0


def test_log_loss_clips_and_bad_scores_are_left_out():
    ref = pd.DataFrame({"x": 0.0, "target": [0, 1], "prediction": [0, 1], "score": [0.2, 0.8]})
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    s = np.array([0.0, 1.0, 1e-300, 1 - 1e-17, 0.5, 0.1, 0.1, 0.9])
    extra = pd.DataFrame(
        {"target": [1, 0, 1, 1], "score": [np.nan, np.inf, 1.5, -0.1], "prediction": 1}
    )
    cur = pd.concat([pd.DataFrame({"target": y, "prediction": 1, "score": s}), extra])
    got = run(ref, cur.assign(x=0.0))
    expected = sklearn_classification(y, np.ones(8, dtype=int), s)
    for name in NEEDS_SCORE:
        assert close(got[name].value, expected[name]), name
        assert got[name].n_current == 8 and got[name].params["unusable_scores"] == 4
    assert got["accuracy"].n_current == 12


def test_ece_bins_on_the_edges():
    ref = pd.DataFrame({"x": 0.0, "target": [0, 1], "prediction": [0, 1], "score": [0.2, 0.8]})
    s = np.r_[np.linspace(0, 1, 11), np.linspace(0, 1, 11), [0.05, 0.15, 0.95]]
    y = np.r_[np.zeros(11, dtype=int), np.ones(11, dtype=int), [1, 0, 1]]
    got = run(ref, pd.DataFrame({"x": 0.0, "target": y, "prediction": 1, "score": s}))
    assert close(got["ece"].value, ece(y, s))


def test_r2_edge_cases_follow_sklearn():
    ref = pd.DataFrame({"x": 0.0, "target": [1.0, 2.0], "prediction": [1.0, 2.5]})
    kwargs = {"task": "regression", "schema": schema_for("numeric", score=None)}
    cases = [
        ([2.0] * 5, [2.0] * 5),  # constant and perfect: 1
        ([2.0] * 5, [2.0, 2.0, 2.0, 2.0, 3.0]),  # constant, not perfect: 0
        ([3.3] * 7, [3.3] * 6 + [3.4]),  # mean(3.3 x 7) != 3.3: sklearn's tiny denominator
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]),
        ([0.0, 0.0, 5.0], [0.1, -0.1, 4.0]),  # MAPE with zero labels
    ]
    for y, p in cases:
        got = run(ref, pd.DataFrame({"x": 0.0, "target": y, "prediction": p}), **kwargs)
        expected = sklearn_regression(y, p)
        for name in REGRESSION:
            assert close(got[name].value, expected[name]), (name, y, p)
    one = run(ref, pd.DataFrame({"x": [0.0], "target": [1.0], "prediction": [2.0]}), **kwargs)
    assert math.isnan(one["r2"].value)  # sklearn: not well-defined below two samples
    assert one["mae"].value == 1.0
    inf = run(
        ref, pd.DataFrame({"x": 0.0, "target": [1.0, 2.0], "prediction": [np.inf, 2.0]}), **kwargs
    )
    assert inf["mae"].value == math.inf and inf["rmse"].value == math.inf


def test_relative_limits_use_the_reference_value(gen):
    ref = gen.make(2000, 42, False).assign(x=0.0)
    cur = gen.make(1000, 43, True).assign(x=0.0)
    cur = cur[cur["group"] == "C"]  # the workload degrades the model for group C
    schema = schema_for()
    reference, window = encode(schema, ref, cur)
    cfg = PerformanceCheckConfig(
        id="p",
        metrics={
            "accuracy": Limit(min=-0.01, relative=True),  # breach: more than 1 % below reference
            "roc_auc": Limit(min=0.5, warn_margin=0.5),  # absolute, inside the warn band: warn
            "log_loss": Limit(max=10.0),  # pass
        },
    )
    check = build_check(cfg, reference, schema)
    out = check.run(window)
    got = {m.metric: m for m in out}
    ref_acc = skm.accuracy_score(ref["target"], ref["prediction"])
    assert close(got["accuracy"].params["reference_value"], ref_acc)
    assert got["accuracy"].threshold.breach == pytest.approx(ref_acc * 0.99, rel=1e-12)
    assert got["accuracy"].threshold.direction == "below"
    assessed = assess(out)
    verdicts = {a.measurement.metric: a.verdict for a in assessed}
    assert verdicts == {"accuracy": "breach", "roc_auc": "warn", "log_loss": "pass"}
    assert overall(assessed) == "breach"
    assert overall([a for a in assessed if a.verdict != "breach"]) == "warn"

    # a reference without labels has no value to be relative to: insufficient data
    no_labels = Reference(
        reference_id="r",
        fingerprint="0" * 64,
        n_rows=reference.n_rows,
        columns={k: v for k, v in reference.columns.items() if k != "target"},
        vocabularies={k: v for k, v in reference.vocabularies.items() if k != "target"},
    )
    acc = {m.metric: m for m in PerformanceCheck(cfg, no_labels, schema).run(window)}["accuracy"]
    assert acc.params["reference_value"] is None and acc.n_reference == 0
    assert assess([acc])[0].verdict == "insufficient_data"


def test_config_mistakes_are_refused():
    ref = pd.DataFrame({"x": 0.0, "target": [0, 1], "prediction": [0, 1], "score": 0.5})
    with pytest.raises(UnknownAliasError, match="mae"):
        run(ref, ref, metrics=("mae",))
    with pytest.raises(ConfigError, match="prediction_type numeric"):
        run(ref, ref, task="regression", schema=schema_for("categorical"))
    no_label = ModelSchema(SchemaConfig(numeric=("x",), prediction="prediction"))
    with pytest.raises(ConfigError, match="schema.label"):
        run(ref, ref, schema=no_label)
    assert set(CLASSIFICATION) >= NEEDS_SCORE


_LABELS = st.sampled_from(["a", "b", "c", None])


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(_LABELS, _LABELS, st.floats(0, 1)), max_size=60))
def test_label_metrics_equal_sklearn_on_random_labels(rows):
    ref = pd.DataFrame({"x": 0.0, "target": ["a", "b"], "prediction": ["b", "c"], "score": 0.5})
    cur = pd.DataFrame(rows, columns=["target", "prediction", "score"], dtype=object).assign(x=0.0)
    cur["score"] = cur["score"].astype(float)
    got = run(ref, cur, positive_label="a")
    # label metrics need label and prediction; score metrics label and score
    both = cur.dropna(subset=["target", "prediction"])
    scored = cur.dropna(subset=["target"])
    if both.empty:
        assert all(math.isnan(got[m].value) for m in ("accuracy", "precision", "recall", "f1"))
    else:
        expected = sklearn_labels(both["target"], both["prediction"], pos="a")
        for name, value in expected.items():
            assert close(got[name].value, value), name
    if scored.empty:
        assert all(math.isnan(got[m].value) for m in NEEDS_SCORE)
    else:
        expected = sklearn_scores(scored["target"], scored["score"], pos="a")
        for name, value in expected.items():
            assert close(got[name].value, value), name
