"""The agent trains the loss model of a regressor's estimated performance in a child process at
start, and serves meanwhile: a record ingested while it trains is taken, and once the model
arrives the check's run carries its estimate and the model's fingerprint."""

from __future__ import annotations

import asyncio
import json
import os

import numpy as np

from aims_agent.agent.runtime import Runtime
from aims_agent.collectors.push import decode_records
from aims_agent.config import parse_config
from tests.checks.test_loss_estimation import frame
from tests.conftest import as_records, base_config, make_rows


def test_the_loss_model_trains_in_a_child_while_the_agent_serves(tmp_path):
    ref = tmp_path / "regression.csv"
    frame(4000, 1).to_csv(ref, index=False)
    data = base_config(ref, tmp_path / "ev")
    m = data["models"][0]
    m["schema"] = {
        "numeric": ["x1", "x2"],
        "categorical": ["c"],
        "prediction": "yhat",
        "prediction_type": "numeric",
        "label": "y",
    }
    m["checks"] = [
        {
            "id": "dle",
            "kind": "estimated_performance",
            "task": "regression",
            "schedule_seconds": 3600,
            "min_samples": 20,
            "metrics": {"mae": {"max": 5.0}},
        }
    ]
    runtime = Runtime(parse_config(data, base_dir=tmp_path))
    try:
        check = runtime.model("m1").checks["dle"]
        assert check.model.future is not None  # handed to the child at start
        cur = frame(500, 2)
        rows = [
            {
                "id": f"r{i}",
                "features": {"x1": r.x1, "x2": r.x2, "c": r.c},
                "prediction": r.yhat,
            }
            for i, r in enumerate(cur.itertuples())
        ]
        decoded = decode_records(
            json.dumps(rows).encode(), "application/json", runtime.model("m1").schema, now=0
        )
        assert asyncio.run(runtime.ingest.ingest("m1", decoded)) == 500
        trained = check.model.future.result(timeout=120)
        assert trained.pid != os.getpid()
        out = runtime.runner.run_check("m1", "dle")
        assert out.run.verdict == "pass"
        (a,) = out.run.assessments
        assert a.measurement.n_current == 500 and a.measurement.value > 0
        fingerprint = a.measurement.params["loss_model"]["fingerprint"]
        assert fingerprint == trained.about["mae"]["fingerprint"]
    finally:
        runtime.close()


def test_the_label_model_of_a_classifier_is_fitted_in_the_child_too(tmp_path, reference_csv):
    data = base_config(reference_csv, tmp_path / "ev")
    data["models"][0]["checks"] = [
        {
            "id": "estimate",
            "kind": "estimated_performance",
            "estimate_from": "inputs",
            "schedule_seconds": 3600,
            "min_samples": 20,
        }
    ]
    runtime = Runtime(parse_config(data, base_dir=tmp_path))
    try:
        check = runtime.model("m1").checks["estimate"]
        fitted = check.label_model.future.result(timeout=120)  # pickled back from the child
        rows = as_records(make_rows(np.random.default_rng(4), 300))
        decoded = decode_records(
            json.dumps(rows).encode(), "application/json", runtime.model("m1").schema, now=0
        )
        asyncio.run(runtime.ingest.ingest("m1", decoded))
        out = runtime.runner.run_check("m1", "estimate")
        heads = {a.measurement.metric: a.measurement for a in out.run.assessments}
        params = heads["estimated_roc_auc"].params
        assert params["label_model_fingerprint"] == fitted.fingerprint
        assert heads["estimated_roc_auc"].n_current == 300
    finally:
        runtime.close()


def test_closing_the_agent_kills_a_training_still_running(tmp_path):
    """A reference large enough that its loss model trains for seconds: closing right after
    start kills the child rather than waiting for it (the future ends without a model)."""
    ref = tmp_path / "large.csv"
    frame(300_000, 1).to_csv(ref, index=False)
    data = base_config(ref, tmp_path / "ev")
    data["models"][0]["schema"] = {
        "numeric": ["x1", "x2"],
        "categorical": ["c"],
        "prediction": "yhat",
        "prediction_type": "numeric",
        "label": "y",
    }
    data["models"][0]["checks"] = [
        {
            "id": "dle",
            "kind": "estimated_performance",
            "task": "regression",
            "schedule_seconds": 3600,
            "metrics": {"mae": {"max": 5.0}, "rmse": {"max": 5.0}},
        }
    ]
    runtime = Runtime(parse_config(data, base_dir=tmp_path))
    future = runtime.model("m1").checks["dle"].model.future
    children = list(runtime._training._children)
    runtime.close()
    for child in children:
        child.join(timeout=10)
        assert not child.is_alive()
    assert future.cancelled() or future.exception(timeout=10) is not None
