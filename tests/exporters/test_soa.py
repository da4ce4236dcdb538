"""The statement of applicability view, from the control mapping and real evidence."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
import yaml

from aims_agent.agent.cli import main
from aims_agent.config import parse_config
from aims_agent.controls import controls_for
from aims_agent.errors import UnknownModelError
from aims_agent.exporters.evidence import EvidenceContext
from aims_agent.exporters.ledger import last_entry as ledger_last_entry
from aims_agent.exporters.soa import build_soa
from aims_agent.records import Assessment, CheckRun, Measurement, Threshold, WindowInfo
from aims_agent.storage.store import Store
from tests.conftest import base_config, recorded

T0 = datetime(2026, 11, 2, tzinfo=UTC).timestamp()
ANNEX = json.loads(
    resources.files("aims_agent.configs").joinpath("iso42001_annex_a.json").read_text()
)["annex_a_controls"]


def _record(store: Store, cfg, model: str, check, verdict: str, t: float):
    m = cfg.model(model)
    ctx = EvidenceContext(
        agent_version="0.1.0",
        config_hash=cfg.fingerprint(),
        environment="test",
        ai_system_id=m.ai_system_id,
        model_version=m.version,
        reference_id="reference.csv",
        reference_fingerprint="f" * 64,
        n_reference=100,
        schedule_seconds=check.schedule_seconds,
        definition=check.kind,
        severity=check.severity,
    )
    head = Measurement(
        check_id=check.id,
        kind=check.kind,
        metric="share",
        value=0.9 if verdict == "breach" else 0.1,
        method="share",
        headline=True,
        threshold=Threshold(breach=0.5),
    )
    run = CheckRun(
        run_id=f"{model}-{check.id}-{t}",
        model=model,
        check_id=check.id,
        kind=check.kind,
        started_at=t,
        finished_at=t + 1,
        window=WindowInfo(start=t - 60, end=t, seen=100, sampled=100),
        assessments=(Assessment(measurement=head, verdict=verdict),),  # type: ignore[arg-type]
        verdict=verdict,  # type: ignore[arg-type]
        controls=controls_for(check.kind, check.controls),
    )
    return store.submit(recorded(run, ctx)).result()


@pytest.fixture
def ev(tmp_path, reference_csv, storage_url):
    """m1: a drift and a quality check; m2: a drift check whose controls are overridden.
    m1's drift passes, then breaches (a nonconformity); its quality check passes later.
    Once in SQLite, once in PostgreSQL."""
    data = base_config(reference_csv, tmp_path / "ev")
    data["agent"]["storage_url"] = storage_url
    m1 = data["models"][0]
    m1["checks"].append({"id": "quality", "kind": "data_quality"})
    m2 = {
        **m1,
        "name": "m2",
        "checks": [{"id": "drift", "kind": "drift", "controls": ["A.6.2.6", "A.10.3"]}],
    }
    data["models"].append(m2)
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = parse_config(data, base_dir=tmp_path)
    store = Store(cfg.storage_url)
    drift, quality = cfg.model("m1").checks
    _record(store, cfg, "m1", drift, "pass", T0)
    _, nc_id, _ = _record(store, cfg, "m1", drift, "breach", T0 + 3600)
    _record(store, cfg, "m1", quality, "pass", T0 + 7200)
    yield cfg, store, nc_id, path
    store.close()


def controls_of(doc, model: str) -> dict:
    m = next(m for m in doc["models"] if m["model"] == model)
    return {c["id"]: c for c in m["controls"]}


def test_every_annex_a_control_for_every_model_in_the_standards_order(ev):
    cfg, store, _, _ = ev
    doc = store.read(lambda c: build_soa(c, cfg))
    assert doc["standard"] == "ISO/IEC 42001:2023"
    assert [m["model"] for m in doc["models"]] == ["m1", "m2"]
    for m in doc["models"]:
        assert [c["id"] for c in m["controls"]] == [c["id"] for c in ANNEX]
        assert len(m["controls"]) == 38 and m["summary"]["controls"] == 38


def test_applicability_follows_the_control_mapping_of_the_models_checks(ev):
    cfg, store, nc_id, _ = ev
    doc = store.read(lambda c: build_soa(c, cfg))
    m1 = controls_of(doc, "m1")
    # drift: A.6.2.6 primary, A.7.4 and A.6.2.4 supporting; data quality: A.7.4 primary, ...
    evidenced = {k for k, c in m1.items() if c["applicable"]}
    assert evidenced == {"A.6.2.6", "A.6.2.4", "A.7.4", "A.7.5", "A.7.6"}
    assert m1["A.6.2.6"]["checks"] == [
        {"id": "drift", "kind": "drift", "role": "primary"},
        {"id": "quality", "kind": "data_quality", "role": "supporting"},
    ]
    assert "drift (drift, primary)" in m1["A.6.2.6"]["justification"]
    assert not m1["A.5.4"]["applicable"] and m1["A.5.4"]["checks"] == []
    assert "no check of this model is mapped" in m1["A.2.2"]["justification"]
    assert m1["A.2.2"]["latest_evidence"] is None and m1["A.2.2"]["latest_status"] is None
    assert m1["A.6.2.6"]["ciso_assistant_urn"].endswith(":a.6.2.6")
    # a check's own controls replace the mapping's
    m2 = controls_of(doc, "m2")
    assert {k for k, c in m2.items() if c["applicable"]} == {"A.6.2.6", "A.10.3"}
    assert m2["A.10.3"]["checks"] == [{"id": "drift", "kind": "drift", "role": "configured"}]
    assert m2["A.6.2.6"]["latest_evidence"] is None  # m2 has no evidence yet
    s = next(m for m in doc["models"] if m["model"] == "m1")["summary"]
    assert (s["evidenced"], s["not_evidenced"], s["without_evidence_yet"]) == (5, 33, 0)
    assert m1["A.6.2.6"]["open_nonconformities"] == [nc_id]


def test_latest_evidence_is_the_newest_record_of_the_controls_checks(ev):
    cfg, store, nc_id, _ = ev
    m1 = controls_of(store.read(lambda c: build_soa(c, cfg)), "m1")
    # A.6.2.6: drift breached at +1 h, quality passed at +2 h: the quality pass is latest
    assert (m1["A.6.2.6"]["latest_evidence"], m1["A.6.2.6"]["latest_status"]) == (
        "2026-11-02T02:00:00Z",
        "pass",
    )
    # A.6.2.4 is evidenced by drift alone: its breach
    assert (m1["A.6.2.4"]["latest_evidence"], m1["A.6.2.4"]["latest_status"]) == (
        "2026-11-02T01:00:00Z",
        "breach",
    )
    assert m1["A.6.2.4"]["latest_record_id"].startswith("MR-")
    # as of half an hour in: only the first drift run counts, and no nonconformity yet
    early = controls_of(store.read(lambda c: build_soa(c, cfg, until=T0 + 1800)), "m1")
    assert (early["A.6.2.6"]["latest_status"], early["A.6.2.6"]["open_nonconformities"]) == (
        "pass",
        [],
    )
    assert early["A.7.5"]["latest_evidence"] is None


def test_one_model_and_an_unknown_one(ev):
    cfg, store, _, _ = ev
    doc = store.read(lambda c: build_soa(c, cfg, "m2"))
    assert [m["model"] for m in doc["models"]] == ["m2"]
    with pytest.raises(UnknownModelError, match="--model: unknown model 'm3'"):
        store.read(lambda c: build_soa(c, cfg, "m3"))


def test_the_cli_prints_the_view_as_json(ev, capsys, tmp_path):
    cfg, store, _, path = ev
    assert main(["soa", "--config", str(path), "--model", "m1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    ledger = doc.pop("ledger")
    assert doc == store.read(lambda c: build_soa(c, cfg, "m1"))
    head = store.read(ledger_last_entry)
    assert ledger["verified"] is True and ledger["signature"] == "unsigned"
    assert (ledger["head_seq"], ledger["head_sha256"]) == (head.seq, head.hash)
    assert main(["soa", "--config", str(path), "--model", "nope"]) == 2
    assert "--model: unknown model 'nope'; known: m1, m2" in capsys.readouterr().err
    empty = yaml.safe_load(path.read_text())
    empty["agent"].update(evidence_dir=str(tmp_path / "none"), storage_url=None)
    other = Path(tmp_path / "other.yaml")
    other.write_text(yaml.safe_dump(empty))
    assert main(["soa", "--config", str(other)]) == 2
    assert "agent.storage_url: no evidence database" in capsys.readouterr().err
