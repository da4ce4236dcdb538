"""OSCAL assessment results from real evidence, validated with compliance-trestle's models."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml
from sqlalchemy import func, select
from trestle.oscal import OSCAL_VERSION_REGEX
from trestle.oscal.assessment_results import AssessmentResults
from trestle.oscal.common import ObservationTypeValidValues, RiskStatusValidValues

from aims_agent.agent.cli import main
from aims_agent.agent.runtime import Runtime
from aims_agent.collectors.push import decode_records
from aims_agent.config import parse_config
from aims_agent.exporters.evidence import save_attachment
from aims_agent.exporters.ledger import last_entry
from aims_agent.exporters.lifecycle import apply, decode_change
from aims_agent.exporters.oscal import OSCAL_VERSION, assessment_results
from aims_agent.exporters.period import parse_period
from aims_agent.storage.schema import monitoring_records
from tests.conftest import as_records, base_config, make_rows, worker, write_reference_csv

DAY = 86400.0
ACTION = {"description": "retrain on recent data", "owner": "ml-team", "due_date": "2030-01-31"}


def validate(doc: dict) -> AssessmentResults:
    """Trestle's pydantic v2 model of OSCAL 1.2.1 (extra fields forbidden) must accept it."""
    assert list(doc) == ["assessment-results"]
    model = AssessmentResults.model_validate(doc["assessment-results"])
    assert text(model.metadata.oscal_version) == OSCAL_VERSION
    assert re.match(OSCAL_VERSION_REGEX, OSCAL_VERSION)  # the version trestle's models are of
    # trestle parses an open token before the allowed values: check those here
    for result in model.results:
        for risk in result.risks or ():
            assert text(risk.status) in {v.value for v in RiskStatusValidValues}
        for obs in result.observations or ():
            assert {text(t) for t in obs.types} <= {v.value for v in ObservationTypeValidValues}
    return model


def text(value: Any) -> Any:
    """The plain value of a trestle field (an enum member or a root model)."""
    while hasattr(value, "root"):
        value = value.root
    return value.value if isinstance(value, Enum) else value


@pytest.fixture(scope="module")
def evidence(tmp_path_factory):
    """Two passing drift runs, then drifted traffic and two breaching runs (one nonconformity,
    opened then recurred), an attachment on the first breach, and the record worked by people
    with times in the future: corrective action tomorrow, verified in 2 days, closed in 3."""
    tmp = tmp_path_factory.mktemp("oscal")
    ref = write_reference_csv(tmp / "reference.csv")
    data = base_config(ref, tmp / "ev", threshold=0.3, report_on_breach=False)
    cfg_path = tmp / "agent.yaml"
    cfg_path.write_text(yaml.safe_dump(data))
    cfg = parse_config(data, base_dir=tmp)
    runtime = Runtime(cfg)
    schema = runtime.model("m1").schema

    def ingest(seed: int, n: int, shift: float, start: int) -> None:
        body = json.dumps(
            as_records(make_rows(np.random.default_rng(seed), n, shift=shift), start=start)
        )
        asyncio.run(
            runtime.ingest.ingest(
                "m1", decode_records(body.encode(), "application/json", schema, now=0)
            )
        )

    try:
        t0 = runtime.clock()
        ingest(2, 400, 0.0, 0)
        runs = [runtime.runner.run_check("m1", "drift") for _ in range(2)]
        ingest(3, 1500, 2.0, 1000)
        runs += [runtime.runner.run_check("m1", "drift") for _ in range(2)]
        assert [r.run.verdict for r in runs] == ["pass", "pass", "breach", "breach"]
        nc_id = runs[2].nonconformity_id
        assert nc_id and runs[3].nonconformity_id == nc_id
        html = b"<html>drift report</html>" + b" " * 1209
        (cfg.agent.evidence_dir / "reports").mkdir(parents=True, exist_ok=True)
        (cfg.agent.evidence_dir / "reports" / "x.html").write_bytes(html)
        att = SimpleNamespace(
            attachment_id="att-1",
            kind="evidently_drift_report",
            path="reports/x.html",
            sha256=hashlib.sha256(html).hexdigest(),
            bytes=len(html),
        )
        runtime.store.submit(save_attachment(att, runs[2].monitoring_record_id, t0)).result()
        now = runtime.clock()

        def work(change: dict, at: float) -> None:
            runtime.store.submit(
                apply(
                    nc_id,
                    decode_change(json.dumps(change).encode()),
                    actor=worker(change),
                    now=at,
                )
            ).result()

        work(
            {"status": "investigating", "reaction": {"action": "rolled back", "by": "sre"}}, now + 1
        )
        work({"status": "corrective_action", "corrective_action": ACTION}, now + DAY)
        work(
            {"status": "verifying", "corrective_action": {**ACTION, "status": "done"}},
            now + 2 * DAY,
        )
        review = {"effective": True, "verified_by": "qa", "evidence": "three passing runs"}
        work({"status": "closed", "effectiveness_review": review}, now + 3 * DAY)
        yield SimpleNamespace(
            runtime=runtime, cfg=cfg, cfg_path=cfg_path, nc_id=nc_id, runs=runs, t0=t0, now=now
        )
    finally:
        runtime.close()


