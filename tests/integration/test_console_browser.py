"""The governance console as people open it: mounted in a real agent (`console: {enabled:
true}`) and served alone by `aims-agent console`, each page rendered by headless Chromium
(Debian's) with the console's own Content-Security-Policy in force; screenshots are written
beside the test's files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    CHROMIUM_FLAGS,
    audit_pack_files,
    base_config,
    binary,
    write_reference_csv,
)

pytestmark = pytest.mark.integration

FLAGS = CHROMIUM_FLAGS


@pytest.fixture(scope="module")
def chromium() -> str:
    return binary("chromium", install="scripts/browser.sh")


def browse(chromium: str, profile: Path, *args: str) -> str:
    out = subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.stdout


def test_the_console_shows_a_breach_from_a_running_agent(chromium, tmp_path, drifted_agent):
    cfg = base_config(write_reference_csv(tmp_path / "reference.csv"), tmp_path / "evidence")
    cfg["console"] = {"enabled": True}
    agent = drifted_agent(cfg, seed=3)
    with agent.client() as c:
        run = c.post("/v1/models/m1/checks/drift/run").json()
    assert run["verdict"] == "breach"
    nc = run["nonconformity_id"]
    pages = {
        "overview": ("/console/", ["m1", "breach", "1 open nonconformity"]),
        "controls": ("/console/controls", ["A.6.2.6", "Statement of applicability"]),
        "check": ("/console/models/m1/checks/drift", ["drift_share", "Runs, newest first"]),
        "register": ("/console/nonconformities", [nc, "drift_share"]),
        "record": (f"/console/nonconformities/{nc}", [nc, "opened", "aims-agent"]),
    }
    for name, (path, texts) in pages.items():
        dom = browse(chromium, tmp_path / f"profile-{name}", "--dump-dom", agent.url + path)
        for text in texts:
            assert text in dom, (name, text)
        assert 'href="/console/static/console.css"' in dom
        shot = tmp_path / f"console-{name}.png"
        browse(
            chromium,
            tmp_path / f"profile-shot-{name}",
            f"--screenshot={shot}",
            "--window-size=1280,1000",
            agent.url + path,
        )
        assert shot.stat().st_size > 10_000, name  # a rendered page, not a blank one
    # the stylesheet is the only other request a page makes, and the CSP allows nothing else
    r = httpx.get(agent.url + "/console/", timeout=30, trust_env=False)
    assert r.headers["content-security-policy"].startswith("default-src 'none'; style-src 'self'")

    # the audit pack from the real agent: every file matches its line in SHA256SUMS
    pack = httpx.get(
        agent.url + "/console/audit-pack.zip", params={"period": "2020-01-01..2100-01-01"},
        timeout=60, trust_env=False,
    )  # fmt: skip
    assert pack.status_code == 200
    assert len(audit_pack_files(pack.content)) == 5

    # the same store served by `aims-agent console`, as a governance team would run it
    proc = subprocess.Popen(
        [sys.executable, "-m", "aims_agent.agent.cli", "console", "--config", str(agent.config),
         "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("aims-agent console listening on http://127.0.0.1:"), line
        url = line.rsplit(" ", 1)[1].strip()
        r = httpx.get(url + f"nonconformities/{nc}", timeout=30, trust_env=False)
        assert r.status_code == 200 and nc in r.text
    finally:
        proc.terminate()
        proc.wait(15)
        for pipe in (proc.stdout, proc.stderr):
            if pipe:
                pipe.close()


def test_the_console_command_names_bad_input():
    proc = subprocess.run(
        [sys.executable, "-m", "aims_agent.agent.cli", "console", "--config", "/nonexistent.yaml"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "nonexistent.yaml" in proc.stderr
