"""The real agent stays live: slow clients are timed out (408, connection closed), and /healthz
answers within the deploy manifest's 1 s probe timeout while large batches are ingested."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import yaml

from tests.conftest import as_records, base_config, make_rows
from tests.integration.conftest import TOKEN

pytestmark = pytest.mark.integration


@pytest.fixture
def agent(tmp_path, reference_csv, agent_factory):
    cfg = base_config(reference_csv, tmp_path / "ev")
    cfg["agent"].update(header_timeout_seconds=1, body_timeout_seconds=1, max_body_bytes=64 * 2**20)
    cfg["models"][0]["window"]["max_sample"] = 100_000
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return agent_factory(path)


def _connect(agent) -> socket.socket:
    url = urlsplit(agent.url)
    return socket.create_connection((url.hostname, url.port), timeout=10)


def _answer(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(4096):
        out += chunk
    return out


@pytest.mark.parametrize(
    "sent",
    [
        b"POST /v1/models/m1/records HTTP/1.1\r\nHost: a\r\n",  # headers never finished
        b"",  # connected, said nothing
        b"POST /v1/models/m1/records HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer "
        + TOKEN.encode()
        + b"\r\nContent-Length: 1000\r\n\r\n[{",  # body trickled, then nothing
    ],
)
def test_slow_clients_are_answered_408_and_closed(agent, sent):
    with _connect(agent) as sock:
        sock.sendall(sent)
        t0 = time.monotonic()
        answer = _answer(sock)  # returns when the agent closes the connection
        waited = time.monotonic() - t0
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert 0.8 < waited < 5
    with agent.client() as c:
        assert c.get("/healthz").status_code == 200
    time.sleep(0.2)
    assert not any("Traceback" in line for line in agent.stderr), "".join(agent.stderr)


def _big_body(start: int, mib: int) -> bytes:
    rows = as_records(make_rows(np.random.default_rng(start), 2000), start=start)
    line_size = len(json.dumps(rows[0])) + 1
    n = mib * 2**20 // line_size
    out = []
    for i in range(n):
        rec = dict(rows[i % len(rows)], id=f"b{start}-{i}")
        out.append(json.dumps(rec))
    return "\n".join(out).encode()


def test_healthz_answers_within_the_probe_timeout_during_large_batches(agent):
    bodies = [_big_body(k, 10) for k in range(4)]
    worst, stop = [0.0], threading.Event()

    def probe() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            httpx.get(f"{agent.url}/healthz", timeout=30).raise_for_status()
            worst[0] = max(worst[0], time.perf_counter() - t0)
            stop.wait(0.02)

    async def ingest() -> list[int]:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"}
        async with httpx.AsyncClient(base_url=agent.url, headers=headers, timeout=120) as c:
            rs = await asyncio.gather(*(c.post("/v1/models/m1/records", content=b) for b in bodies))
        return [r.status_code for r in rs]

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        statuses = asyncio.run(ingest())
    finally:
        stop.set()
        prober.join()
    assert statuses == [200] * 4
    assert worst[0] < 1.0, f"/healthz took {worst[0] * 1000:.0f} ms"  # 10 s before
