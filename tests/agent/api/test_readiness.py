"""/readyz says not ready while storage writes fail and while a proxied model server is down;
/healthz stays up (the process is alive, restarting it would not help)."""

from __future__ import annotations

import socket

import numpy as np
from sqlalchemy import event

from tests.conftest import as_records, make_rows


def test_readyz_is_503_while_storage_writes_fail_and_recovers(api):
    assert api.get("/readyz", scope=None).status_code == 200
    engine = api.runtime.store.engine

    def full(dbapi_conn, _):
        dbapi_conn.execute("PRAGMA max_page_count = 1")

    event.listen(engine, "connect", full)
    engine.dispose()
    batch = as_records(make_rows(np.random.default_rng(1), 3000))
    assert api.post("/v1/models/m1/records", json=batch).status_code == 503
    r = api.get("/readyz", scope=None)
    assert r.status_code == 503 and r.json()["storage"] == "writes failing"
    assert api.get("/healthz", scope=None).status_code == 200
    event.remove(engine, "connect", full)
    engine.dispose()
    assert api.post("/v1/models/m1/records", json=batch).status_code == 200
    assert api.get("/readyz", scope=None).status_code == 200


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_readyz_is_503_while_a_proxied_model_server_is_down(make_api):
    port = _closed_port()

    def proxied(data: dict) -> None:
        data["models"][0]["proxy"] = {"port": 0, "upstream": f"http://127.0.0.1:{port}"}

    api = make_api(proxied)
    r = api.get("/readyz", scope=None)
    assert r.status_code == 503
    assert list(r.json()["upstreams"]) == ["m1 (proxy)"]
    with socket.socket() as server:  # the model server comes up
        server.bind(("127.0.0.1", port))
        server.listen()
        assert api.get("/readyz", scope=None).status_code == 200
