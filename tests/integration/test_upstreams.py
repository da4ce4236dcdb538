"""Smoke tests of the real model servers in tests/integration/upstreams, called directly.

They need the venv that ``scripts/upstreams.sh`` builds and fail (not skip) without it. Each
docstring holds the exact request and response bodies seen from the server, for the proxy's
decoder tests. The rows are the same everywhere: (x1, x2, x3) = (0.5, 3.0, 2.0), (-1.0, 1.0, 5.0),
(0.1, 0.5, 9.0), predicted 1, 0, 1 with P(1) = 0.97244, 0.01956, 0.67699.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.upstreams import (
    MODEL,
    VENV_ENV,
    UpstreamError,
    running_upstream,
    start_upstream,
)

pytestmark = pytest.mark.integration

ROWS = [[0.5, 3.0, 2.0], [-1.0, 1.0, 5.0], [0.1, 0.5, 9.0]]
LABELS = [1, 0, 1]
P1 = [0.9724389590735393, 0.019555297641231373, 0.6769884434740001]


def post(url: str, body: dict[str, Any]) -> httpx.Response:
    response = httpx.post(url, json=body, timeout=30, trust_env=False)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    return response


def v2_request(request_id: str) -> dict[str, Any]:
    return {
        "id": request_id,
        "inputs": [
            {
                "name": "input-0",
                "shape": [3, 3],
                "datatype": "FP64",
                "data": [v for row in ROWS for v in row],
            }
        ],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }


def assert_proba_pairs(pairs: list[float], n: int) -> None:
    assert len(pairs) == 2 * n
    for i in range(n):
        assert math.isclose(pairs[2 * i] + pairs[2 * i + 1], 1.0)
        assert math.isclose(pairs[2 * i + 1], P1[i], abs_tol=1e-9)


def test_mlserver_v2_infer(tmp_path: Path) -> None:
    """MLServer 1.7.1 + mlserver-sklearn, POST /v2/models/credit/infer.

    Request:
    {"id":"req-3","inputs":[{"name":"input-0","shape":[3,3],"datatype":"FP64",
    "data":[0.5,3.0,2.0,-1.0,1.0,5.0,0.1,0.5,9.0]}],
    "outputs":[{"name":"predict"},{"name":"predict_proba"}]}

    Response (200, content-type application/json, plus ce-* CloudEvents headers, ce-id req-3):
    {"model_name":"credit","id":"req-3","parameters":{},"outputs":[{"name":"predict",
    "shape":[3,1],"datatype":"INT64","parameters":{"content_type":"np"},"data":[1,0,1]},
    {"name":"predict_proba","shape":[3,2],"datatype":"FP64","parameters":{"content_type":"np"},
    "data":[0.027561040926460723,0.9724389590735393,0.9804447023587686,0.019555297641231373,
    0.3230115565259999,0.6769884434740001]}]}

    Without "outputs" only the "predict" output comes back.
    """
    with running_upstream("mlserver", tmp_path) as up:
        body = post(up.infer_url, v2_request("req-3")).json()
        assert body["model_name"] == MODEL and body["id"] == "req-3"
        outputs = {o["name"]: o for o in body["outputs"]}
        assert outputs["predict"]["datatype"] == "INT64"
        assert outputs["predict"]["shape"] == [3, 1]
        assert outputs["predict"]["data"] == LABELS
        assert outputs["predict_proba"]["shape"] == [3, 2]
        assert_proba_pairs(outputs["predict_proba"]["data"], 3)

        plain = v2_request("req-plain")
        del plain["outputs"]
        only = post(up.infer_url, plain)
        assert only.headers["ce-id"] == "req-plain"
        assert [o["name"] for o in only.json()["outputs"]] == ["predict"]


def test_kserve_v1_and_v2(tmp_path: Path) -> None:
    """KServe 0.16.0 ModelServer with a kserve.Model subclass.

    v1 POST /v1/models/credit:predict
    Request:  {"instances":[[0.5,3.0,2.0],[-1.0,1.0,5.0],[0.1,0.5,9.0]]}
    Response: {"predictions":[1,0,1]}
    (rows as objects, {"x1":0.5,"x2":3.0,"x3":2.0}, are accepted too)

    v2 POST /v2/models/credit/infer, the same request as MLServer's above
    Response: {"model_name":"credit","model_version":null,"id":"req-3","parameters":null,
    "outputs":[{"name":"predict","shape":[3],"datatype":"INT64","parameters":null,
    "data":[1,0,1]},{"name":"predict_proba","shape":[3,2],"datatype":"FP64","parameters":null,
    "data":[0.027561040926460723,0.9724389590735393,0.9804447023587686,0.019555297641231373,
    0.3230115565259999,0.6769884434740001]}]}
    """
    with running_upstream("kserve", tmp_path) as up:
        assert up.infer_url == f"{up.url}/v1/models/{MODEL}:predict"
        assert post(up.infer_url, {"instances": ROWS}).json() == {"predictions": LABELS}
        as_objects = [dict(zip(("x1", "x2", "x3"), row, strict=True)) for row in ROWS]
        assert post(up.infer_url, {"instances": as_objects}).json() == {"predictions": LABELS}

        body = post(f"{up.url}/v2/models/{MODEL}/infer", v2_request("req-3")).json()
        assert body["model_name"] == MODEL and body["id"] == "req-3"
        outputs = {o["name"]: o for o in body["outputs"]}
        assert outputs["predict"]["shape"] == [3]
        assert outputs["predict"]["data"] == LABELS
        assert_proba_pairs(outputs["predict_proba"]["data"], 3)


def test_kserve_v1_predict_proba(tmp_path: Path) -> None:
    """KServe v1 with predict_fn="predict_proba" (sklearnserver's PREDICT_PROBA).

    Request:  {"instances":[[0.5,3.0,2.0],[-1.0,1.0,5.0],[0.1,0.5,9.0]]}
    Response: {"predictions":[[0.027561040926460723,0.9724389590735393],
    [0.9804447023587686,0.019555297641231373],[0.3230115565259999,0.6769884434740001]]}
    """
    with running_upstream("kserve", tmp_path, predict_fn="predict_proba") as up:
        predictions = post(up.infer_url, {"instances": ROWS}).json()["predictions"]
        assert_proba_pairs([p for pair in predictions for p in pair], 3)


def test_mlflow_invocations(tmp_path: Path) -> None:
    """MLflow 3.17.2 scoring server (mlflow models serve --env-manager local), POST /invocations.

    Request:  {"dataframe_split":{"columns":["x1","x2","x3"],
    "data":[[0.5,3.0,2.0],[-1.0,1.0,5.0],[0.1,0.5,9.0]]}}
    Response: {"predictions": [1, 0, 1]}
    (note MLflow's spaced JSON); dataframe_records, instances (records) and inputs (columns)
    give the same answer. A list-of-lists "instances" is a 400 (schema enforcement).
    """
    with running_upstream("mlflow", tmp_path) as up:
        split = {"dataframe_split": {"columns": ["x1", "x2", "x3"], "data": ROWS}}
        assert post(up.infer_url, split).json() == {"predictions": LABELS}
        records = [dict(zip(("x1", "x2", "x3"), row, strict=True)) for row in ROWS]
        columns = {name: [row[i] for row in ROWS] for i, name in enumerate(("x1", "x2", "x3"))}
        for body in ({"dataframe_records": records}, {"instances": records}, {"inputs": columns}):
            assert post(up.infer_url, body).json() == {"predictions": LABELS}


def test_mlflow_predict_proba(tmp_path: Path) -> None:
    """MLflow model saved with pyfunc_predict_fn="predict_proba".

    Request:  {"dataframe_split":{"columns":["x1","x2","x3"],
    "data":[[0.5,3.0,2.0],[-1.0,1.0,5.0],[0.1,0.5,9.0]]}}
    Response: {"predictions": [[0.027561040926460723, 0.9724389590735393],
    [0.9804447023587686, 0.019555297641231373], [0.3230115565259999, 0.6769884434740001]]}
    """
    with running_upstream("mlflow", tmp_path, predict_fn="predict_proba") as up:
        split = {"dataframe_split": {"columns": ["x1", "x2", "x3"], "data": ROWS}}
        predictions = post(up.infer_url, split).json()["predictions"]
        assert_proba_pairs([p for pair in predictions for p in pair], 3)
    # stop() took MLflow's CLI and the uvicorn it started down, and is idempotent
    assert up.proc.returncode is not None
    with pytest.raises(httpx.TransportError):
        httpx.get(up.url + "/ping", timeout=2, trust_env=False)
    up.stop()


def test_json_predict(tmp_path: Path) -> None:
    """The stdlib JSON server, POST /predict.

    Request:  {"id":"req-3","rows":[{"x1":0.5,"x2":3.0,"x3":2.0},{"x1":-1.0,"x2":1.0,"x3":5.0},
    {"x1":0.1,"x2":0.5,"x3":9.0}]}
    Response: {"id": "req-3", "results": [{"label": 1, "probability": 0.9724389590735393},
    {"label": 0, "probability": 0.01955529764123139}, {"label": 1, "probability":
    0.6769884434740001}]}
    (headers: Server: aims-json-upstream/1 Python/3.11.x, Date, Content-Type, Content-Length)
    """
    with running_upstream("json", tmp_path) as up:
        rows = [dict(zip(("x1", "x2", "x3"), row, strict=True)) for row in ROWS]
        body = post(up.infer_url, {"id": "req-3", "rows": rows}).json()
        assert body["id"] == "req-3"
        assert [r["label"] for r in body["results"]] == LABELS
        for result, p1 in zip(body["results"], P1, strict=True):
            assert math.isclose(result["probability"], p1, abs_tol=1e-9)
        bad = httpx.post(up.infer_url, json={"rows": [{"x1": 1}]}, trust_env=False)
        assert bad.status_code == 400 and "error" in bad.json()


def test_json_delay(tmp_path: Path) -> None:
    """delay= holds each /predict answer back (GET /health stays fast), to provoke time-outs."""
    with running_upstream("json", tmp_path, delay=1.0) as up:
        body = {"id": 1, "rows": [{"x1": 0.5, "x2": 3.0, "x3": 2.0}]}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(up.infer_url, json=body, timeout=0.3, trust_env=False)
        started = time.monotonic()
        assert post(up.infer_url, body).json()["id"] == 1
        assert time.monotonic() - started >= 1.0


def test_missing_venv_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VENV_ENV, str(tmp_path / "no-such-venv"))
    with pytest.raises(UpstreamError, match=r"scripts/upstreams\.sh"):
        start_upstream("json", tmp_path)
