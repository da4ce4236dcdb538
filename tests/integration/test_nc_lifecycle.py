"""The nonconformity lifecycle over HTTP and through the CLI, against the real agent."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
import yaml

from tests.conftest import NC_ALLOWED, NC_PATHS, base_config
from tests.integration.conftest import READ_TOKEN, TOKEN

pytestmark = pytest.mark.integration
STATES = ("open", "investigating", "corrective_action", "verifying", "closed", "rejected")
# what each step needs, given up front so that only the transition rules decide
EVERYTHING = {
    "reaction": {"action": "traffic routed to the previous model", "by": "sre"},
    "cause_analysis": {"root_cause": "upstream schema change", "method": "5 whys"},
    "corrective_action": {
        "description": "retrain on the new schema",
        "owner": "ml-team",
        "due_date": "2026-12-31",
        "status": "done",
    },
    "effectiveness_review": {"effective": True, "verified_by": "qa", "evidence": "MR-x"},
}


@pytest.fixture
def agent(tmp_path, reference_csv, drifted_agent):
    data = base_config(reference_csv, tmp_path / "ev")
    # the transition table alone, worked by one machine token: segregation of duties is off
    # here and has tests of its own (tests/agent/api/test_oidc.py)
    off = {"reviewer_not_doer": False, "person_closes_agent_records": False}
    data["agent"]["segregation_of_duties"] = off
    return drifted_agent(data, seed=8)


def new_nc(c: Any) -> str:
    r = c.post("/v1/models/m1/checks/drift/run").json()
    assert r["verdict"] == "breach" and r["nonconformity_id"]
    return str(r["nonconformity_id"])


def patch(c: Any, nc: str, **change: Any) -> Any:
    return c.patch(f"/v1/nonconformities/{nc}", json=change)


def test_every_allowed_transition_works_and_every_other_is_409(agent):
    with agent.client() as c:
        for state in STATES:
            nc = new_nc(c)
            assert patch(c, nc, **EVERYTHING).status_code == 200
            for step in NC_PATHS[state]:
                r = patch(c, nc, status=step, justification="false alarm: sensor outage")
                assert r.status_code == 200 and r.json()["status"] == step, r.text
            for target in STATES:
                if target == state or target in NC_ALLOWED[state]:
                    continue
                r = patch(c, nc, status=target, justification="x")
                assert r.status_code == 409, (state, target, r.text)
                assert nc in r.json()["error"]
            assert c.get(f"/v1/nonconformities/{nc}").json()["status"] == state
            if state not in ("closed", "rejected"):  # free the model and check for the next
                way = "rejected" if "rejected" in NC_ALLOWED[state] else None
                closing = NC_PATHS["closed"]
                for step in [way] if way else closing[closing.index(state) + 1 :]:
                    r = patch(c, nc, status=step, justification="done with this one")
                    assert r.status_code == 200, r.text


def test_changes_are_events_with_their_actor_and_need_the_write_scope(agent):
    with agent.client() as c:
        nc = new_nc(c)
        assert patch(c, nc, status="investigating", comment="looking").status_code == 200
        r = patch(c, nc, severity="bogus")
        assert r.status_code == 422 and r.json()["field"] == "severity"
        assert patch(c, "NC-nope", status="investigating").status_code == 404
        r = patch(c, nc, status="closed")
        assert r.status_code == 409 and "from investigating" in r.json()["error"]
    with agent.client(token=READ_TOKEN) as reader:
        r = patch(reader, nc, status="rejected", justification="no")
        assert r.status_code == 403 and "write" in r.json()["error"]
        events = reader.get(f"/v1/nonconformities/{nc}").json()["events"]
    assert [(e["event"], e["actor"]) for e in events] == [
        ("opened", "aims-agent"),
        ("investigating", "writer"),
        ("commented", "writer"),
    ]


def cli(agent: Any, *args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aims_agent.agent.cli", "nc", *args, "--url", agent.url],
        capture_output=True,
        text=True,
        env={**os.environ, "AIMS_TOKEN": token},
        timeout=60,
    )


def test_the_cli_lists_shows_and_updates(agent):
    with agent.client() as c:
        nc = new_nc(c)
    out = cli(agent, "list")
    assert out.returncode == 0 and nc in out.stdout and "open" in out.stdout
    out = cli(agent, "update", nc, "--status", "investigating", "--set", "severity=major")
    assert out.returncode == 0, out.stderr
    out = cli(agent, "update", nc, "--status", "closed")
    assert out.returncode == 2 and "409" in out.stderr and "from investigating" in out.stderr
    out = cli(agent, "update", nc, "--status", "rejected", "--justification", "x", token=READ_TOKEN)
    assert out.returncode == 2 and "403" in out.stderr
    out = cli(agent, "show", nc)
    assert out.returncode == 0
    shown = yaml.safe_load(out.stdout)
    assert shown["status"] == "investigating" and shown["severity"] == "major"
    assert [e["event"] for e in shown["events"]] == [
        "opened",
        "updated",
        "escalated",
        "investigating",
    ]


def test_statement_of_applicability_over_http(agent):
    with agent.client() as c:
        nc = new_nc(c)
        assert nc
    with agent.client(token=READ_TOKEN) as reader:
        soa = reader.get("/v1/statement-of-applicability").json()
        [model] = soa["models"]
        by_id = {ctl["id"]: ctl for ctl in model["controls"]}
        assert by_id["A.6.2.6"]["applicable"] and by_id["A.6.2.6"]["latest_status"] == "breach"
        assert model["summary"]["evidenced"] >= 1
        assert reader.get("/v1/statement-of-applicability?model=nope").status_code == 404
    with agent.client(token=None) as anonymous:
        assert anonymous.get("/v1/statement-of-applicability").status_code == 401
