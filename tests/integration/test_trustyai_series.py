"""TrustyAI's series from the agent, scraped by a real Prometheus beside a TrustyAI service's: the
same PromQL (TrustyAI's demo dashboard's, and one selecting by its labels) finds both.

The TrustyAI side is the exposition its service publishes at /q/metrics, written here from its
source (trustyai-explainability explainability-service at 8c01552ee774: `PrometheusPublisher`
names the gauge `trustyai_` + the metric name and tags it with the request's
`retrieveDefaultTags` + `retrieveTags`; Micrometer's Prometheus registry renders it; the label
set is the one `BasePrometheusTest` asserts). Needs Debian's prometheus (scripts/servers.sh).
"""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from tests.conftest import as_records, base_config, binary, free_port, make_rows
from tests.integration.test_prometheus_e2e import SERVERS, server, wait_for

pytestmark = pytest.mark.integration
# one SPD and one DIR request as a TrustyAI user defines them for this model
TRUSTYAI = """# HELP trustyai_spd  
# TYPE trustyai_spd gauge
trustyai_spd{batch_size="5000",favorable_value="1",metricName="SPD",model="credit-model",outcome="prediction",privileged="\\"g1\\"",protected="group",request="%s",requestName="spd-group",unprivileged="\\"g2\\"",} 0.0125
# HELP trustyai_dir  
# TYPE trustyai_dir gauge
trustyai_dir{batch_size="5000",favorable_value="1",metricName="DIR",model="credit-model",outcome="prediction",privileged="\\"g1\\"",protected="group",request="%s",requestName="dir-group",unprivileged="\\"g2\\"",} 1.03
"""  # noqa: E501, W291


@contextmanager
def trustyai_service() -> Iterator[str]:
    body = (TRUSTYAI % (uuid.uuid4(), uuid.uuid4())).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/q/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()["data"]["result"]  # type: ignore[no-any-return]


def test_a_trustyai_panel_query_finds_the_agents_series_as_trustyais(
    tmp_path, reference_csv, agent_factory
):
    prometheus_bin = binary("prometheus", install=SERVERS)
    promtool = binary("promtool", install=SERVERS)
    cfg = base_config(reference_csv, tmp_path / "evidence")
    model = cfg["models"][0]
    model["trustyai"] = {"model_id": "credit-model"}
    model["checks"].append(
        {
            "id": "fair",
            "kind": "fairness",
            "schedule_seconds": 3600,
            "min_samples": 10,
            "min_group_size": 10,
            "groups": {"group": {"privileged": "g1", "unprivileged": "g2"}},
        }
    )
    agent_yaml = tmp_path / "agent.yaml"
    agent_yaml.write_text(yaml.safe_dump(cfg))
    prom_port = free_port()
    prom_url = f"http://127.0.0.1:{prom_port}"
    with ExitStack() as stack:
        trustyai = stack.enter_context(trustyai_service())
        agent = agent_factory(agent_yaml)
        stack.callback(agent.stop)
        rows = make_rows(np.random.default_rng(8), 400)
        with agent.client() as c:
            assert c.post("/v1/models/m1/records", json=as_records(rows)).status_code == 200
            run = c.post("/v1/models/m1/checks/fair/run")
            assert run.status_code == 200, run.text
            exposition = c.get("/metrics").text
        by_group = {
            g: np.mean([r["prediction"] for r in rows if r["group"] == g]) for g in ("g1", "g2")
        }
        prom_yaml = tmp_path / "prometheus.yml"
        prom_yaml.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": "aims-agent",
                            "static_configs": [{"targets": [agent.url.removeprefix("http://")]}],
                        },
                        {
                            "job_name": "trustyai-service",
                            "metrics_path": "/q/metrics",
                            "static_configs": [{"targets": [trustyai]}],
                        },
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
        prom_log = tmp_path / "prometheus.log"
        stack.enter_context(server(prom_argv, prom_log, f"{prom_url}/-/ready"))

        for name, expected in (
            ("trustyai_spd", by_group["g2"] - by_group["g1"]),
            ("trustyai_dir", by_group["g2"] / by_group["g1"]),
        ):
            # the panel's query (TrustyAI's demo dashboard: avg(trustyai_spd)) sees both
            series = wait_for(
                lambda n=name: len(r := query(prom_url, f'{n}{{model="credit-model"}}')) == 2 and r,
                f"{name} from both targets",
                log=prom_log,
                timeout=30,
            )
            assert query(prom_url, f"avg({name})")
            jobs = {s["metric"]["job"]: s for s in series}
            ours, theirs = jobs["aims-agent"]["metric"], jobs["trustyai-service"]["metric"]
            assert set(ours) == set(theirs)  # the same label names
            same = ("batch_size", "favorable_value", "metricName", "model", "outcome")
            same += ("privileged", "protected", "unprivileged")
            assert {k: ours[k] for k in same} == {k: theirs[k] for k in same}
            assert float(jobs["aims-agent"]["value"][1]) == pytest.approx(expected)
            # one group across both when selected and grouped by TrustyAI's request labels
            grouped = query(prom_url, f"count by ({', '.join(same)}) ({name})")
            assert [g["value"][1] for g in grouped] == ["2"]

    lint = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=30
    )
    # the exposition is sound; promtool's only remarks are on TrustyAI's own camelCase labels
    remarks = (lint.stdout + lint.stderr).splitlines()
    assert remarks and all(
        line.startswith(("trustyai_spd ", "trustyai_dir ")) and "camelCase" in line
        for line in remarks
    ), remarks
