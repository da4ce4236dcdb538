"""One register for the AI management system, against the real agent and its CLI: a
nonconformity found by an internal audit (9.2), and a management review (9.3.3) whose input is
a period report by hash, both ledgered and shown in the next period report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import base_config
from tests.integration.conftest import READ_TOKEN, TOKEN

pytestmark = pytest.mark.integration


def aims(*args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aims_agent.agent.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "AIMS_TOKEN": token},
        timeout=120,
    )


AUDIT = {
    "model": "m1",
    "source": {"type": "internal_audit", "reference": "AUD-2026-07", "reported_by": "Ines"},
    "description": "drift thresholds changed without a recorded approval",
    "requirement": "A.6.2.6: changes to monitoring criteria are approved before use",
    "controls": ["A.6.2.6", "9.2"],
    "severity": "major",
}


@pytest.fixture
def agent(tmp_path, reference_csv, drifted_agent):
    return drifted_agent(base_config(reference_csv, tmp_path / "ev"), seed=8)


def test_a_nonconformity_from_an_audit_and_a_review_are_evidence(agent, tmp_path):
    with agent.client() as c:
        r = c.post("/v1/nonconformities", json=AUDIT)
        assert r.status_code == 201, r.text
        nc = r.json()["nc_id"]
        shown = c.get(f"/v1/nonconformities/{nc}").json()
        assert shown["detected_by"]["type"] == "internal_audit" and shown["status"] == "open"
        assert shown["source"] == AUDIT["source"] and shown["requirement"]["clause"] == "9.2"
        assert [(e["event"], e["actor"]) for e in shown["events"]] == [("opened", "writer")]
        bad: list[tuple[dict[str, Any], str]] = [
            ({**AUDIT, "model": "nope"}, "model"),
            ({**AUDIT, "source": {"type": "rumour"}}, "source.type"),
            ({**AUDIT, "description": " "}, "description"),
            ({**AUDIT, "extra": 1}, "extra"),
            ({k: v for k, v in AUDIT.items() if k != "requirement"}, "requirement"),
            (
                {
                    **AUDIT,
                    "serious_incident": {"possible": True, "aware_at": "2999-01-01T00:00:00Z"},
                },
                "serious_incident.aware_at",
            ),
        ]
        for body, field in bad:
            r = c.post("/v1/nonconformities", json=body)
            assert r.status_code == 422 and r.json()["field"] == field, (field, r.text)
        assert c.post("/v1/nonconformities", content=b"{not json").status_code == 400
    with agent.client(token=READ_TOKEN) as reader:
        assert reader.post("/v1/nonconformities", json=AUDIT).status_code == 403
    with agent.client(token=None) as anonymous:
        assert anonymous.post("/v1/nonconformities", json=AUDIT).status_code == 401

    # the CLI opens one too, from a complaint
    out = aims(
        "nc", "open", "--url", agent.url, "--model", "m1", "--source", "complaint",
        "--reference", "CASE-81", "--description", "loan refused, applicant says unfairly",
        "--requirement", "A.5.4: impacts on individuals are assessed",
        "--serious-incident", "general", "--aware-at", "2026-01-05T09:00:00Z",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    complaint = json.loads(out.stdout)["nc_id"]
    with agent.client() as c:
        incident = c.get(f"/v1/nonconformities/{complaint}").json()["possible_serious_incident"]
        assert incident["art73_reporting_deadline"] == "2026-01-20T09:00:00Z"
    out = aims("nc", "list", "--url", agent.url)
    assert "m1/complaint" in out.stdout and complaint in out.stdout

    # the period report of today is the review's input, by the hash of its file
    today = datetime.now(UTC).date()
    period = f"{today}..{today}"
    out = aims("report", "--config", str(agent.config), "--period", period, "--format", "md")
    assert out.returncode == 0, out.stderr
    sha, path = out.stdout.split()
    out = aims(
        "review", "record", "--url", agent.url, "--date", str(today),
        "--attendee", "Dana (CAIO)", "--attendee", "Ines (internal audit)",
        "--input", path, "--decision", "monitoring thresholds need an approval step",
        "--action", '{"description": "add approval to the config workflow", "owner": "ml-platform",'
        ' "due_date": "2027-01-31"}',
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    review = json.loads(out.stdout)
    assert review["review_id"].startswith("MRV-")
    out = aims(
        "review", "record", "--url", agent.url, "--date", str(today), "--attendee", "x",
        "--input", "ab" * 32,
    )  # fmt: skip
    assert out.returncode == 2 and "inputs[0].sha256: no period report" in out.stderr
    with agent.client() as c:
        r = c.get("/v1/management-reviews", params={"period": period})
        assert r.headers["X-Aims-Ledger-Verified-At"]  # an evidence read: verified first
        (listed,) = r.json()
        assert listed["inputs"][0]["sha256"] == sha and listed["recorded_by"] == "writer"
        assert c.get("/v1/management-reviews", params={"period": "2026-13"}).status_code == 422
    assert agent.stop() == 0

    # the next report shows the review and the audit's nonconformity with its source
    out = aims("report", "--config", str(agent.config), "--period", period, "--format", "md")
    assert out.returncode == 0, out.stderr
    text = Path(out.stdout.split()[1]).read_text()
    assert "## Management reviews (clause 9.3)" in text and review["review_id"] in text
    assert f"inputs: {listed['inputs'][0]['report_id']} (SHA-256 {sha})" in text
    assert "source: internal_audit AUD-2026-07 (reported by Ines)" in text
    assert "add approval to the config workflow (owner ml-platform, due 2027-01-31)" in text

    # the OSCAL export names where the audit's nonconformity was found
    oscal = tmp_path / "ar.json"
    out = aims(
        "export", "oscal", "--config", str(agent.config), "--period", period, "--out", str(oscal)
    )
    assert out.returncode == 0, out.stderr
    assert "found by internal_audit AUD-2026-07 (reported by Ines)" in oscal.read_text()

    # both are in the ledger: verify is clean, and an edited review file is named
    out = aims("evidence", "verify", "--config", str(agent.config))
    assert out.returncode == 0, out.stdout + out.stderr
    doc = agent.config.parent / "ev" / review["path"]
    doc.write_bytes(doc.read_bytes().replace(b"Dana (CAIO)", b"Dana (CEO)"))
    out = aims("evidence", "verify", "--config", str(agent.config))
    assert out.returncode == 1 and review["review_id"] in out.stdout + out.stderr
