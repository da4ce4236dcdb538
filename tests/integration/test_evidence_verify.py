"""`aims-agent evidence verify` against a ledger the real agent wrote, tampered with one way at
a time, each on a fresh copy of the evidence store."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, create_engine, delete, select, update
from sqlalchemy.engine import make_url

from aims_agent.storage.schema import (
    evidence_ledger,
    ledger_head,
    ledger_signatures,
    monitoring_records,
    nonconformities,
)
from tests.conftest import as_records, base_config, make_rows, write_reference_csv
from tests.integration.conftest import reap, start_agent

pytestmark = pytest.mark.integration
L = evidence_ledger
KEY_ENV = "AIMS_TEST_LEDGER_KEY"
BACKENDS = ["sqlite", "postgresql"]
_copies = itertools.count()


def _clone_sqlite(url: str, dest: Path) -> str:
    target = dest / "aims.db"
    src, dst = sqlite3.connect(str(make_url(url).database)), sqlite3.connect(target)
    with dst:
        src.backup(dst)  # a consistent copy, whatever is still in the WAL
    src.close()
    dst.close()
    return f"sqlite:///{target}"


def _clone_postgresql(url: str, dest: Path) -> str:
    source = make_url(url)
    name = f"{source.database}_copy{next(_copies)}"
    admin = create_engine(source.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{source.database}"')
    admin.dispose()
    return source.set(database=name).render_as_string(hide_password=False)


CLONE: dict[str, Callable[[str, Path], str]] = {
    "sqlite": _clone_sqlite,
    "postgresql": _clone_postgresql,
}


@pytest.fixture(scope="module", params=BACKENDS)
def storage_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Where the agent under test keeps its evidence: SQLite, then PostgreSQL (a database on
    the session's server, copied per test with CREATE DATABASE ... TEMPLATE)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'aims.db'}"
        return
    server = request.getfixturevalue("postgres")
    yield server.url(server.create_database())


# A person works the record: every clause 10.2 field gets a value an auditor could alter.
WORK = [
    {
        "status": "investigating",
        "reaction": {"action": "traffic moved to the previous model", "by": "ops"},
        "severity": "major",
        "serious_incident": {"possible": True, "kind": "general"},
        "comment": "looking into it",
    },
    {
        "status": "corrective_action",
        "cause_analysis": {"root_cause": "upstream unit change", "method": "5 whys"},
        "corrective_action": {
            "description": "retrain on converted units",
            "owner": "Ana Ruiz",
            "due_date": "2031-01-31",
        },
        "management_system_change": "unit checks added to the data contract",
    },
    {
        "status": "verifying",
        "corrective_action": {
            "description": "retrain on converted units",
            "owner": "Ana Ruiz",
            "due_date": "2031-01-31",
            "status": "done",
        },
    },
    {
        "effectiveness_review": {
            "effective": True,
            "verified_by": "Bo Chen",
            "evidence": "three passing windows",
        }
    },
]


def write_config(dest: Path, reference: Path, url: str) -> Path:
    cfg = base_config(reference, dest / "evidence", report_on_breach=True)
    cfg["agent"]["storage_url"] = url
    cfg["agent"]["ledger"] = {"signing_key_env": KEY_ENV}
    # one machine token works the record here: the duties are tested in test_oidc.py
    off = {"reviewer_not_doer": False, "person_closes_agent_records": False}
    cfg["agent"]["segregation_of_duties"] = off
    path = dest / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def real_ledger(
    storage_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The agent's own ledger: drifted traffic, three drift runs (the first opens a
    nonconformity and attaches Evidently's report, the others recur), then a clean stop (which
    signs the head with the configured key)."""
    root = tmp_path_factory.mktemp("ledger")
    reference = write_reference_csv(root / "reference.csv")
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    agent = start_agent(write_config(root, reference, storage_url), env={KEY_ENV: raw.hex()})
    try:
        with agent.client() as c:
            records = as_records(make_rows(np.random.default_rng(2), 600, shift=2.0))
            assert c.post("/v1/models/m1/records", json=records).status_code == 200
            runs = [c.post("/v1/models/m1/checks/drift/run").json() for _ in range(2)]
            nc = runs[0]["nonconformity_id"]
            for change in WORK:  # then the last run: the ledger ends on a monitoring record
                r = c.patch(f"/v1/nonconformities/{nc}", json=change)
                assert r.status_code == 200, r.text
            runs.append(c.post("/v1/models/m1/checks/drift/run").json())
        assert [r["verdict"] for r in runs] == ["breach"] * 3
        assert agent.stop() == 0
    finally:
        reap(agent)
    yield {
        "url": storage_url,
        "root": root,
        "reference": reference,
        "key": key,
        "nc_id": runs[0]["nonconformity_id"],
        "records": [r["monitoring_record_id"] for r in runs],
    }


