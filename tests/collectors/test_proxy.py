"""The proxy tap over real HTTP: an upstream and the tap, each a uvicorn server on port 0."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from aims_agent.collectors.proxy import Tap, protocol_for
from aims_agent.config import ProxyConfig
from aims_agent.metrics import Metrics

OIP_REQUEST = {
    "id": "body-id",
    "inputs": [{"name": "x", "datatype": "FP64", "shape": [2, 3], "data": [1, 2, 3, 4, 5, 6]}],
}


class Upstream:
    """A model server stand-in that records what reached it and answers as told."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.delay = 0.0
        self.gzip = False
        self.cookie = False
        self.mode = ""  # "chunked": no Content-Length, three parts; "short": dies mid-body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.seen.append(
            {
                "path": scope["path"],
                "query": scope["query_string"],
                "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
                "body": body,
            }
        )
        await asyncio.sleep(self.delay)
        if scope["path"].endswith("/teapot"):
            status, out = 418, b'{"error": "short and stout"}'
        elif scope["path"].endswith("/infer"):
            if (b"content-encoding", b"gzip") in scope["headers"]:
                body = gzip.decompress(body)
            n = json.loads(body)["inputs"][0]["shape"][0]
            out = json.dumps(
                {"outputs": [{"name": "p", "datatype": "INT64", "shape": [n], "data": [1] * n}]}
            ).encode()
            status = 200
        else:
            status, out = 200, b'{"ready": true}'
        headers = [(b"content-type", b"application/json"), (b"x-upstream", b"yes")]
        if self.cookie:
            headers.append((b"set-cookie", b"session=alice; Path=/"))
        if self.gzip:
            out = gzip.compress(out)
            headers.append((b"content-encoding", b"gzip"))
        if self.mode == "chunked":
            await send({"type": "http.response.start", "status": status, "headers": headers})
            for part in (out[:5], out[5:9], out[9:]):
                await send({"type": "http.response.body", "body": part, "more_body": True})
                await asyncio.sleep(0.01)
            await send({"type": "http.response.body", "body": b""})
            return
        headers.append((b"content-length", str(len(out)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if self.mode == "short":
            await send({"type": "http.response.body", "body": out[:5], "more_body": True})
            raise RuntimeError("the model server died mid-response")
        await send({"type": "http.response.body", "body": out})


def _socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@asynccontextmanager
async def serving(app: Any, sock: socket.socket | None = None) -> AsyncIterator[str]:
    sock = sock or _socket()
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", date_header=False)
    )
    server.config.setup_event_loop = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def tapped(upstream_url: str, **cfg: Any) -> AsyncIterator[tuple[Tap, httpx.AsyncClient]]:
    tap = Tap({"m": ProxyConfig(upstream=upstream_url, **cfg)}, Metrics(), clock=lambda: 100.0)
    await tap.start()
    try:
        async with serving(tap) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
            yield tap, client
    finally:
        await tap.close()


def count(tap: Tap, outcome: str) -> float:
    """aims_proxy_samples_total{outcome} of the tap's model."""
    sample = tap.metrics.proxy_samples.labels("m", outcome)
    return sample._value.get()  # type: ignore[attr-defined,no-any-return]


async def post(url: str, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(url, **kw)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_response_is_the_upstreams_and_the_exchange_is_queued():
    async def main() -> None:
        up = Upstream()
        async with serving(up) as up_url, tapped(up_url) as (tap, client):
            direct = await post(f"{up_url}/v2/models/credit/infer?x=1", json=OIP_REQUEST)
            r = await client.post("/v2/models/credit/infer?x=1", json=OIP_REQUEST)
            assert r.status_code == 200
            assert r.content == direct.content
            assert r.headers["x-upstream"] == "yes"
            assert r.headers["content-length"] == direct.headers["content-length"]
            generated = r.headers["x-request-id"]
            assert len(generated) == 32
            reached = up.seen[-1]
            assert reached["query"] == b"x=1"
            assert reached["headers"]["x-request-id"] == generated
            assert reached["headers"]["x-forwarded-for"] == "127.0.0.1"
            assert reached["body"] == up.seen[0]["body"]
            [ex] = tap.queue.take(10)
            assert ex.protocol == "oip-v2"
            assert ex.request_id is None and ex.echoed_id == generated  # made up, so an alias
            assert ex.response == direct.content
            assert ex.received_at == 100.0

    run(main())


def test_the_clients_request_id_is_kept_and_echoed():
    async def main() -> None:
        up = Upstream()
        async with serving(up) as up_url, tapped(up_url, id_header="X-Trace") as (tap, client):
            r = await client.post(
                "/v2/models/credit/infer", json=OIP_REQUEST, headers={"X-Trace": "req-7"}
            )
            assert r.headers["x-trace"] == "req-7"
            assert up.seen[-1]["headers"]["x-trace"] == "req-7"
            assert tap.queue.take(1)[0].request_id == "req-7"

    run(main())


def test_hop_by_hop_headers_stay_with_the_hop():
    async def main() -> None:
        up = Upstream()
        async with serving(up) as up_url, tapped(up_url) as (_, client):
            await client.post(
                "/v2/models/credit/infer",
                json=OIP_REQUEST,
                headers={
                    "Connection": "keep-alive, X-Secret-Hop",
                    "X-Secret-Hop": "1",
                    "Proxy-Authorization": "Basic abc",
                    "Authorization": "Bearer for-the-model",
                },
            )
            headers = up.seen[-1]["headers"]
            assert "x-secret-hop" not in headers
            assert "proxy-authorization" not in headers
            assert headers["authorization"] == "Bearer for-the-model"
            assert headers["x-forwarded-host"].startswith("127.0.0.1:")

    run(main())


def test_cookies_are_the_clients_not_the_proxys():
    """The tap keeps no cookie jar: a Set-Cookie reaches the client that caused it, and the
    upstream never sees one client's cookie on another client's request."""

    async def main() -> None:
        up = Upstream()
        async with serving(up) as up_url:
            host_url = up_url.replace("127.0.0.1", "localhost")  # a jar would take a host's cookie
            async with tapped(host_url) as (_, client):
                up.cookie = True
                first = await client.post("/v2/models/credit/infer", json=OIP_REQUEST)
                assert first.headers["set-cookie"] == "session=alice; Path=/"
                up.cookie = False
                async with httpx.AsyncClient(base_url=str(client.base_url)) as other:
                    await other.post("/v2/models/credit/infer", json=OIP_REQUEST)
                assert "cookie" not in up.seen[-1]["headers"]

    run(main())


def test_an_unsized_response_streams_through_and_is_sampled_whole():
    async def main() -> None:
        up = Upstream()
        up.mode = "chunked"
        async with serving(up) as up_url, tapped(up_url) as (tap, client):
            direct = await post(f"{up_url}/v2/models/credit/infer", json=OIP_REQUEST)
            r = await client.post("/v2/models/credit/infer", json=OIP_REQUEST)
            assert r.status_code == 200 and r.headers["transfer-encoding"] == "chunked"
            assert r.content == direct.content
            assert tap.queue.take(1)[0].response == direct.content

    run(main())


def test_an_upstream_that_dies_mid_response_is_502_and_not_sampled():
    async def main() -> None:
        up = Upstream()
        async with serving(up) as up_url, tapped(up_url) as (tap, client):
            up.mode = "short"
            r = await client.post("/v2/models/credit/infer", json=OIP_REQUEST)
            assert r.status_code == 502
            assert r.json()["error"].startswith("upstream broken: ")
            assert r.headers["x-request-id"]
            assert len(tap.queue) == 0
            assert tap.metrics.proxy_requests.labels("m", "upstream_broken")._value.get() == 1
            up.mode = ""
            assert (
                await client.post("/v2/models/credit/infer", json=OIP_REQUEST)
            ).status_code == 200

    run(main())


def test_compressed_responses_pass_raw_and_are_decoded_for_the_sample():
    async def main() -> None:
        up = Upstream()
        up.gzip = True
        async with serving(up) as up_url, tapped(up_url) as (tap, client):
            direct = await post(f"{up_url}/v2/models/credit/infer", json=OIP_REQUEST)
            r = await client.post("/v2/models/credit/infer", json=OIP_REQUEST)
            assert r.headers["content-encoding"] == "gzip"
            assert r.content == direct.content  # httpx decoded both the same way
            ex = tap.queue.take(1)[
                0
            ]  # queued as sent; decompressed only when decoded, off the path
            assert ex.response_encoding == "gzip" and ex.response[:2] == b"\x1f\x8b"
            assert json.loads(ex.bodies()[1])["outputs"][0]["data"] == [1, 1]

    run(main())


def test_non_inference_calls_and_errors_pass_through_unsampled():
    async def main() -> None:
        up = Upstream()
        async with serving(up) as up_url, tapped(up_url) as (tap, client):
            r = await client.get("/v2/health/ready")
            assert r.json() == {"ready": True}
            r = await client.post("/v2/models/credit/teapot", json={})
            assert r.status_code == 418 and r.json() == {"error": "short and stout"}
            assert len(tap.queue) == 0
            assert count(tap, "not_inference") == 2

    run(main())


def test_only_the_monitored_model_is_sampled():
    async def main() -> None:
        up = Upstream()
        async with serving(up) as up_url, tapped(up_url, upstream_model="credit") as (tap, c):
            await c.post("/v2/models/other/infer", json=OIP_REQUEST)
            await c.post("/v2/models/credit/infer", json=OIP_REQUEST)
            assert [ex.path for ex in tap.queue.take(10)] == ["/v2/models/credit/infer"]

    run(main())


def test_one_port_serves_many_models_each_by_its_route():
    async def main() -> None:
        up = Upstream()
        async with serving(up) as up_url:
            models = {
                "credit": ProxyConfig(upstream=up_url),
                "fraud": ProxyConfig(upstream=up_url, upstream_model="fraud-v2", sample_rate=0),
                "plain": ProxyConfig(upstream=up_url, protocol="json", inference_path="/score"),
            }
            tap = Tap(models, Metrics())
            await tap.start()
            try:
                async with serving(tap) as url, httpx.AsyncClient(base_url=url) as client:
                    for path in (
                        "/v2/models/credit/infer",
                        "/v2/models/fraud-v2/infer",
                        "/v2/models/unknown/infer",
                        "/v1/models/unknown:predict",
                        "/v2/health/ready",
                    ):
                        r = await client.post(path, json=OIP_REQUEST)
                        assert r.status_code in (200, 404), path  # every call is answered
                    await client.get("/v2/models/credit/ready")
            finally:
                await tap.close()
            assert [(ex.model, ex.protocol) for ex in tap.queue.take(10)] == [("credit", "oip-v2")]
            samples = tap.metrics.proxy_samples
            assert samples.labels("fraud", "not_sampled")._value.get() == 1
            assert samples.labels("", "unknown_model")._value.get() == 2
            assert samples.labels("", "not_inference")._value.get() == 1  # the health POST
            assert samples.labels("credit", "not_inference")._value.get() == 1  # GET ready
            assert tap.route("POST", "/score") == ("plain", "json")
            assert tap.metrics.proxy_requests.labels("", "forwarded")._value.get() == 3

    run(main())


def test_what_decoding_needs_is_kept_with_the_exchange():
    async def main() -> None:
        up = Upstream()
        async with serving(up) as up_url, tapped(up_url) as (tap, client):
            body = gzip.compress(json.dumps(OIP_REQUEST).encode())
            headers = {
                "Content-Encoding": "gzip",
                "Inference-Header-Content-Length": "57",
                "Content-Type": "application/json",
            }
            await client.post("/v2/models/credit/infer", content=body, headers=headers)
            [ex] = tap.queue.take(1)
            assert ex.request_encoding == "gzip" and ex.header_lengths == (57, None)
            assert json.loads(ex.bodies()[0]) == OIP_REQUEST

    run(main())


def test_sampling_rate_and_the_byte_bounded_queue():
    async def main() -> None:
        up = Upstream()
        async with serving(up) as up_url:
            async with tapped(up_url, sample_rate=0.0) as (tap, client):
                await client.post("/v2/models/credit/infer", json=OIP_REQUEST)
                assert len(tap.queue) == 0 and count(tap, "not_sampled") == 1
            async with tapped(up_url, max_queued_bytes=500) as (tap, client):
                for _ in range(5):
                    r = await client.post("/v2/models/credit/infer", json=OIP_REQUEST)
                    assert r.status_code == 200  # the client never notices the monitor
                queued = tap.queue.take(10)
                assert len(queued) == 500 // queued[0].size == 2  # 172 bytes each
                assert count(tap, "dropped") == 3

    run(main())


def test_an_unreachable_upstream_is_502_and_a_slow_one_504():
    async def main() -> None:
        dead = _socket()
        port = dead.getsockname()[1]
        dead.close()
        async with tapped(f"http://127.0.0.1:{port}") as (_, client):
            r = await client.post("/v2/models/credit/infer", json=OIP_REQUEST)
            assert r.status_code == 502
            assert r.json()["error"].startswith("upstream unreachable: ")
            assert r.headers["x-request-id"]
        up = Upstream()
        up.delay = 1.0
        async with serving(up) as up_url, tapped(up_url, timeout_seconds=0.2) as (tap, client):
            r = await client.post("/v2/models/credit/infer", json=OIP_REQUEST)
            assert r.status_code == 504
            assert "timed out" in r.json()["error"]
            up.delay = 0
            r = await client.post("/v2/models/credit/infer", json=OIP_REQUEST)
            assert r.status_code == 200  # the tap carries on

    run(main())


def test_a_body_over_the_limit_is_413_and_not_forwarded():
    async def main() -> None:
        up = Upstream()
        async with serving(up) as up_url, tapped(up_url, max_body_bytes=100) as (_, client):
            r = await client.post("/v2/models/credit/infer", content=b"x" * 101)
            assert r.status_code == 413
            assert "100 bytes" in r.json()["error"]
            assert up.seen == []

    run(main())


@pytest.mark.parametrize(
    ("cfg", "method", "path", "expected"),
    [
        ({}, "POST", "/v2/models/a/infer", "oip-v2"),
        ({}, "POST", "/v1/models/a:predict", "kserve-v1"),
        ({}, "POST", "/invocations", "mlflow"),
        ({}, "POST", "/predict", None),
        ({}, "GET", "/v2/models/a/infer", None),
        ({"protocol": "mlflow"}, "POST", "/v2/models/a/infer", None),
        ({"protocol": "json", "inference_path": "/predict"}, "POST", "/predict/", "json"),
        ({"protocol": "json", "inference_path": "/predict"}, "POST", "/other", None),
        ({"upstream_model": "a"}, "POST", "/v1/models/b:predict", None),
    ],
)
def test_which_requests_are_decoded(cfg, method, path, expected):
    assert protocol_for(ProxyConfig(upstream="http://127.0.0.1:1", **cfg), method, path) == expected
