"""A multiclass model's label-based performance (`kind: performance` with `schema.scores`)
against scikit-learn on the same rows of the three-class workload: accuracy_score, precision,
recall and f1_score with average="macro" over the configured classes, and
roc_auc_score(multi_class="ovr", average="macro") on the rows with every class's score."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from aims_agent.agent.judge import assess
from aims_agent.checks.base import build_check, config_problems
from aims_agent.config import Limit, PerformanceCheckConfig, SchemaConfig
from aims_agent.schema import ModelSchema
from bench.workload import CLASSES, SCORE_COLS, make_multiclass
from tests.checks.frames import encode

SCHEMA = SchemaConfig(
    numeric=("num_00",), categorical=("cat_0",), prediction="prediction", label="label",
    scores=dict(zip(CLASSES, SCORE_COLS, strict=True)),
)  # fmt: skip
ALL = ("accuracy", "precision", "recall", "f1", "roc_auc")
SORTED = sorted(CLASSES)


def sklearn_metric(name, df):
    y, yhat = df["label"], df["prediction"]
    if name == "accuracy":
        return skm.accuracy_score(y, yhat)
    if name == "roc_auc":
        scores = df[[f"p_{c}" for c in SORTED]].to_numpy()
        return skm.roc_auc_score(y, scores, multi_class="ovr", average="macro", labels=SORTED)
    fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[name]
    return fn(y, yhat, average="macro", labels=list(CLASSES), zero_division=0)


def check(ref, cur, metrics):
    schema = ModelSchema(SCHEMA)
    reference, window = encode(schema, ref, cur)
    cfg = PerformanceCheckConfig(id="perf", metrics=metrics)
    return build_check(cfg, reference, schema), window


def test_the_metrics_are_sklearns_on_the_same_rows():
    ref, cur = make_multiclass(3000, 42, False), make_multiclass(2000, 43, True)
    cur.loc[cur.index[::5], "label"] = None  # no label yet: left out
    cur.loc[cur.index[::7], SCORE_COLS[0]] = np.nan  # no score: left out of the ROC AUC only
    perf, window = check(ref, cur, {m: Limit(min=0.0) for m in ALL})
    got = {m.metric: m for m in perf.run(window)}
    labelled = cur[cur["label"].notna()]
    scored = labelled[labelled[SCORE_COLS[0]].notna()]
    for name in ALL:
        rows = scored if name == "roc_auc" else labelled
        assert got[name].value == pytest.approx(sklearn_metric(name, rows), rel=1e-12), name
        assert got[name].n_current == len(rows)
        assert got[name].params["reference_value"] == pytest.approx(
            sklearn_metric(name, ref), rel=1e-12
        )
        assert got[name].params["classes"] == list(CLASSES)


def test_relative_limits_are_against_the_reference():
    ref, cur = make_multiclass(3000, 42, False), make_multiclass(2000, 43, True)
    perf, window = check(ref, cur, {"f1": Limit(min=0.5, relative=True)})  # 50 % above: breach
    (a,) = assess(perf.run(window))
    assert a.verdict == "breach"
    assert a.measurement.threshold.breach == pytest.approx(1.5 * sklearn_metric("f1", ref))


def test_score_metrics_of_a_binary_model_are_refused_by_name():
    cfg = PerformanceCheckConfig(
        id="p", metrics={"log_loss": Limit(max=1), "roc_auc": Limit(min=0)}
    )
    problems = config_problems("c", cfg, SCHEMA)
    assert problems == [
        "c.metrics.log_loss: not for a multiclass model (schema.scores); known: accuracy, "
        "precision, recall, f1, roc_auc"
    ]
