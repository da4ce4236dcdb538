#!/usr/bin/env python
"""The label-free estimate (`kind: estimated_performance`) beside NannyML's CBPE, on the same
chunks of the project's workload: binary (bench/workload.py `make`) and three-class
(`make_multiclass`). Prints, per metric, the mean and the largest absolute difference between
the two estimates over the chunks, and each one's mean distance from the realised value
(scikit-learn on the withheld labels).

NannyML (the `bench` extra) pins python-dateutil below what the agent's other dependencies
need: run this in an environment of its own with NannyML, the agent's source on PYTHONPATH.
NannyML calibrates a class's scores only where its own cross-validated check says calibration
helps; the agent always calibrates (isotonic regression): where NannyML leaves scores
uncalibrated the two differ by what calibration changes.

    python bench/cbpe_nannyml.py [--reference 20000] [--current 60000] [--chunk 5000]
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aims_agent.checks.base import build_check  # noqa: E402
from aims_agent.config import EstimatedPerformanceCheckConfig, Limit, SchemaConfig  # noqa: E402
from aims_agent.schema import ModelSchema  # noqa: E402
from bench import workload  # noqa: E402
from tests.checks.frames import encode  # noqa: E402

METRICS = ("roc_auc", "f1", "precision", "recall", "accuracy")


def ours(schema_cfg: SchemaConfig, ref: Any, cur: Any, chunk: int) -> dict[str, list[float]]:
    schema = ModelSchema(schema_cfg)
    cfg = EstimatedPerformanceCheckConfig(id="est", metrics={m: Limit(min=0.0) for m in METRICS})
    check = build_check(cfg, encode(schema, ref, ref.iloc[:10])[0], schema)
    out: dict[str, list[float]] = {m: [] for m in METRICS}
    for start in range(0, len(cur) - chunk + 1, chunk):
        part = cur.iloc[start : start + chunk]
        _, window = encode(schema, ref, part)
        for m in check.run(window):
            out[m.metric.removeprefix("estimated_")].append(m.value)
    return out


def theirs(kwargs: dict[str, Any], ref: Any, cur: Any, chunk: int) -> dict[str, list[float]]:
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # no usage reports leave the run
    import nannyml as nml

    est = nml.CBPE(metrics=list(METRICS), chunk_size=chunk, **kwargs).fit(ref)
    df = est.estimate(cur).filter(period="analysis").to_df()
    n = len(cur) // chunk
    return {m: list(df[(m, "value")].to_numpy()[:n]) for m in METRICS}


def realised(kind: str, cur: Any, chunk: int) -> dict[str, list[float]]:
    from sklearn import metrics as skm

    out: dict[str, list[float]] = {m: [] for m in METRICS}
    for start in range(0, len(cur) - chunk + 1, chunk):
        p = cur.iloc[start : start + chunk]
        if kind == "binary":
            y, yhat, s = p["target"], p["prediction"], p["score"]
            out["roc_auc"].append(skm.roc_auc_score(y, s))
            avg: dict[str, Any] = {}
        else:
            y, yhat = p["label"], p["prediction"]
            order = sorted(workload.CLASSES)
            s = p[[f"p_{c}" for c in order]].to_numpy()
            out["roc_auc"].append(
                skm.roc_auc_score(y, s, multi_class="ovr", average="macro", labels=order)
            )
            avg = {"average": "macro", "zero_division": 0}
        out["f1"].append(skm.f1_score(y, yhat, **avg))
        out["precision"].append(skm.precision_score(y, yhat, **avg))
        out["recall"].append(skm.recall_score(y, yhat, **avg))
        out["accuracy"].append(skm.accuracy_score(y, yhat))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", type=int, default=20_000)
    ap.add_argument("--current", type=int, default=60_000)
    ap.add_argument("--chunk", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    warnings.simplefilter("ignore")  # NannyML's own deprecation warnings
    features = {"numeric": tuple(workload.NUM_COLS), "categorical": tuple(workload.CAT_COLS)}
    scores = dict(zip(workload.CLASSES, workload.SCORE_COLS, strict=True))
    cases = {
        "binary": (
            workload.make,
            SchemaConfig(**features, prediction="prediction", score="score", label="target"),
            {
                "problem_type": "classification_binary",
                "y_pred_proba": "score",
                "y_pred": "prediction",
                "y_true": "target",
            },
        ),
        "multiclass": (
            workload.make_multiclass,
            SchemaConfig(**features, prediction="prediction", scores=scores, label="label"),
            {
                "problem_type": "classification_multiclass",
                "y_pred_proba": scores,
                "y_pred": "prediction",
                "y_true": "label",
            },
        ),
    }
    for kind, (make, schema_cfg, kwargs) in cases.items():
        ref = make(a.reference, a.seed, False)
        cur = make(a.current, a.seed + 1, True)
        mine, nml_, real = (
            ours(schema_cfg, ref, cur, a.chunk),
            theirs(kwargs, ref, cur, a.chunk),
            realised(kind, cur, a.chunk),
        )
        print(f"{kind}: {len(real['accuracy'])} chunks of {a.chunk} rows")
        for m in METRICS:
            x, y, r = (np.array(v[m]) for v in (mine, nml_, real))
            d = np.abs(x - y)
            print(
                f"  {m:9s} |ours - NannyML| mean {d.mean():.2e} max {d.max():.2e}; "
                f"mean |estimate - realised| ours {np.abs(x - r).mean():.4f} "
                f"NannyML {np.abs(y - r).mean():.4f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
