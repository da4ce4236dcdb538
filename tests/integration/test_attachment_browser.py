"""A value sent to the agent cannot script the Evidently report it lands in: the report of a
real agent, fetched over its API and served with the API's headers, opened in Chromium."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import as_records, base_config, make_rows, write_reference_csv
from tests.integration.conftest import reap, start_agent
from tests.integration.test_report_browser import _browse, chromium  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

XSS = "</script><script>document.title='X'</script><!--"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict]:
    """The drift report of a window whose categorical values carry a script, as the agent
    serves it (body and headers)."""
    reference = write_reference_csv(tmp_path / "reference.csv")
    config = tmp_path / "agent.yaml"
    config.write_text(
        yaml.safe_dump(base_config(reference, tmp_path / "ev", report_on_breach=False))
    )
    agent = start_agent(config)
    try:
        with agent.client() as c:
            rows = make_rows(np.random.default_rng(5), 300)
            for row in rows[::3]:
                row["c1"] = XSS
            assert c.post("/v1/models/m1/records", json=as_records(rows)).status_code == 200
            r = c.post("/v1/models/m1/checks/drift/report")
            assert r.status_code == 200, r.text
            page = c.get(r.json()["attachment"]["href"])
            assert page.status_code == 200
        yield {"body": page.content, "headers": page.headers}
    finally:
        reap(agent)


def _serve(body: bytes, headers: dict[str, str]) -> tuple[http.server.HTTPServer, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/report.html"


def test_a_script_in_a_value_does_not_run_and_the_report_still_renders(
    chromium,  # noqa: F811 - the fixture
    served,
    tmp_path,
):
    body, headers = served["body"], served["headers"]
    assert b"document.title='X'" in body  # the value is there, escaped
    assert XSS.encode() not in body
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"].startswith("sandbox allow-scripts;")
    keep = ("content-type", "content-security-policy", "x-content-type-options")
    server, url = _serve(body, {k: v for k, v in headers.items() if k in keep})
    try:
        dom = _browse(chromium, tmp_path / "profile", "--dump-dom", url).stdout
    finally:
        server.shutdown()
        server.server_close()
    assert "<title>X</title>" not in dom
    assert "Dataset Drift" in dom  # Evidently's script ran under the policy and drew the page
