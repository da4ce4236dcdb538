"""The proxy tap in front of real model servers: MLServer (Open Inference Protocol v2), KServe's
model server (v1), the MLflow scoring server, and a plain JSON server, each on loopback.

For every protocol the same requests go to the model server directly and through the tap:
the answers must be byte-identical, and the tapped exchanges must land in the window as one
record per batch row, joinable to late labels by the request id."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from tests.conftest import base_config
from tests.integration.conftest import AgentProcess, metric
from tests.integration.upstreams import Upstream, start_upstream

pytestmark = pytest.mark.integration
FEATURES = ("x1", "x2", "x3")


def batch(rng: np.random.Generator, n: int) -> list[list[float]]:
    return [
        [round(float(rng.normal()), 4), round(float(rng.gamma(2, 2)), 4), round(float(v), 4)]
        for v in rng.uniform(0, 10, n)
    ]


def body(kind: str, model: str, rows: list[list[float]], rid: str) -> tuple[str, dict[str, Any]]:
    """The inference path and request body of `rows` in each server's protocol."""
    if kind == "mlserver":
        n = len(rows)
        return f"/v2/models/{model}/infer", {
            "id": rid,
            "inputs": [
                {
                    "name": "input-0",
                    "datatype": "FP64",
                    "shape": [n, 3],
                    "data": [v for r in rows for v in r],
                }
            ],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        }
    if kind == "kserve":
        return f"/v1/models/{model}:predict", {"instances": rows}
    if kind == "mlflow":
        return "/invocations", {"dataframe_split": {"columns": list(FEATURES), "data": rows}}
    return "/predict", {"id": rid, "rows": [dict(zip(FEATURES, r, strict=True)) for r in rows]}


PROXY: dict[str, dict[str, Any]] = {
    "mlserver": {
        "input": "input-0",
        "prediction": "predict",
        "score": "predict_proba",
        "score_index": 1,
    },
    "kserve": {},
    "mlflow": {},
    "json": {
        "protocol": "json",
        "inference_path": "/predict",
        "records_path": "rows",
        "prediction_path": "results.label",
        "score_path": "results.probability",
    },
}


@pytest.fixture
def upstreams(tmp_path: Path) -> Iterator[dict[str, Upstream]]:
    started: dict[str, Upstream] = {}
    yield started
    for up in started.values():
        up.stop()


