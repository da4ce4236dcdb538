"""Payload loggers against the real agent: CloudEvents as KServe's and Seldon Core's loggers send
them and ModelMesh partials at TrustyAI's consumer path (tests/logger_events.py: sources)."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from aims_agent.collectors.protocols import oip_pb2 as pb
from tests import logger_events
from tests.conftest import base_config
from tests.integration.conftest import TOKEN, metric

pytestmark = pytest.mark.integration


def headers(ce_id: str, half: str, **kw: Any) -> dict[str, str]:
    """Binary-mode CloudEvent headers as KServe's logger sets them, stamped now."""
    return logger_events.kserve(half, ce_id, at=time.time(), **kw)


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
        "prediction": "predict",
        "score": "proba",
        "pair_timeout_seconds": 2,
    }
    cfg["models"][0]["trustyai"] = {"model_id": "credit-model"}
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


def post(c, body: bytes, headers: dict[str, str]) -> Any:
    return c.post("/v1/models/m1/kserve-logger", content=body, headers=headers)


def test_v1_and_v2_events_gzip_and_ce_time_reach_the_window(agent):
    """One model, both KServe protocols (each event told by its body), a gzipped response,
    the client's X-Request-Id (kept in Ce-Metadata) as the record id, Ce-Time as its time."""
    with agent.client() as c:
        v1_req = json.dumps({"instances": [[0.1, 2.0, 3.0, 1]]}).encode()
        v1_resp = json.dumps({"predictions": [1]}).encode()
        assert post(c, v1_req, headers("v1-1", "request")).json()["status"] == "waiting"
        assert post(c, v1_resp, headers("v1-1", "response")).json()["records"] == 1
        req, resp = oip("v2-1", [[0.1, 2.0, 3.0, 1], [0.5, 1.0, 4.0, 2]])
        post(c, req, headers("v2-1", "request", request_id="client-7"))
        r = post(c, gzip.compress(resp), headers("v2-1", "response", request_id="client-7"))
        assert r.json()["records"] == 2 and seen(c) == 3
        labels = [{"id": "client-7-0", "label": 1}, {"id": "v2-1-1", "label": 0}]
        assert c.post("/v1/models/m1/labels", json=labels).json()["joined"] == 2
        # a logger that lags: its Ce-Time is kept within the bound, and counted when clamped
        old = logger_events.kserve("request", "late", at=time.time() - 7200)
        post(c, v1_req, old)
        post(c, v1_resp, logger_events.kserve("response", "late", at=time.time() - 7200))
        assert metric(c, "aims_kserve_events_total", model="m1", outcome="time_clamped") == 1


def test_a_lone_half_expires_on_a_timer_and_the_gauges_show_it(agent):
    with agent.client() as c:
        req, _ = oip("lone", [[0.1, 2.0, 3.0, 1]])
        post(c, req, headers("lone", "request"))
        assert metric(c, "aims_kserve_pending_halves", model="m1") == 1
        assert metric(c, "aims_kserve_pending_bytes", model="m1") == len(req)
        deadline = time.monotonic() + 10  # pair_timeout_seconds is 2; no other event comes
        while metric(c, "aims_kserve_pending_halves", model="m1") != 0:
            assert time.monotonic() < deadline, "the lone half never expired"
            time.sleep(0.2)
        assert metric(c, "aims_kserve_events_total", model="m1", outcome="dropped") == 1


def test_seldon_core_events_pair_by_request_id(agent):
    with agent.client() as c:
        request = b'{"data": {"ndarray": [[0.1, 2.0, 3.0, 1]]}}'
        response = b'{"data": {"names": ["t:0", "t:1"], "ndarray": [[0.3, 0.7]]}}'
        seldon = logger_events.seldon
        r = post(c, request, seldon("request", "puid-1", at=time.time()))
        assert r.json()["status"] == "waiting"
        r = post(c, response, seldon("response", "puid-1", at=time.time()))
        assert r.json() == {"status": "paired", "records": 1, "rejected": 0}, r.text
        r = c.post("/v1/models/m1/labels", json=[{"id": "puid-1", "label": 1}])
        assert r.json()["joined"] == 1


def test_modelmesh_partials_at_trustyais_consumer_path(agent):
    t = pb.ModelInferRequest.InferInputTensor(name="input-0", datatype="FP64", shape=[1, 4])
    t.contents.fp64_contents.extend([0.1, 2.0, 3.0, 1])
    outputs = []
    for name, dtype, field, value in (
        ("predict", "INT64", "int64_contents", 1),
        ("proba", "FP64", "fp64_contents", 0.9),
    ):
        o = pb.ModelInferResponse.InferOutputTensor(name=name, datatype=dtype, shape=[1])
        getattr(o.contents, field).append(value)
        outputs.append(o)
    request = pb.ModelInferRequest(inputs=[t]).SerializeToString()
    response = pb.ModelInferResponse(outputs=outputs).SerializeToString()
    partial = logger_events.partial
    with agent.client() as c:
        r = c.post(
            "/consumer/kserve/v2", content=partial("request", "mm-1", request, "credit-model")
        )
        assert r.status_code == 200 and r.json()["status"] == "waiting", r.text
        r = c.post(
            "/consumer/kserve/v2", content=partial("response", "mm-1", response, "credit-model")
        )
        assert r.json()["records"] == 1 and seen(c) == 1
        r = c.post("/consumer/kserve/v2", content=partial("request", "mm-2", request, "nope"))
        assert r.status_code == 404 and "credit-model" not in r.json()["error"]  # names none
    with agent.client(token=None) as c:  # data needs a token, as everywhere
        r = c.post("/consumer/kserve/v2", content=partial("request", "mm-3", request))
        assert r.status_code == 401