def export(ev, start: float, end: float, model: str | None = None) -> dict:
    return ev.runtime.store.read(lambda c: assessment_results(c, ev.cfg, start, end, model))


def test_the_export_validates_and_maps_runs_and_the_nonconformity(evidence):
    ev = evidence
    doc = export(ev, ev.t0 - 60, ev.now + 3600)
    ar = validate(doc)
    (result,) = ar.results
    # one observation per monitoring record of the period
    count = ev.runtime.store.read(
        lambda c: c.execute(
            select(func.count()).where(
                monitoring_records.c.executed_at >= ev.t0 - 60,
                monitoring_records.c.executed_at < ev.now + 3600,
            )
        ).scalar_one()
    )
    assert count == 4 and len(result.observations) == 4
    obs = doc["assessment-results"]["results"][0]["observations"]
    assert [o["methods"] for o in obs] == [["TEST"]] * 4
    verdicts = [next(p["value"] for p in o["props"] if p["name"] == "verdict") for o in obs]
    assert verdicts == ["pass", "pass", "breach", "breach"]
    record_ids = [r.monitoring_record_id for r in ev.runs]
    assert [o["relevant-evidence"][0]["props"][0]["value"] for o in obs] == record_ids
    assert obs[0]["origins"][0]["actors"][0]["type"] == "tool"
    assert obs[0]["subjects"][0]["title"] == "Model m1 1.0"
    assert any(
        p["name"] == "measurement" and p["value"].startswith("drift_share") for p in obs[2]["props"]
    )
    # the attachment is a back-matter resource with its hash, linked from its observation
    resources = {r["uuid"]: r for r in doc["assessment-results"]["back-matter"]["resources"]}
    href = obs[2]["relevant-evidence"][1]["href"]
    rlink = resources[href[1:]]["rlinks"][0]
    digest = hashlib.sha256(b"<html>drift report</html>" + b" " * 1209).hexdigest()
    assert rlink["href"] == "/v1/attachments/att-1" and rlink["hashes"][0]["value"] == digest
    assert doc["assessment-results"]["import-ap"]["href"][1:] in resources
    # the nonconformity: a finding on its primary Annex A control, still open at period end
    (finding,) = result.findings
    assert text(finding.target.type) == "objective-id"
    assert finding.target.target_id == "a.6.2.6"
    assert text(finding.target.status.state) == "not-satisfied"
    related = {r.observation_uuid for r in finding.related_observations}
    assert related == {o["uuid"] for o in obs[2:]}
    (risk,) = result.risks
    assert finding.related_risks[0].risk_uuid == risk.uuid
    assert text(risk.status) == "investigating"
    # the corrective action came a day after the period: a planned placeholder, and a reaction
    remediations = {r.title: r for r in risk.remediations}
    assert any("to be decided" in t for t in remediations)
    assert any(
        text(r.lifecycle) == "completed" and r.description == "rolled back"
        for r in remediations.values()
    )
    events = [e.title for e in risk.risk_log.entries]
    assert events[:2] == ["opened by aims-agent", "recurred by aims-agent"]
    assert "investigating by alice" in events
    controls = [
        s.control_id for s in result.reviewed_controls.control_selections[0].include_controls
    ]
    assert controls == ["a.6.2.4", "a.6.2.6", "a.7.4"]


