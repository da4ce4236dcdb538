"""Signed by default, anchored outside: keygen, the validate warning, the published head and
`evidence verify --against`."""

from __future__ import annotations

import json
import stat

import pytest
import yaml
from prometheus_client import generate_latest
from sqlalchemy import delete, update

from aims_agent.agent import head
from aims_agent.agent.cli import main
from aims_agent.config import parse_config
from aims_agent.errors import ConfigError
from aims_agent.exporters.ledger import last_entry
from aims_agent.metrics import Metrics
from aims_agent.storage.schema import evidence_ledger, ledger_head, monitoring_records
from aims_agent.storage.store import Store
from tests.conftest import base_config, recorded
from tests.exporters.conftest import CTX, run


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "keys" / "ledger.key"
    assert main(["keygen", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    pub = out.with_name("ledger.key.pub")
    assert pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    from aims_agent.exporters.ledger_signing import load_private_key, load_public_key

    raw = load_public_key(pub.read_bytes())
    assert load_private_key(out.read_text()).public_key().public_bytes_raw() == raw
    assert f"public key (hex): {raw.hex()}" in printed
    assert main(["keygen", "--out", str(out)]) == 2
    assert "exists; not overwritten" in capsys.readouterr().err


def test_keygen_defaults_outside_any_evidence_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert main(["keygen"]) == 0
    assert (tmp_path / "cfg" / "aims-agent" / "ledger-signing.key").is_file()


def _config(tmp_path, reference_csv, **ledger) -> tuple:
    data = base_config(reference_csv, tmp_path / "ev")
    data["agent"]["environment"] = "production"
    data["agent"]["storage_url"] = f"sqlite:///{tmp_path / 'ev' / 'aims.db'}"
    if ledger:
        data["agent"]["ledger"] = ledger
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, data


def test_validate_warns_of_a_production_config_without_a_signing_key(
    tmp_path, reference_csv, capsys, monkeypatch
):
    monkeypatch.setenv("AIMS_TEST_TOKEN", "t" * 32)
    monkeypatch.setenv("AIMS_TEST_READ_TOKEN", "r" * 32)
    path, _ = _config(tmp_path, reference_csv)
    assert main(["validate", str(path)]) == 0
    err = capsys.readouterr().err
    assert "warning: agent.ledger: environment production without a signing key" in err
    key = tmp_path / "k.key"
    assert main(["keygen", "--out", str(key)]) == 0
    path, _ = _config(tmp_path, reference_csv, signing_key_file=str(key))
    capsys.readouterr()
    assert main(["validate", str(path)]) == 0
    assert "warning" not in capsys.readouterr().err
    key.write_text("not a key")
    assert main(["validate", str(path)]) == 2
    assert "agent.ledger.signing_key_file" in capsys.readouterr().err


def test_the_agent_publishes_its_signed_head_and_verify_checks_it(tmp_path, reference_csv, capsys):
    key = tmp_path / "k.key"
    assert main(["keygen", "--out", str(key)]) == 0
    path, data = _config(tmp_path, reference_csv, signing_key_file=str(key), publish_minutes=5)
    cfg = parse_config(data, base_dir=tmp_path)
    store, metrics = Store(cfg.storage_url), Metrics()
    try:
        publish = head.publisher(cfg, store, metrics, {}, clock=lambda: 1000.0)
        assert publish is not None and publish() is None  # an empty ledger: nothing to sign
        store.submit(recorded(run("pass", 0.1, 1.0), CTX)).result()
        store.submit(recorded(run("breach", 0.6, 2.0), CTX)).result()
        signed = publish()
        entry = store.read(last_entry)
        assert (signed.seq, signed.hash) == (entry.seq, entry.hash)
        text = generate_latest(metrics.registry).decode()
        assert (
            f'aims_ledger_head_info{{public_key="{signed.public_key}",seq="{entry.seq}",'
            f'sha256="{entry.hash}",signature="{signed.signature}",'
            f'signed_at="1970-01-01T00:16:40Z"}} 1.0'
        ) in text
    finally:
        store.close()
    capsys.readouterr()
    published = tmp_path / "published.json"
    assert main(["evidence", "head", "--config", str(path), "--format", "json"]) == 0
    published.write_text(capsys.readouterr().out)
    assert json.loads(published.read_text())["signature"]["seq"] == entry.seq
    pub = str(key) + ".pub"
    ok = ["evidence", "verify", "--config", str(path), "--against", str(published)]
    assert main([*ok, "--public-key", pub]) == 0
    assert "published head" in capsys.readouterr().out
    # the whole chain rewritten from the last entry (hash recomputed, head row moved with it):
    # the chain alone looks fine once the signatures are deleted; the published head does not
    with Store(cfg.storage_url).engine.begin() as conn:
        from aims_agent.exporters.ledger import entry_hash
        from aims_agent.storage.schema import ledger_signatures

        forged = {
            "seq": entry.seq,
            "kind": entry.kind,
            "ref_id": entry.ref_id,
            "at": entry.at + 1,
            "content_sha256": entry.content_sha256,
            "prev_hash": entry.prev_hash,
        }
        new_hash = entry_hash(**forged)
        L = evidence_ledger
        conn.execute(update(L).where(L.c.seq == entry.seq).values(at=entry.at + 1, hash=new_hash))
        conn.execute(update(ledger_head).values(hash=new_hash))
        conn.execute(delete(ledger_signatures))
    assert main(["evidence", "verify", "--config", str(path)]) == 0  # the limit of a chain
    capsys.readouterr()
    assert main(ok) == 1
    assert capsys.readouterr().out.startswith(
        f"TAMPERED: published head seq {entry.seq}: the ledger holds another hash for it"
    )
    # a cut below the published head
    with Store(cfg.storage_url).engine.begin() as conn:
        conn.execute(delete(evidence_ledger).where(evidence_ledger.c.seq == entry.seq))
        conn.execute(
            delete(monitoring_records).where(monitoring_records.c.record_id == entry.ref_id)
        )
    assert main(ok) == 1
    assert f"the ledger has no entry {entry.seq}" in capsys.readouterr().out
    # bad input
    assert main(["evidence", "verify", "--config", str(path), "--against", "nope.json"]) == 2
    assert "--against: cannot read nope.json" in capsys.readouterr().err


def test_a_configured_key_that_cannot_be_read_stops_the_agent_before_it_starts(
    tmp_path, reference_csv
):
    _, data = _config(tmp_path, reference_csv, signing_key_env="AIMS_TEST_NO_SUCH_KEY")
    cfg = parse_config(data, base_dir=tmp_path)
    with pytest.raises(
        ConfigError, match="signing_key_env: environment variable AIMS_TEST_NO_SUCH_KEY is not set"
    ):
        head.publisher(cfg, None, Metrics(), {})  # type: ignore[arg-type]
