"""Governance notifications through a receiver outage and an agent restart: every event
arrives, in order, once per idempotency key, signed."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import base_config, binary, free_port
from tests.integration.conftest import metric, run_agent_cli

pytestmark = pytest.mark.integration
SECRET = "hook-secret-" + "z" * 20


class Receiver:
    """A webhook receiver on a fixed port that can go down and come back."""

    def __init__(self, port: int, status: int = 200) -> None:
        self.port, self.status = port, status
        self.received: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"headers": dict(self.headers), "body": body})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def breach(agent: Any) -> str:
    with agent.client() as c:
        r = c.post("/v1/models/m1/checks/drift/run")
        assert r.status_code == 200 and r.json()["verdict"] == "breach", r.text
        return str(r.json()["nonconformity_id"])


def pending(agent: Any, target: str) -> float | None:
    """Events not yet delivered to the receiver; None before the notifier's first pass sets
    the gauge (its counters are there from the start)."""
    try:
        return metric(agent.url, "aims_notifications_pending", target=target)
    except AssertionError:
        return None


def wait_for(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_every_event_arrives_once_after_downtime_and_a_restart(
    tmp_path: Path, reference_csv: Path, agent_factory: Any, drifted_agent: Any
) -> None:
    port = free_port()
    receiver = Receiver(port)  # down for now
    cfg = base_config(reference_csv, tmp_path / "ev")
    cfg["agent"]["notifications"] = [
        {
            "name": "grc",
            "kind": "webhook",
            "url": f"http://127.0.0.1:{port}/hook",
            "secret_env": "AIMS_TEST_HOOK_SECRET",
            "backoff_seconds": 0.2,
            "max_backoff_seconds": 0.5,
            "timeout_seconds": 2,
        }
    ]
    env = {"AIMS_TEST_HOOK_SECRET": SECRET}
    agent = drifted_agent(cfg, seed=5, env=env)
    try:
        nc = breach(agent)  # opened
        breach(agent)  # recurred
        wait_for(lambda: pending(agent, "grc") == 2)
        assert metric(agent.url, "aims_notifications_total", target="grc", outcome="retried") >= 1
        assert metric(agent.url, "aims_notifications_total", target="grc", outcome="delivered") == 0
        agent.stop(signal.SIGKILL)  # the outbox is the store: a crash loses nothing

        agent = agent_factory(agent.config, env)
        breach(agent)  # recurred again, on the restarted agent
        receiver.start()
        wait_for(lambda: len({r["headers"]["Idempotency-Key"] for r in receiver.received}) == 3)
        wait_for(lambda: pending(agent, "grc") == 0)
        time.sleep(1)  # nothing more comes
    finally:
        receiver.stop()
    keys = [r["headers"]["Idempotency-Key"] for r in receiver.received]
    assert len(keys) == len(set(keys)) == 3
    bodies = [json.loads(r["body"]) for r in receiver.received]
    assert [b["type"] for b in bodies] == [
        "nonconformity.opened",
        "nonconformity.recurred",
        "nonconformity.recurred",
    ]
    assert {b["nonconformity"]["nc_id"] for b in bodies} == {nc}
    assert [b["id"] for b in bodies] == keys
    event_ids = [int(k.rsplit("/", 1)[1]) for k in keys]
    assert event_ids == sorted(event_ids)
    for r in receiver.received:
        h = r["headers"]
        expected = hmac.new(
            SECRET.encode(), h["X-Aims-Timestamp"].encode() + b"." + r["body"], hashlib.sha256
        ).hexdigest()
        assert h["X-Aims-Signature"] == f"sha256={expected}"
    assert agent.stop() == 0
    assert SECRET not in "".join(agent.stderr)


def test_a_missing_secret_is_a_config_error(tmp_path: Path, reference_csv: Path) -> None:
    cfg = base_config(reference_csv, tmp_path / "ev")
    cfg["agent"]["notifications"] = [
        {"name": "grc", "kind": "webhook", "url": "http://127.0.0.1:9/x", "secret_env": "NOPE_X"}
    ]
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = run_agent_cli("run", "--config", str(path), without=["NOPE_X"])
    assert out.returncode == 2
    assert "agent.notifications[0].secret_env" in out.stderr and "NOPE_X" in out.stderr


def test_nonconformities_reach_a_real_alertmanager(
    tmp_path: Path, reference_csv: Path, drifted_agent: Any
) -> None:
    import subprocess

    import httpx

    alertmanager = binary("prometheus-alertmanager", "alertmanager", install="scripts/servers.sh")
    port = free_port()
    (tmp_path / "am.yml").write_text("route: {receiver: 'null'}\nreceivers: [{name: 'null'}]\n")
    am = subprocess.Popen(
        [
            alertmanager,
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    am_url = f"http://127.0.0.1:{port}"
    try:

        def am_ready() -> bool:
            try:
                return httpx.get(f"{am_url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(am_ready)
        cfg = base_config(reference_csv, tmp_path / "ev")
        cfg["agent"]["notifications"] = [{"name": "am", "kind": "alertmanager", "url": am_url}]
        agent = drifted_agent(cfg, seed=6)
        nc = breach(agent)

        def alerts() -> list[dict[str, Any]]:
            return [
                a
                for a in httpx.get(f"{am_url}/api/v2/alerts", timeout=5).json()
                if a["labels"].get("alertname") == "AimsNonconformity"
            ]

        wait_for(lambda: len(alerts()) == 1)
        [alert] = alerts()
        assert alert["labels"]["nonconformity_id"] == nc
        assert alert["labels"]["model"] == "m1" and alert["labels"]["check"] == "drift"
        assert alert["status"]["state"] == "active"
        assert metric(agent.url, "aims_notifications_total", target="am", outcome="delivered") == 1
    finally:
        am.terminate()
        am.wait(10)