def test_the_nonconformity_as_it_stood_at_the_end_of_each_period(evidence):
    ev = evidence
    remediating = export(ev, ev.t0 - 60, ev.now + 1.5 * DAY)
    result = validate(remediating).results[0]
    assert text(result.risks[0].status) == "remediating"
    (action,) = [r for r in result.risks[0].remediations if r.title.startswith("Corrective")]
    assert action.description == ACTION["description"] and text(action.lifecycle) == "planned"
    assert str(result.risks[0].deadline.date()) == ACTION["due_date"]
    assert text(result.findings[0].target.status.state) == "not-satisfied"

    closed = export(ev, ev.t0 - 60, ev.now + 4 * DAY)
    result = validate(closed).results[0]
    assert text(result.findings[0].target.status.state) == "satisfied"
    assert text(result.risks[0].status) == "closed"
    (action,) = [r for r in result.risks[0].remediations if r.title.startswith("Corrective")]
    assert text(action.lifecycle) == "completed" and "effective = True" in action.remarks

    # a period after the closure does not carry the record; one before the breach neither
    later = validate(export(ev, ev.now + 5 * DAY, ev.now + 6 * DAY)).results[0]
    assert later.findings is None and later.observations is None
    first_breach = ev.runtime.store.read(
        lambda c: c.execute(
            select(monitoring_records.c.executed_at).where(
                monitoring_records.c.record_id == ev.runs[2].monitoring_record_id
            )
        ).scalar_one()
    )
    before = validate(export(ev, ev.t0 - 60, first_breach)).results[0]
    assert len(before.observations) == 2 and before.findings is None


def test_the_same_evidence_exports_the_same_bytes_and_uuids(evidence):
    ev = evidence
    first = export(ev, ev.t0 - 60, ev.now + 3600)
    second = export(ev, ev.t0 - 60, ev.now + 3600)
    assert json.dumps(first) == json.dumps(second)
    other_model = export(ev, ev.t0 - 60, ev.now + 3600, model="m1")
    obs = first["assessment-results"]["results"][0]["observations"]
    assert [o["uuid"] for o in obs] == [
        o["uuid"] for o in other_model["assessment-results"]["results"][0]["observations"]
    ]
    # a later period's document names the same run with the same uuid; its version differs
    wider = export(ev, ev.t0 - 60, ev.now + 4 * DAY)
    assert wider["assessment-results"]["results"][0]["observations"][0]["uuid"] == obs[0]["uuid"]
    versions = {d["assessment-results"]["metadata"]["version"] for d in (first, wider)}
    assert len(versions) == 2


def test_an_empty_period_still_validates_with_the_configured_controls(evidence):
    doc = export(evidence, datetime(2001, 1, 1, tzinfo=UTC), datetime(2001, 2, 1, tzinfo=UTC))
    result = validate(doc).results[0]
    assert result.observations is None and result.findings is None
    ids = [s.control_id for s in result.reviewed_controls.control_selections[0].include_controls]
    assert "a.6.2.6" in ids
    assert doc["assessment-results"]["metadata"]["last-modified"] == "2001-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-11", "2026-11-01", "2026-12-01"),
        ("2026-12", "2026-12-01", "2027-01-01"),
        ("2026-Q4", "2026-10-01", "2027-01-01"),
        ("2026-q1", "2026-01-01", "2026-04-01"),
        ("2026", "2026-01-01", "2027-01-01"),
        ("2026-02-27..2026-03-01", "2026-02-27", "2026-03-02"),
        ("2026-05-05..2026-05-05", "2026-05-05", "2026-05-06"),
    ],
)
def test_periods(text, start, end):
    assert parse_period(text) == (
        datetime.fromisoformat(start).replace(tzinfo=UTC),
        datetime.fromisoformat(end).replace(tzinfo=UTC),
    )


@pytest.mark.parametrize(
    "text",
    [
        "2026-13",
        "2026-00",
        "2026-Q5",
        "26-11",
        "2026-02-30..2026-03-01",
        "2026-03-02..2026-03-01",
        "last month",
        "",
    ],
)
def test_bad_periods_exit_2_naming_the_flag(text, capsys, tmp_path):
    with pytest.raises(ValueError) as err:
        parse_period(text)
    assert str(err.value).startswith(repr(text))
    out = tmp_path / "x.json"
    argv = ["export", "oscal", "--config", "unused.yaml", "--period", text, "--out", str(out)]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(f"--period: {text!r}: ")
    assert not out.exists()