@pytest.fixture
def copy(real_ledger: dict[str, Any], tmp_path: Path) -> Iterator[tuple[Path, Engine, Path]]:
    """A fresh copy of the store and its attachments: (config, engine on the copy, evidence)."""
    evidence = tmp_path / "evidence"  # the copy's evidence_dir (see write_config)
    shutil.copytree(real_ledger["root"] / "evidence" / "attachments", evidence / "attachments")
    url = CLONE[make_url(real_ledger["url"]).get_backend_name()](real_ledger["url"], evidence)
    engine = create_engine(url)
    yield write_config(tmp_path, real_ledger["reference"], url), engine, evidence
    engine.dispose()


def cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aims_agent.agent.cli", "evidence", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def entries(engine: Engine) -> dict[int, Any]:
    with engine.connect() as conn:
        return {r.seq: r for r in conn.execute(select(L).order_by(L.c.seq))}


def seq_of(engine: Engine, ref: str) -> int:
    return next(s for s, e in entries(engine).items() if e.ref_id == ref)


def test_the_agents_ledger_is_intact_and_chains_every_record(real_ledger, copy):
    config, engine, _ = copy
    kinds = [e.kind for e in entries(engine).values()]
    assert kinds.count("monitoring_record") == 3 and kinds.count("nonconformity") == 1
    # opened, 2 recurrences; then the person's work: updated, escalated x2, investigating,
    # commented; updated, corrective_action; updated, verifying; updated
    assert kinds.count("nonconformity_event") == 13 and kinds.count("attachment") == 1
    proc = cli("verify", "--config", config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    head = entries(engine)[len(kinds)]
    intact, signed = proc.stdout.strip().splitlines()
    assert intact == f"ledger intact: {len(kinds)} entries, head {head.hash}"
    assert signed.startswith(f"signed head: seq {head.seq}, signed ")  # at the agent's stop
    assert signed.endswith("(no trusted key given)")


def alter_record_byte(engine: Engine, real_ledger: dict[str, Any], _: Path) -> tuple[int, str, str]:
    ref = real_ledger["records"][1]
    with engine.begin() as conn:
        where = monitoring_records.c.record_id == ref
        body = conn.execute(select(monitoring_records.c.body).where(where)).scalar_one()
        stamp = body["created_at"]  # ...:33.123456Z: one digit changed
        body["created_at"] = stamp[:-2] + str((int(stamp[-2]) + 1) % 10) + "Z"
        conn.execute(update(monitoring_records).where(where).values(body=body))
    seq = seq_of(engine, ref)
    return seq, f"monitoring_record {ref}", "record altered: field created_at differs"


def alter_ledger_byte(engine: Engine, *_: Any) -> tuple[int, str, str]:
    e = entries(engine)[3]
    h = e.content_sha256
    flipped = h[:10] + ("a" if h[10] != "a" else "b") + h[11:]
    with engine.begin() as conn:
        conn.execute(update(L).where(L.c.seq == 3).values(content_sha256=flipped))
    return 3, f"{e.kind} {e.ref_id}", "entry altered"


def delete_entry(engine: Engine, *_: Any) -> tuple[int, str, str]:
    e = entries(engine)[4]
    with engine.begin() as conn:
        conn.execute(delete(L).where(L.c.seq == 4))
    # the entry is gone with its kind and id; its record, now unchained, names it
    return 4, f"{e.kind} {e.ref_id}: record not in the ledger", "entry missing (gap after seq 3)"


def delete_record(engine: Engine, real_ledger: dict[str, Any], _: Path) -> tuple[int, str, str]:
    ref = real_ledger["records"][2]
    with engine.begin() as conn:
        conn.execute(delete(monitoring_records).where(monitoring_records.c.record_id == ref))
    return seq_of(engine, ref), f"monitoring_record {ref}", "record removed"


def swap_entries(engine: Engine, *_: Any) -> tuple[int, str, str]:
    rows = entries(engine)
    cols = ("kind", "ref_id", "at", "content_sha256", "prev_hash", "hash")
    with engine.begin() as conn:
        conn.execute(update(L).where(L.c.seq == 2).values(**{c: getattr(rows[5], c) for c in cols}))
        conn.execute(update(L).where(L.c.seq == 5).values(**{c: getattr(rows[2], c) for c in cols}))
    return 2, f"{rows[5].kind} {rows[5].ref_id}", "out of order: written as seq 5"


def alter_attachment_file(engine: Engine, _: Any, evidence: Path) -> tuple[int, str, str]:
    (e,) = [e for e in entries(engine).values() if e.kind == "attachment"]
    (html,) = (evidence / "attachments").glob("*.html")
    data = bytearray(html.read_bytes())
    data[len(data) // 2] ^= 0x01
    html.write_bytes(bytes(data))
    return e.seq, f"attachment {e.ref_id}", "attachment file altered"


def close_nonconformity(
    engine: Engine, real_ledger: dict[str, Any], _: Path
) -> tuple[int, str, str]:
    nc = real_ledger["nc_id"]
    with engine.begin() as conn:
        conn.execute(
            update(nonconformities)
            .where(nonconformities.c.nc_id == nc)
            .values(status="closed", open_key=None)
        )
    return seq_of(engine, nc), f"nonconformity {nc}", "field status altered"


@pytest.mark.parametrize(
    "tamper",
    [
        alter_record_byte,
        alter_ledger_byte,
        delete_entry,
        delete_record,
        swap_entries,
        alter_attachment_file,
        close_nonconformity,
    ],
)
def test_each_tampering_is_caught_and_named(real_ledger, copy, tamper):
    config, engine, evidence = copy
    seq, what, reason = tamper(engine, real_ledger, evidence)
    proc = cli("verify", "--config", config)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    first, *rest = proc.stdout.splitlines()
    assert first.startswith(f"TAMPERED: entry {seq}")
    assert reason in first
    assert what in proc.stdout
    data = json.loads(cli("verify", "--config", config, "--format", "json").stdout)
    assert data["ok"] is False and data["first_problem"]["seq"] == seq


def _set_json(value: Any, path: list[str], new: Any) -> Any:
    value = json.loads(json.dumps(value))
    node = value
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = new
    return value


# (table, key column, the record's ref in the fixture, column, JSON path in it, new value,
#  what verify names): every mutable field of each kind of evidence row
NC_FIELDS = [
    ("status", [], "closed", "field status altered"),
    ("recurrences", [], 0, "field recurrences altered"),
    ("last_seen_at", [], 1.0, "field last_seen_at altered"),
    ("open_key", [], None, "field open_key altered"),
    ("body", ["severity"], "minor", "field body.severity altered"),
    ("body", ["reaction", "action"], "none", "field body.reaction.action altered"),
    ("body", ["cause_analysis", "root_cause"], "x", "field body.cause_analysis.root_cause"),
    ("body", ["corrective_action", "owner"], "Eve", "field body.corrective_action.owner"),
    ("body", ["corrective_action", "due_date"], "2039-01-01", "body.corrective_action.due_date"),
    ("body", ["corrective_action", "status"], "planned", "body.corrective_action.status"),
    (
        "body",
        ["effectiveness_review", "verified_by"],
        "Eve",
        "body.effectiveness_review.verified_by",
    ),
    ("body", ["possible_serious_incident"], False, "field body.possible_serious_incident altered"),
    ("body", ["management_system_change"], None, "field body.management_system_change"),
    (
        "body",
        ["detected_by", "monitoring_record_id"],
        "MR-x",
        "body.detected_by.monitoring_record_id",
    ),
    ("body", ["nature", "observed"], "fine", "field body.nature.observed altered"),
    ("body", ["model"], "other", "field body.model altered"),
]
MR_FIELDS = [
    ("outcome", [], "pass", "column outcome disagrees with its body"),
    ("nonconformity_id", [], None, "column nonconformity_id disagrees with its body"),
    ("executed_at", [], 1.0, "column executed_at disagrees with its body"),
    ("model", [], "m2", "column model disagrees with its body"),
    ("check_id", [], "perf", "column check_id disagrees with its body"),
    ("body", ["result", "outcome"], "pass", "field result.outcome differs"),
    ("body", ["result", "value"], 0.01, "field result.value differs"),
    ("body", ["window", "records_seen"], 1, "field window differs"),
    ("body", ["nonconformity_id"], None, "field nonconformity_id differs"),
]
EVENT_FIELDS = [
    ("actor", [], "someone", "field actor differs"),
    ("at", [], 2.0, "field at differs"),
    ("event", [], "rejected", "field event differs"),
    ("nc_id", [], "NC-other", "field nc_id differs"),
    ("body", ["set", "status"], "closed", "field body.set differs"),
]
ATTACHMENT_FIELDS = [
    ("path", [], "attachments/other.html", "field path differs"),
    ("sha256", [], "0" * 64, "field sha256 differs"),
    ("bytes", [], 1, "field bytes differs"),
    ("kind", [], "other", "field kind differs"),
    ("monitoring_record_id", [], "MR-x", "field monitoring_record_id differs"),
    ("created_at", [], 1.0, "field created_at differs"),
]


def _target(engine: Engine, real_ledger: dict[str, Any], table: str) -> tuple[Any, Any, str]:
    from aims_agent.storage.schema import attachments, nonconformity_events

    if table == "nonconformity":
        nc = real_ledger["nc_id"]
        return nonconformities, nonconformities.c.nc_id == nc, nc
    if table == "monitoring_record":
        ref = real_ledger["records"][1]
        return monitoring_records, monitoring_records.c.record_id == ref, ref
    if table == "attachment":
        (e,) = [e for e in entries(engine).values() if e.kind == "attachment"]
        return attachments, attachments.c.attachment_id == e.ref_id, e.ref_id
    e = nonconformity_events.c
    with engine.connect() as conn:
        event_id = conn.execute(select(e.event_id).where(e.event == "corrective_action")).scalar()
    return nonconformity_events, e.event_id == event_id, str(event_id)


@pytest.mark.parametrize(
    ("kind", "column", "path", "new", "reason"),
    [("nonconformity", *f) for f in NC_FIELDS]
    + [("monitoring_record", *f) for f in MR_FIELDS]
    + [("nonconformity_event", *f) for f in EVENT_FIELDS]
    + [("attachment", *f) for f in ATTACHMENT_FIELDS],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
def test_each_mutable_field_altered_in_the_database_is_named(
    real_ledger, copy, kind, column, path, new, reason
):
    config, engine, _ = copy
    table, where, ref = _target(engine, real_ledger, kind)
    with engine.begin() as conn:
        if path:
            value = conn.execute(select(table.c[column]).where(where)).scalar_one()
            new = _set_json(value, path, new)
        conn.execute(update(table).where(where).values({column: new}))
    proc = cli("verify", "--config", config)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("TAMPERED: entry ")
    # the record's line: first, unless the altered event also breaks its nonconformity (seq 1)
    named = f"entry {seq_of(engine, ref)} ({kind} {ref}): "
    (line,) = [x for x in lines if named in x]
    assert reason in line, proc.stdout
    assert line == lines[0] or (kind, column) in (
        ("nonconformity_event", "nc_id"),
        ("nonconformity_event", "body"),
    )


def test_a_signed_head_catches_a_cut_tail_the_chain_alone_cannot(real_ledger, copy):
    config, engine, evidence = copy
    key: Ed25519PrivateKey = real_ledger["key"]
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    signed = cli("head", "--config", config, "--sign", env={KEY_ENV: raw.hex()})
    assert signed.returncode == 0, signed.stderr
    assert "signature: " in signed.stdout and "none" not in signed.stdout
    public = evidence.parent / "public.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    ok = cli("verify", "--config", config, "--public-key", public)
    assert ok.returncode == 0 and "(with the trusted key)" in ok.stdout, ok.stdout + ok.stderr
    other = evidence.parent / "other.pub"
    other.write_text(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        .hex()
    )
    wrong = cli("verify", "--config", config, "--public-key", other)
    assert wrong.returncode == 1 and "signed with another key" in wrong.stdout
    # cut the last entry and its record, and move the head back: the chain is consistent again
    rows = entries(engine)
    last = rows[max(rows)]
    assert last.kind == "monitoring_record"
    with engine.begin() as conn:
        conn.execute(delete(L).where(L.c.seq == last.seq))
        conn.execute(
            delete(monitoring_records).where(monitoring_records.c.record_id == last.ref_id)
        )
        conn.execute(update(ledger_head).values(seq=last.seq - 1, hash=rows[last.seq - 1].hash))
    caught = cli("verify", "--config", config)
    assert caught.returncode == 1
    assert caught.stdout.startswith(
        f"TAMPERED: entry {last.seq}: entry missing (the ledger ends at seq {last.seq - 1}, "
        f"a signed head at {last.seq})"
    )
    # and with the signatures deleted too, only the trusted key still sees it
    with engine.begin() as conn:
        conn.execute(delete(ledger_signatures))
    assert cli("verify", "--config", config).returncode == 0  # the limit of an unsigned chain
    caught = cli("verify", "--config", config, "--public-key", public)
    assert caught.returncode == 1
    assert caught.stdout.startswith("TAMPERED: no signed head, but a public key was given")


def test_bad_input_exits_2_naming_the_field(real_ledger, copy, tmp_path):
    config, _, _ = copy
    proc = cli("verify", "--config", config, "--public-key", tmp_path / "missing.pem")
    assert proc.returncode == 2 and proc.stderr.startswith("--public-key: cannot read")
    (tmp_path / "junk.pem").write_text("junk")
    proc = cli("verify", "--config", config, "--public-key", tmp_path / "junk.pem")
    assert proc.returncode == 2 and "--public-key: not an Ed25519 public key" in proc.stderr
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    proc = cli("head", "--config", config, "--sign", env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"agent.ledger.signing_key_env: environment variable {KEY_ENV} is not set"
    )
    (tmp_path / "none").mkdir()
    missing = tmp_path / "none" / "evidence" / "aims.db"
    nowhere = write_config(tmp_path / "none", real_ledger["reference"], f"sqlite:///{missing}")
    proc = cli("verify", "--config", nowhere)
    assert proc.returncode == 2 and "agent.storage_url: no evidence database at" in proc.stderr
    assert not missing.exists()  # verify does not create an empty store


def aims(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aims_agent.agent.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_reports_and_exports_verify_first_and_refuse_an_altered_store(real_ledger, copy, tmp_path):
    config, engine, _ = copy
    period = "2020-01-01..2100-01-01"
    head = entries(engine)[max(entries(engine))]
    md, html, oscal = tmp_path / "r.md", tmp_path / "r.html", tmp_path / "ar.json"
    ok = aims("report", "--config", config, "--period", period, "--format", "md", "--out", md)
    assert ok.returncode == 0, ok.stderr
    first = md.read_text().splitlines()[0]
    assert first.startswith(f"> Evidence ledger: head seq {head.seq}, sha256 {head.hash}; ")
    # the agent signed its head as it stopped
    assert "signature: signed (key " in first and "verified at " in first
    ok = aims("export", "oscal", "--config", config, "--period", period, "--out", oscal)
    assert ok.returncode == 0, ok.stderr
    meta = json.loads(oscal.read_text())["assessment-results"]["metadata"]
    props = {p["name"]: p["value"] for p in meta["props"]}
    assert props["ledger-verified"] == "true"
    # a person's name changed in the database after the store was verified
    nc = real_ledger["nc_id"]
    with engine.begin() as conn:
        where = nonconformities.c.nc_id == nc
        body = conn.execute(select(nonconformities.c.body).where(where)).scalar_one()
        body["corrective_action"]["owner"] = "Eve"
        conn.execute(update(nonconformities).where(where).values(body=body))
    named = f"entry {seq_of(engine, nc)} (nonconformity {nc}): field body.corrective_action.owner"
    for args in (
        ("report", "--config", config, "--period", period, "--format", "md", "--out", md),
        ("report", "--config", config, "--period", period, "--format", "html", "--out", html),
        ("export", "oscal", "--config", config, "--period", period, "--out", oscal),
        ("soa", "--config", config),
    ):
        refused = aims(*args)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert named in refused.stderr
        stamped = aims(*args, "--allow-unverified")
        assert stamped.returncode == 0, stamped.stderr
    assert md.read_text().startswith("> UNVERIFIED: the evidence ledger does not verify: " + named)
    assert "<title>UNVERIFIED: " in html.read_text()
    assert 'class="ledger unverified"' in html.read_text()
    meta = json.loads(oscal.read_text())["assessment-results"]["metadata"]
    assert meta["title"].startswith("UNVERIFIED: ")
    assert {p["name"]: p["value"] for p in meta["props"]}["ledger-verified"] == "false"
