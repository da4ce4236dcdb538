"""The label-free estimate from the inputs (`estimate_from: inputs`): probabilities from a
logistic regression of the reference's labels on the model's inputs. Checked against an oracle
built independently with pandas and scikit-learn (median fill and standardisation by pandas,
one-hot by `pd.get_dummies` over the reference's categories, `LogisticRegression`, then each
window record entered as a positive with weight p and a negative with 1 - p into scikit-learn's
weighted metrics), and on the workload's drifted current, where the model degrades for one
group: the estimate from the inputs tracks the realised value, the one from the scores cannot."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from aims_agent.agent.judge import assess
from aims_agent.checks.base import build_check, config_problems
from aims_agent.config import EstimatedPerformanceCheckConfig, Limit, SchemaConfig
from aims_agent.schema import ModelSchema
from bench import workload
from tests.checks.frames import Held, encode

SCHEMA = SchemaConfig(
    numeric=tuple(workload.NUM_COLS), categorical=tuple(workload.CAT_COLS),
    prediction="prediction", score="score", label="target", sensitive=("group",),
)  # fmt: skip
CATEGORICAL = (*workload.CAT_COLS, "group")


def run(ref, cur, estimate_from, metrics=("accuracy", "roc_auc", "precision", "recall", "f1")):
    schema = ModelSchema(SCHEMA)
    reference, window = encode(schema, ref, cur.assign(target=np.nan))
    cfg = EstimatedPerformanceCheckConfig(
        id="est", estimate_from=estimate_from, metrics={m: Limit(min=0.0) for m in metrics}
    )
    check = build_check(cfg, reference, schema)
    return {m.metric.removeprefix("estimated_"): m for m in check.run(window)}


def oracle_p(ref: pd.DataFrame, cur: pd.DataFrame) -> np.ndarray:
    def design(df: pd.DataFrame) -> pd.DataFrame:
        num = df[list(workload.NUM_COLS)].fillna(ref[list(workload.NUM_COLS)].median())
        filled_ref = ref[list(workload.NUM_COLS)].fillna(ref[list(workload.NUM_COLS)].median())
        num = (num - filled_ref.mean()) / filled_ref.std(ddof=0)
        cats = [
            pd.get_dummies(pd.Categorical(df[c], categories=sorted(ref[c].dropna().unique())),
                           dtype=float)
            for c in CATEGORICAL
        ]  # fmt: skip
        return pd.concat([num.reset_index(drop=True), *cats], axis=1)

    model = LogisticRegression(max_iter=2000).fit(design(ref).to_numpy(), ref["target"])
    return model.predict_proba(design(cur).to_numpy())[:, 1]


@pytest.fixture(scope="module")
def frames():
    return workload.make(8000, 42, False), workload.make(4000, 43, True)


def test_the_estimate_equals_the_oracle(frames):
    ref, cur = frames
    got = run(ref, cur, "inputs")
    p = oracle_p(ref, cur)
    n = len(cur)
    y, w = np.r_[np.ones(n), np.zeros(n)], np.r_[p, 1 - p]
    yhat = np.r_[cur["prediction"], cur["prediction"]]
    want = {
        "accuracy": skm.accuracy_score(y, yhat, sample_weight=w),
        "precision": skm.precision_score(y, yhat, sample_weight=w),
        "recall": skm.recall_score(y, yhat, sample_weight=w),
        "f1": skm.f1_score(y, yhat, sample_weight=w),
        "roc_auc": skm.roc_auc_score(y, np.r_[cur["score"], cur["score"]], sample_weight=w),
    }
    for name, value in want.items():
        # two lbfgs fits of one strictly convex problem: equal to the solver's tolerance
        assert got[name].value == pytest.approx(value, abs=2e-4), name
    about = got["accuracy"].params
    assert about["estimate_from"] == "inputs" and len(about["label_model_fingerprint"]) == 64
    assert about["label_model_inputs"] == [*workload.NUM_COLS, *CATEGORICAL]


def test_the_inputs_see_a_model_degrading_where_the_scores_cannot():
    ref = workload.make(20000, 42, False)
    cur = workload.make(20000, 7, True)  # inputs shifted; group C's scores noisy and biased
    inside = {"inputs": 0, "scores": 0}
    for start in range(0, len(cur), 5000):
        part = cur.iloc[start : start + 5000]
        realised = skm.roc_auc_score(part["target"], part["score"])
        for how in inside:
            m = run(ref, part, how, metrics=("roc_auc",))["roc_auc"]
            inside[how] += m.params["band_low"] <= realised <= m.params["band_high"]
    assert inside == {"inputs": 4, "scores": 0}


def test_inputs_are_for_a_binary_classifier():
    multi = SchemaConfig(
        numeric=("x",), prediction="prediction", label="label", scores={"a": "p_a", "b": "p_b"}
    )
    cfg = EstimatedPerformanceCheckConfig(id="est", estimate_from="inputs")
    problems = config_problems("checks[0]", cfg, multi)
    assert "checks[0].estimate_from: inputs is for a binary classifier (schema.score)" in problems


def test_runs_before_the_label_model_arrives_report_insufficient_data():
    ref, cur = workload.make(4000, 42, False), workload.make(1000, 43, True)
    schema = ModelSchema(SCHEMA)
    reference, window = encode(schema, ref, cur)
    cfg = EstimatedPerformanceCheckConfig(
        id="est", estimate_from="inputs", metrics={"roc_auc": Limit(min=0.0)}
    )
    check = build_check(cfg, reference, schema)
    assert check.trains
    held = Held()
    check.train_in(held)
    (waiting,) = assess(check.run(window))
    assert waiting.verdict == "insufficient_data" and math.isnan(waiting.measurement.value)
    assert waiting.measurement.params["label_model"]["status"].endswith("not ready yet")
    assert waiting.measurement.params["realised_value"] is not None  # labels still count
    ((fn, args),) = held.calls
    held.future.set_result(fn(*args))  # fitted
    (ready,) = check.run(window)
    alone = build_check(cfg, reference, schema)  # fitted in this process at its first run
    (same,) = alone.run(window)
    assert ready.value == same.value and not math.isnan(ready.value)
    assert ready.params["label_model_fingerprint"] == same.params["label_model_fingerprint"]