def test_no_evidence_store_exits_2(tmp_path, reference_csv, capsys):
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(yaml.safe_dump(base_config(reference_csv, tmp_path / "empty")))
    assert main(["export", "oscal", "--config", str(cfg), "--period", "2026-11"]) == 2
    assert "agent.storage_url: no evidence database at " in capsys.readouterr().err
    assert not (tmp_path / "empty").exists()


def test_the_cli_writes_atomically_and_prints_the_digest(evidence, capsys, tmp_path):
    today = datetime.fromtimestamp(evidence.now, UTC).date()
    period = f"{today - timedelta(days=1)}..{today + timedelta(days=1)}"
    out = tmp_path / "out" / "ar.json"
    out.parent.mkdir()
    argv = ["export", "oscal", "--config", str(evidence.cfg_path), "--period", period]
    assert main([*argv, "--out", str(out)]) == 0
    digest, path = capsys.readouterr().out.split()
    assert Path(path) == out and hashlib.sha256(out.read_bytes()).hexdigest() == digest
    assert [p.name for p in out.parent.iterdir()] == ["ar.json"]  # no temporary file left
    doc = json.loads(out.read_text())
    assert len(validate(doc).results[0].observations) == 4
    props = {p["name"]: p["value"] for p in doc["assessment-results"]["metadata"]["props"]}
    head = evidence.runtime.store.read(last_entry)
    assert props["ledger-head-sha256"] == head.hash and props["ledger-head-seq"] == str(head.seq)
    assert props["ledger-verified"] == "true" and props["ledger-signature"] == "unsigned"
    assert main([*argv, "--out", str(out)]) == 0  # overwritten whole: only the verify time differs
    digest2 = capsys.readouterr().out.split()[0]
    again = json.loads(out.read_text())
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest2

    def unstamped(d: dict) -> dict:
        meta = d["assessment-results"]["metadata"]
        meta["props"] = [p for p in meta["props"] if p["name"] != "ledger-verified-at"]
        meta["version"] = ""
        return d

    assert unstamped(again) == unstamped(doc)
    assert main([*argv, "--model", "nope"]) == 2
    assert "--model: unknown model 'nope'; known: m1" in capsys.readouterr().err


@pytest.mark.integration
def test_export_from_the_running_agent(tmp_path, reference_csv):
    """The real agent over HTTP; `aims-agent export oscal` reads its store while it runs."""
    from tests.integration.conftest import reap, start_agent

    cfg_path = tmp_path / "agent.yaml"
    data = base_config(reference_csv, tmp_path / "ev", threshold=0.3, report_on_breach=False)
    cfg_path.write_text(yaml.safe_dump(data))
    agent = start_agent(cfg_path)
    try:
        with agent.client() as c:
            normal = as_records(make_rows(np.random.default_rng(2), 400))
            assert c.post("/v1/models/m1/records", json=normal).status_code == 200
            runs = [c.post("/v1/models/m1/checks/drift/run").json() for _ in range(2)]
            drifted = as_records(make_rows(np.random.default_rng(3), 1500, shift=2.0), start=1000)
            assert c.post("/v1/models/m1/records", json=drifted).status_code == 200
            runs += [c.post("/v1/models/m1/checks/drift/run").json() for _ in range(3)]
            assert [r["verdict"] for r in runs] == ["pass"] * 2 + ["breach"] * 3
            nc_id = runs[2]["nonconformity_id"]
            change = {"status": "investigating", "comment": "looking"}
            assert c.patch(f"/v1/nonconformities/{nc_id}", json=change).status_code == 200
        today = datetime.now(UTC).date()
        period = f"{today - timedelta(days=1)}..{today + timedelta(days=1)}"
        out = tmp_path / "ar.json"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "aims_agent.agent.cli",
                "export",
                "oscal",
                "--config",
                str(cfg_path),
                "--period",
                period,
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[0] == hashlib.sha256(out.read_bytes()).hexdigest()
        doc = json.loads(out.read_text())
        result = validate(doc).results[0]
        assert len(result.observations) == 5
        (finding,) = result.findings
        assert finding.target.target_id == "a.6.2.6"
        assert text(finding.target.status.state) == "not-satisfied"
        assert len(finding.related_observations) == 3
        assert text(result.risks[0].status) == "investigating"
        agent.stop()
    finally:
        reap(agent)
