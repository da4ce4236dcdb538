"""KServe's payload logger against the real agent: CloudEvents as KServe's logger sends them."""

from __future__ import annotations

import json

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import base_config
from tests.integration.conftest import TOKEN

pytestmark = pytest.mark.integration


def headers(ce_id: str, half: str) -> dict[str, str]:
    """Binary-mode CloudEvent headers as KServe's agent (logger) sets them."""
    return {
        "Content-Type": "application/json",
        "Ce-Specversion": "1.0",
        "Ce-Id": ce_id,
        "Ce-Type": f"org.kubeflow.serving.inference.{half}",
        "Ce-Source": "http://localhost:9081/",
        "Ce-Inferenceservicename": "credit-model",
        "Ce-Namespace": "models",
        "Ce-Component": "predictor",
        "Ce-Endpoint": "default",
    }


def oip(ce_id: str, rows: list[list[float]]) -> tuple[bytes, bytes]:
    """An Open Inference Protocol v2 exchange: one [n, 4] FP64 input, INT64 class + FP64 score."""
    n = len(rows)
    request = {
        "id": ce_id,
        "inputs": [
            {
                "name": "input-0",
                "shape": [n, 4],
                "datatype": "FP64",
                "data": [v for r in rows for v in r],
            }
        ],
    }
    response = {
        "model_name": "credit-model",
        "id": ce_id,
        "outputs": [
            {"name": "predict", "shape": [n], "datatype": "INT64", "data": [1] * n},
            {"name": "proba", "shape": [n], "datatype": "FP64", "data": [0.75] * n},
        ],
    }
    return json.dumps(request).encode(), json.dumps(response).encode()


def seen(client) -> int:
    return client.get("/v1/models").json()[0]["window"]["seen"]


@pytest.fixture
def agent(tmp_path, reference_csv, agent_factory):
    cfg = base_config(reference_csv, tmp_path / "ev")
    # features x1 x2 x3 c1 in column order; c1 takes the 4th positional value
    cfg["models"][0]["kserve_logger"] = {
        "protocol": "oip-v2",
        "prediction": "predict",
        "score": "proba",
        "pair_timeout_seconds": 60,
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return agent_factory(path)


def test_request_and_response_events_pair_into_records(agent):
    with agent.client() as c:
        req, resp = oip("ev-1", [[0.1, 2.0, 3.0, 1], [0.5, 1.0, 4.0, 2]])
        r = c.post("/v1/models/m1/kserve-logger", content=req, headers=headers("ev-1", "request"))
        assert r.status_code == 200 and r.json()["status"] == "waiting"
        assert seen(c) == 0
        r = c.post("/v1/models/m1/kserve-logger", content=resp, headers=headers("ev-1", "response"))
        assert r.status_code == 200 and r.json() == {
            "status": "paired",
            "records": 2,
            "rejected": 0,
        }
        assert seen(c) == 2
        # the response may arrive first
        req, resp = oip("ev-2", [[0.3, 1.5, 2.0, 3]])
        c.post("/v1/models/m1/kserve-logger", content=resp, headers=headers("ev-2", "response"))
        r = c.post("/v1/models/m1/kserve-logger", content=req, headers=headers("ev-2", "request"))
        assert r.json()["records"] == 1 and seen(c) == 3


def test_bad_events_get_400_and_are_counted(agent):
    with agent.client() as c:
        h = headers("ev-3", "request")
        del h["Ce-Id"]
        r = c.post("/v1/models/m1/kserve-logger", content=b"{}", headers=h)
        assert r.status_code == 400 and "ce-id" in r.json()["error"]
        r = c.post(
            "/v1/models/m1/kserve-logger",
            content=b"{}",
            headers={**headers("ev-3", "request"), "Ce-Type": "something.else"},
        )
        assert r.status_code == 400
        req, _ = oip("ev-4", [[0.1, 2.0, 3.0, 1]])
        c.post("/v1/models/m1/kserve-logger", content=req, headers=headers("ev-4", "request"))
        r = c.post(
            "/v1/models/m1/kserve-logger",
            content=b'{"outputs": 3}',
            headers=headers("ev-4", "response"),
        )
        assert r.status_code == 400 and "oip-v2" in r.json()["error"]
        text = c.get("/metrics").text
        values = {
            tuple(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "aims_kserve_events_total"
        }
        assert values[(("model", "m1"), ("outcome", "undecodable"))] == 3
        assert seen(c) == 0


def test_token_in_query_for_loggers_that_cannot_set_headers(agent):
    req, _ = oip("ev-5", [[0.1, 2.0, 3.0, 1]])
    with agent.client(token=None) as c:
        r = c.post("/v1/models/m1/kserve-logger", content=req, headers=headers("ev-5", "request"))
        assert r.status_code == 401
        r = c.post(
            "/v1/models/m1/kserve-logger",
            params={"token": TOKEN},
            content=req,
            headers=headers("ev-5", "request"),
        )
        assert r.status_code == 200
        # only this endpoint takes a query token
        r = c.post("/v1/models/m1/records", params={"token": TOKEN}, content=b"[]")
        assert r.status_code == 401