def config(
    tmp_path: Path, reference: Path, proxy: dict[str, Any], window: dict[str, Any] | None = None
) -> Path:
    cfg = base_config(reference, tmp_path / "ev")
    model = cfg["models"][0]
    model["window"] |= window or {}
    model["schema"] = {
        "numeric": list(FEATURES),
        "prediction": "prediction",
        "score": "score",
        "label": "label",
    }
    model["proxy"] = {"port": 0, **proxy}
    model["checks"].append(
        {
            "id": "perf",
            "kind": "performance",
            "schedule_seconds": 3600,
            "min_samples": 10,
            "metrics": {"accuracy": {"min": 0.5}},
        }
    )
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def wait_for(predicate: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("kind", ["mlserver", "kserve", "mlflow", "json"])
def test_tapped_traffic_is_answered_unchanged_and_lands_in_the_window(
    kind, tmp_path, reference_csv, agent_factory, upstreams
):
    up = upstreams[kind] = start_upstream(kind, tmp_path / "upstream")
    # one of them on a sliding window: a day, advancing hourly
    window = {"kind": "sliding", "step_seconds": 3600} if kind == "json" else None
    agent: AgentProcess = agent_factory(
        config(tmp_path, reference_csv, {"upstream": up.url, **PROXY[kind]}, window)
    )
    tap = agent.proxies["m1"]
    rng = np.random.default_rng(3)
    sent: dict[str, list[list[float]]] = {}
    with httpx.Client(timeout=30) as plain, agent.client() as api:
        for i in range(12):
            rows = batch(rng, 1 + i % 4)
            rid = f"req-{kind}-{i}"
            path, payload = body(kind, up.model, rows, rid)
            content = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json", "X-Request-ID": rid}
            direct = plain.post(up.url + path, content=content, headers=headers)
            tapped = plain.post(tap + path, content=content, headers=headers)
            assert direct.status_code == tapped.status_code == 200, tapped.text
            assert tapped.content == direct.content
            assert tapped.headers["content-type"] == direct.headers["content-type"]
            assert tapped.headers["x-request-id"] == rid
            sent[rid] = rows
        # a call that is not an inference passes through and is not sampled
        health = {"mlserver": "/v2/health/ready", "kserve": f"/v1/models/{up.model}"}
        health |= {"mlflow": "/ping", "json": "/health"}
        assert plain.get(tap + health[kind]).status_code == 200

        total = sum(len(r) for r in sent.values())
        wait_for(lambda: metric(api, "aims_window_seen_records", model="m1") == total)
        assert metric(api, "aims_proxy_samples_total", model="m1", outcome="decoded") == 12
        assert metric(api, "aims_proxy_samples_total", model="m1", outcome="not_inference") == 1

        # ground truth arrives later, keyed by the request id and the row
        labels = [
            {"id": f"{rid}-{j}" if len(rows) > 1 else rid, "label": int(r[0] > 0)}
            for rid, rows in sent.items()
            for j, r in enumerate(rows)
        ]
        r = api.post("/v1/models/m1/labels", json=labels)
        assert r.status_code == 200 and r.json()["joined"] == total, r.text

        run = api.post("/v1/models/m1/checks/perf/run").json()
        assert run["window"]["seen"] == total and run["window"]["sampled"] == total
        assert run["verdict"] in ("pass", "warn", "breach"), run
        [record] = api.get("/v1/monitoring-records", params={"check": "perf"}).json()
        assert record["window"]["records_seen"] == total
        assert record["window"]["kind"] == (window or {}).get("kind", "tumbling")
    assert agent.stop() == 0


def test_a_slow_or_dead_upstream_gives_504_or_502_and_the_agent_stays_healthy(
    tmp_path, reference_csv, agent_factory, upstreams
):
    up = upstreams["json"] = start_upstream("json", tmp_path / "upstream", delay=1.0)
    agent = agent_factory(
        config(
            tmp_path, reference_csv, {"upstream": up.url, "timeout_seconds": 0.3, **PROXY["json"]}
        )
    )
    tap = agent.proxies["m1"]
    payload = json.dumps(body("json", up.model, [[0.1, 2.0, 3.0]], "slow-1")[1])
    with httpx.Client(timeout=30) as plain, agent.client() as api:
        r = plain.post(tap + "/predict", content=payload)
        assert r.status_code == 504 and "timed out" in r.json()["error"]
        up.stop()
        r = plain.post(tap + "/predict", content=payload)
        assert r.status_code == 502 and "unreachable" in r.json()["error"]
        assert api.get("/healthz").status_code == 200
        assert metric(api, "aims_proxy_requests_total", model="m1", outcome="upstream_timeout") == 1
        assert (
            metric(api, "aims_proxy_requests_total", model="m1", outcome="upstream_unreachable")
            == 1
        )
        assert metric(api, "aims_window_seen_records", model="m1") == 0


def test_binary_tensor_data_through_the_tap_lands_like_json(
    tmp_path, reference_csv, agent_factory, upstreams
):
    """The binary data extension (Triton's, which KServe's v2 REST server reads): the input's
    values follow the JSON as raw little-endian bytes, Inference-Header-Content-Length long."""
    up = upstreams["kserve"] = start_upstream("kserve", tmp_path / "upstream")
    proxy = {"upstream": up.url, **PROXY["mlserver"]}
    agent: AgentProcess = agent_factory(config(tmp_path, reference_csv, proxy))
    rows = [[0.5, 3.0, 2.0], [-1.0, 1.0, 5.0]]
    data = np.asarray(rows, dtype="<f8").tobytes()
    header = json.dumps(
        {
            "id": "bin-1",
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [2, 3],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(data)},
                }
            ],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        }
    ).encode()
    headers = {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }
    path = f"/v2/models/{up.model}/infer"
    with httpx.Client(timeout=30) as plain, agent.client() as api:
        direct = plain.post(up.url + path, content=header + data, headers=headers)
        tapped = plain.post(agent.proxies["m1"] + path, content=header + data, headers=headers)
        assert direct.status_code == tapped.status_code == 200, tapped.text
        assert tapped.content == direct.content
        wait_for(lambda: metric(api, "aims_window_seen_records", model="m1") == 2)
        labels = [{"id": "bin-1-0", "label": 1}, {"id": "bin-1-1", "label": 0}]
        assert api.post("/v1/models/m1/labels", json=labels).json()["joined"] == 2
        assert metric(api, "aims_proxy_samples_total", model="m1", outcome="decoded") == 1
