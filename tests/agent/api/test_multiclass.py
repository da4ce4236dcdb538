"""A multiclass model through the HTTP app: records carry a probability per class
(`scores`), a bad one is refused naming the field, and the label-free estimate runs on them."""

from __future__ import annotations

import numpy as np

from bench.workload import CLASSES, SCORE_COLS, make_multiclass

RECORDS = "/v1/models/m1/records"


def multiclass(tmp_path):
    ref = tmp_path / "multiclass.csv"
    make_multiclass(3000, 42, False).to_csv(ref, index=False)

    def edit(data):
        m = data["models"][0]
        m["reference"] = {"path": str(ref)}
        m["schema"] = {
            "numeric": ["num_00", "num_01"],
            "categorical": ["cat_0"],
            "prediction": "prediction",
            "label": "label",
            "scores": dict(zip(CLASSES, SCORE_COLS, strict=True)),
        }
        m["checks"] = [
            {
                "id": "estimate",
                "kind": "estimated_performance",
                "schedule_seconds": 3600,
                "min_samples": 20,
                "metrics": {"accuracy": {"min": 0.5}, "roc_auc": {"min": 0.5}},
            }
        ]

    return edit


def test_records_with_scores_per_class_are_estimated(make_api, tmp_path):
    api = make_api(multiclass(tmp_path))
    cur = make_multiclass(400, 43, False)
    rows = [
        {
            "id": f"r{i}",
            "features": {"num_00": r.num_00, "num_01": r.num_01, "cat_0": r.cat_0},
            "prediction": r.prediction,
            "scores": {
                c: float(getattr(r, col)) for c, col in zip(CLASSES, SCORE_COLS, strict=True)
            },
        }
        for i, r in enumerate(cur.itertuples())
    ]
    bad = {**rows[0], "id": "bad", "scores": {"approve": 0.5, "maybe": 0.5}}
    r = api.post(RECORDS, json=[bad])
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "scores.maybe"
    assert api.post(RECORDS, json=rows).status_code == 200
    r = api.post("/v1/models/m1/checks/estimate/run", scope="write")
    assert r.status_code == 200, r.text
    (record,) = api.get("/v1/monitoring-records", params={"model": "m1"}).json()
    got = {m["metric"]: m for m in record["result"]["measurements"]}
    assert record["result"]["outcome"] == "pass"
    accuracy = got["estimated_accuracy"]
    assert accuracy["n_current"] == 400 and accuracy["params"]["classes"] == list(CLASSES)
    realised = float(np.mean(cur["label"] == cur["prediction"]))
    assert accuracy["params"]["band_low"] <= realised <= accuracy["params"]["band_high"]
