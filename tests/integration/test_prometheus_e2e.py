"""The real agent scraped by a real Prometheus with the shipped rules, alerting a real Alertmanager.

A drift breach must travel agent -> /metrics -> Prometheus rule -> Alertmanager -> webhook.
Needs Debian's prometheus and prometheus-alertmanager (scripts/servers.sh); missing ones fail.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from tests.conftest import as_records, base_config, binary, free_port, make_rows

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "configs" / "prometheus" / "aims-rules.yml"
DEADLINE_SECONDS = 60
SERVERS = "scripts/servers.sh"


@contextmanager
def server(argv: list[str], log: Path, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server until the block ends; its output goes to `log`, shown if it never gets ready."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(
                lambda: proc.poll() is None and _ok(ready_url),
                f"{argv[0]} ready at {ready_url}",
                log=log,
                timeout=20,
            )
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A receiver that keeps every JSON body POSTed to it."""
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/alerts", bodies
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(
    cond: Callable[[], object], what: str, *, log: Path | None = None, timeout: float = 60
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := cond():
            return result
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log else ""
    pytest.fail(f"no {what} within {timeout:.0f} s\n{tail}")


def firing(prometheus: str) -> dict[str, dict[str, Any]]:
    alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return {a["labels"]["alertname"]: a for a in alerts if a["state"] == "firing"}


def test_drift_breach_alerts_through_prometheus_and_alertmanager(
    tmp_path, reference_csv, agent_factory
):
    prometheus_bin = binary("prometheus", install=SERVERS)
    alertmanager_bin = binary("prometheus-alertmanager", "alertmanager", install=SERVERS)
    promtool = binary("promtool", install=SERVERS)
    # no Evidently report on the breach: it takes seconds and is not what this test is about
    cfg = base_config(reference_csv, tmp_path / "evidence", report_on_breach=False)
    assert cfg["models"][0]["checks"][0]["schedule_seconds"] == 3600
    agent_yaml = tmp_path / "agent.yaml"
    agent_yaml.write_text(yaml.safe_dump(cfg))
    am_port, prom_port = free_port(), free_port()
    am_url, prom_url = f"http://127.0.0.1:{am_port}", f"http://127.0.0.1:{prom_port}"
    am_log, prom_log = tmp_path / "alertmanager.log", tmp_path / "prometheus.log"

    with ExitStack() as stack:
        hook_url, received = stack.enter_context(webhook())
        am_yaml = tmp_path / "alertmanager.yml"
        am_yaml.write_text(
            yaml.safe_dump(
                {
                    "route": {
                        "receiver": "hook",
                        "group_by": ["alertname", "model"],
                        "group_wait": "1s",
                        "group_interval": "1s",
                        "repeat_interval": "1h",
                    },
                    "receivers": [{"name": "hook", "webhook_configs": [{"url": hook_url}]}],
                }
            )
        )
        am_argv = [
            alertmanager_bin,
            f"--config.file={am_yaml}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",  # no gossip port: a single Alertmanager
        ]
        stack.enter_context(server(am_argv, am_log, f"{am_url}/-/ready"))

        agent = agent_factory(agent_yaml)
        stack.callback(agent.stop)
        prom_yaml = tmp_path / "prometheus.yml"
        prom_yaml.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(RULES)],
                    "alerting": {
                        "alertmanagers": [
                            {"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}
                        ]
                    },
                    "scrape_configs": [
                        {
                            "job_name": "aims-agent",
                            "static_configs": [{"targets": [agent.url.removeprefix("http://")]}],
                        }
                    ],
                }
            )
        )
        prom_argv = [
            prometheus_bin,
            f"--config.file={prom_yaml}",
            f"--storage.tsdb.path={tmp_path / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ]
        stack.enter_context(server(prom_argv, prom_log, f"{prom_url}/-/ready"))

        with agent.client() as c:
            rows = make_rows(np.random.default_rng(21), 300, shift=2.0)
            r = c.post("/v1/models/m1/records", json=as_records(rows))
            assert r.status_code == 200, r.text
            run = c.post("/v1/models/m1/checks/drift/run")
            assert run.status_code == 200 and run.json()["verdict"] == "breach", run.text
            exposition = c.get("/metrics").text

        alert = wait_for(
            lambda: firing(prom_url).get("AimsDriftBreach"),
            "AimsDriftBreach firing in Prometheus",
            log=prom_log,
            timeout=DEADLINE_SECONDS,
        )
        labels, description = alert["labels"], alert["annotations"]["description"]
        assert (labels["model"], labels["check"], labels["severity"]) == ("m1", "drift", "warning")
        assert "breach threshold 50%" in description
        columns = re.search(r"own drift threshold: ([^.]*)\.$", description)
        assert columns and {"x1", "x2", "x3"} <= set(columns[1].split()), description

        def delivered() -> dict[str, Any] | None:
            for body in received:
                for a in body["alerts"]:
                    if a["status"] == "firing" and a["labels"]["alertname"] == "AimsDriftBreach":
                        return a
            return None

        sent = wait_for(
            delivered, "AimsDriftBreach at the webhook", log=am_log, timeout=DEADLINE_SECONDS
        )
        assert sent["labels"]["model"] == "m1"
        assert sent["annotations"]["runbook_url"].endswith("/docs/runbooks.md#aimsdriftbreach")
        # the breach opened a nonconformity; nothing else is wrong
        wait_for(
            lambda: "AimsNonconformityOpen" in firing(prom_url),
            "AimsNonconformityOpen firing",
            log=prom_log,
            timeout=DEADLINE_SECONDS,
        )
        assert set(firing(prom_url)) == {"AimsDriftBreach", "AimsNonconformityOpen"}

    lint = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=30
    )
    assert (lint.returncode, lint.stdout + lint.stderr) == (0, "")
