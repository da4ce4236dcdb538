"""A one-shot run's monitoring records on a SQLite store, appended without SQLAlchemy.

`aims-agent check` is a short process, and importing SQLAlchemy was a fifth of it. When its
store is a SQLite file already at the newest schema revision and its runs call for no
nonconformity work (none breached; no open record of the model and check, which a passing run
would count towards effectiveness), it writes here the rows the store's writer would
(`exporters.evidence.record_run`): each monitoring record, its ledger entry chained with the
same functions (`exporters.ledger_hash`), and the ledger head. Anything else returns None
before writing, and the caller takes the full path: a new or older database, a breach, an open
record, a URL this module does not read, a database error.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aims_agent.canonical import canonical
from aims_agent.exporters.ledger_hash import (
    MONITORING_EXPAND,
    as_stored,
    chain_entry,
    digest_content,
)
from aims_agent.exporters.monitoring import EvidenceContext, stored_record
from aims_agent.records import CheckRun
from aims_agent.storage.revision import HEAD

HEAD_ID = 1  # the ledger head's row (exporters.ledger)


def database_file(url: str) -> Path | None:
    """The file of a plain `sqlite:///<path>` URL; None for any other URL (in memory, with
    options or escaped characters), which the full path reads."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or any(c in url for c in "?#%"):
        return None
    path = url[len(prefix) :]
    return Path(path) if path and path != ":memory:" else None


def _text(value: Any) -> str:
    return canonical(value).decode()  # what the store's JSON columns hold (storage.store)


def _ready(conn: sqlite3.Connection, runs: Sequence[tuple[CheckRun, EvidenceContext]]) -> bool:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"alembic_version", "ledger_head", "monitoring_records"} <= tables:
        return False
    if conn.execute("SELECT version_num FROM alembic_version").fetchall() != [(HEAD,)]:
        return False
    if conn.execute("SELECT 1 FROM ledger_head WHERE id = ?", (HEAD_ID,)).fetchone() is None:
        return False  # the first append creates the head: the full path does
    for run, _ in runs:
        if run.error:
            continue
        if run.verdict == "breach":
            return False
        if run.verdict in ("pass", "warn"):
            key = f"{run.model}/{run.check_id}"
            if conn.execute("SELECT 1 FROM nonconformities WHERE open_key = ?", (key,)).fetchone():
                return False
    return True


def _append(
    conn: sqlite3.Connection, runs: Sequence[tuple[CheckRun, EvidenceContext]]
) -> list[dict[str, Any]]:
    seq, prev = conn.execute(
        "SELECT seq, hash FROM ledger_head WHERE id = ?", (HEAD_ID,)
    ).fetchone()
    bodies = []
    for run, ctx in runs:
        mon_id = f"MR-{uuid.uuid4().hex}"
        body = stored_record(run, ctx, record_id=mon_id, nc_id=None, streak=0)
        text = _text(body)
        conn.execute(
            "INSERT INTO monitoring_records (record_id, model, check_id, executed_at, outcome, "
            "nonconformity_id, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                mon_id,
                run.model,
                run.check_id,
                run.started_at,
                body["result"]["outcome"],
                None,
                text,
            ),
        )
        content_sha256, digests = digest_content(as_stored(body), MONITORING_EXPAND)
        seq += 1
        entry = chain_entry(
            seq=seq,
            kind="monitoring_record",
            ref_id=mon_id,
            at=run.finished_at,
            content_sha256=content_sha256,
            prev_hash=prev,
        )
        conn.execute(
            "INSERT INTO evidence_ledger (seq, kind, ref_id, at, content_sha256, prev_hash, hash, "
            "fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.seq,
                entry.kind,
                entry.ref_id,
                entry.at,
                entry.content_sha256,
                entry.prev_hash,
                entry.hash,
                _text(digests),
            ),
        )
        prev = entry.hash
        bodies.append(json.loads(text))
    conn.execute("UPDATE ledger_head SET seq = ?, hash = ? WHERE id = ?", (seq, prev, HEAD_ID))
    return bodies


def append_runs(
    url: str, runs: Sequence[tuple[CheckRun, EvidenceContext]], *, durability: str
) -> list[dict[str, Any]] | None:
    """Store the runs' monitoring records in one transaction and return their bodies as
    stored, or None (nothing written) where the full path must write them."""
    path = database_file(url)
    if path is None or not path.is_file():
        return None
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    except sqlite3.Error:
        return None
    try:
        # the store's connection settings (storage.store), then the one writer's lock
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("BEGIN IMMEDIATE")
        if not _ready(conn, runs):
            conn.execute("ROLLBACK")
            return None
        bodies = _append(conn, runs)
        conn.execute("COMMIT")
        return bodies
    except sqlite3.Error:  # nothing committed: the full path writes, or says what is wrong
        if conn.in_transaction:
            conn.rollback()
        return None
    finally:
        conn.close()
