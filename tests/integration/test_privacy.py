"""Personal data never reaches storage: hashed ids and categories, dropped fields."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from tests.conftest import as_records, base_config, make_rows
from tests.integration.conftest import run_agent_cli

pytestmark = pytest.mark.integration
KEY = "pii-key-" + "k" * 24


def test_hashed_and_dropped_fields_are_never_stored(tmp_path, reference_csv, agent_factory):
    cfg = base_config(reference_csv, tmp_path / "ev")
    cfg["models"][0]["privacy"] = {
        "hash": ["id", "c1", "group"],
        "drop": ["email"],
        "key_env": "AIMS_TEST_PII_KEY",
    }
    cfg["models"][0]["checks"].append(
        {"id": "quality", "kind": "data_quality", "schedule_seconds": 3600, "min_samples": 50}
    )
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    agent = agent_factory(path, {"AIMS_TEST_PII_KEY": KEY})
    records = as_records(make_rows(np.random.default_rng(2), 200))
    for i, r in enumerate(records):
        r["id"] = f"customer-{i}@example.org"
        r["email"] = f"person{i}@example.org"
        r.pop("label")
    with agent.client() as c:
        r = c.post("/v1/models/m1/records", json=records)
        assert r.status_code == 200, r.text
        labels = [{"id": f"customer-{i}@example.org", "label": 1} for i in range(50)]
        assert c.post("/v1/models/m1/labels", json=labels).json()["joined"] == 50
        run = c.post("/v1/models/m1/checks/quality/run").json()
        assert run["verdict"] == "pass", run  # hashed categories match the hashed reference
        assert c.post("/v1/models/m1/checks/drift/run").json()["verdict"] == "pass"
    assert agent.stop() == 0
    stored = b"".join(p.read_bytes() for p in (tmp_path / "ev").rglob("*") if p.is_file())
    assert b"example.org" not in stored
    assert b"customer-1" not in stored
    assert b'"g1"' not in stored and b"\xa2g1" not in stored  # msgpack str "g1"
    assert KEY.encode() not in stored
    assert KEY not in "".join(agent.stderr)


def test_a_missing_key_is_a_config_error(tmp_path, reference_csv):
    cfg = base_config(reference_csv, tmp_path / "ev")
    cfg["models"][0]["privacy"] = {"hash": ["id"], "key_env": "NO_SUCH_KEY_X"}
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = run_agent_cli("run", "--config", str(path), without=["NO_SUCH_KEY_X"])
    assert out.returncode == 2 and "models[0].privacy.key_env" in out.stderr
