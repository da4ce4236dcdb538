"""One tap port for many models, over HTTP and gRPC, in front of a real multi-model MLServer
(the credit model served as "credit" and as "fraud"): each call lands in its model's window, a
model not configured passes through unsampled and is counted, and a label joins by any id the
client knows (the X-Request-ID it sent or was given, or the body id)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import yaml

from aims_agent.collectors.protocols import oip_pb2 as pb
from tests.conftest import base_config, free_port
from tests.integration.conftest import metric
from tests.integration.upstreams import start_upstream

pytestmark = pytest.mark.integration
FEATURES = ("x1", "x2", "x3")
INFER = "/inference.GRPCInferenceService/ModelInfer"


def v2_body(rid: str | None, rows: list[list[float]]) -> bytes:
    doc: dict[str, Any] = {
        "inputs": [
            {"name": "input-0", "datatype": "FP64", "shape": [len(rows), 3], "data": sum(rows, [])}
        ],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    if rid is not None:
        doc["id"] = rid
    return json.dumps(doc).encode()


def grpc_request(model: str, rid: str, rows: list[list[float]]) -> bytes:
    t = pb.ModelInferRequest.InferInputTensor(name="input-0", datatype="FP64", shape=[len(rows), 3])
    t.contents.fp64_contents.extend(sum(rows, []))
    outputs = [
        pb.ModelInferRequest.InferRequestedOutputTensor(name=n)
        for n in ("predict", "predict_proba")
    ]
    return pb.ModelInferRequest(
        model_name=model, id=rid, inputs=[t], outputs=outputs
    ).SerializeToString()


def config(tmp_path: Path, reference: Path, upstream: Any) -> Path:
    cfg = base_config(reference, tmp_path / "ev")
    http_port, grpc_port = free_port(), free_port()
    decode = {"input": "input-0", "prediction": "predict", "score": "predict_proba"}
    decode["score_index"] = 1  # type: ignore[assignment]
    models = []
    for name, served in (("m1", "credit"), ("m2", "fraud")):
        m = json.loads(json.dumps(cfg["models"][0]))
        m["name"] = name
        m["schema"] = {
            "numeric": list(FEATURES),
            "prediction": "prediction",
            "score": "score",
            "label": "label",
        }
        tap = {"upstream_model": served, **decode}
        m["proxy"] = {"port": http_port, "upstream": upstream.url, **tap}
        m["grpc_proxy"] = {"port": grpc_port, "upstream": upstream.grpc_target, **tap}
        models.append(m)
    cfg["models"] = models
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def wait_for(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_one_port_many_models_over_http_and_grpc(tmp_path, reference_csv, agent_factory):
    up = start_upstream("mlserver", tmp_path / "upstream", also=("fraud",))
    try:
        agent = agent_factory(config(tmp_path, reference_csv, up))
        tap, grpc_tap = agent.proxies["m1"], agent.grpc["m1"]
        assert (agent.proxies["m2"], agent.grpc["m2"]) == (tap, grpc_tap)  # one port each
        rng = np.random.default_rng(5)
        rows = {n: [[round(float(v), 3) for v in rng.normal(size=3)]] for n in range(12)}
        given: dict[str, str] = {}  # request -> the X-Request-ID the tap made up and returned
        with httpx.Client(base_url=tap, timeout=30) as client:
            for n, model in enumerate(["credit"] * 4 + ["fraud"] * 3 + ["other"] * 2):
                r = client.post(
                    f"/v2/models/{model}/infer",
                    content=v2_body(f"body-{n}", rows[n]),
                    headers={"Content-Type": "application/json"},
                )
                assert r.status_code == (404 if model == "other" else 200), r.text
                given[f"body-{n}"] = r.headers["x-request-id"]
            assert client.get("/v2/health/ready").status_code == 200
        with grpc.insecure_channel(grpc_tap) as channel:
            infer = channel.unary_unary(INFER)
            for n, model in ((9, "credit"), (10, "fraud")):
                infer(
                    grpc_request(model, f"body-{n}", rows[n]),
                    metadata=(("x-request-id", f"hdr-{n}"),),
                    timeout=30,
                )
            with pytest.raises(grpc.RpcError) as err:
                infer(grpc_request("other", "body-11", rows[11]), timeout=30)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND

        with agent.client() as api:
            wait_for(lambda: metric(api, "aims_window_seen_records", model="m1") == 5)
            wait_for(lambda: metric(api, "aims_window_seen_records", model="m2") == 4)
            assert metric(api, "aims_proxy_samples_total", model="", outcome="unknown_model") == 3
            assert metric(api, "aims_proxy_samples_total", model="m1", outcome="decoded") == 5
            assert (
                metric(api, "aims_grpc_proxy_calls_total", model="", method="ModelInfer",
                       code="NOT_FOUND")
                == 1
            )  # fmt: skip
            # a label joins under each id the client knows: the one it was given back, its body
            # id, the gRPC metadata id, and the gRPC body id
            labels = [
                {"id": given["body-0"], "label": 1},
                {"id": "body-1", "label": 0},
                {"id": "hdr-9", "label": 1},
                {"id": "no-such-id", "label": 1},
            ]
            r = api.post("/v1/models/m1/labels", json=labels)
            assert r.json() == {"joined": 3, "unknown": 1, "expired": 0}, r.text
            r = api.post("/v1/models/m2/labels", json=[{"id": "body-10", "label": 1}])
            assert r.json()["joined"] == 1
        assert agent.stop() == 0
    finally:
        up.stop()
