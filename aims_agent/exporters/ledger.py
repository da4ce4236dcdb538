"""The evidence ledger: every evidence row is an entry of an append-only SHA-256 hash chain.

An entry is (seq, kind, ref_id, at, content_sha256, prev_hash, hash) and `fields`: `seq`
counts 1, 2, ... (given by the ledger, so a gap shows), `ref_id` is the record's id,
`content_sha256` the SHA-256 of the canonical JSON (`exporters.canonical`, RFC 8785 rules)
of the record as stored, and

    hash = SHA-256(prev_hash + canonical({seq, kind, ref_id, at, content_sha256, prev_hash}))

with `prev_hash` the hash of entry seq - 1 (64 zeros for seq 1) as ASCII hex. `fields` maps
each field of the content (a top-level key; a key of a JSON column as "body.key") to the first 8
hex digits of its own SHA-256: not hashed into the entry, it lets verify name the field of a
record whose content hash differs.

What an entry's content is, by kind (`CONTENT`):
- monitoring_record: the row's `body`. verify also checks that the queried columns (model,
  check_id, executed_at, outcome, nonconformity_id) agree with that body.
- nonconformity: the row's immutable fields (nc_id, model, check_id, opened_at). The rest of
  the row changes over its life: it is a projection of its events (`exporters.nc_record`),
  each of which carries the new and old values of the fields it set, and verify rebuilds every
  field from them.
- nonconformity_event: every column of the row, event_id included.
- attachment: every column of the row (with the file's SHA-256); verify also hashes the file
  under the evidence directory.
- report: what the caller passes; verify checks the chain only (no table to compare with).

Appending runs in the writer's transaction, so a record and its entry commit together or not at
all. Concurrent writers (two agents on one PostgreSQL) are serialised on the one-row
`ledger_head` table: an append first UPDATEs that row (seq = seq + 1 ... RETURNING seq, hash),
which holds its row lock until commit, so the next writer waits and then reads the new head.
A seq primary-key collision with retry was the alternative: it would rerun the whole write
(the monitoring record with it) and, on PostgreSQL, needs a savepoint per attempt.

`exporters.ledger_verify` recomputes the chain and checks every record against it;
`exporters.ledger_signing` signs its head with Ed25519.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from sqlalchemy import Connection, String, Table, cast, insert, select, update
from sqlalchemy.sql.elements import ColumnElement

from aims_agent.errors import CanonicalJSONError, LedgerError
from aims_agent.exporters.ledger_hash import GENESIS as GENESIS
from aims_agent.exporters.ledger_hash import MONITORING_EXPAND, chain_entry, digest_content
from aims_agent.exporters.ledger_hash import LedgerEntry as LedgerEntry
from aims_agent.exporters.ledger_hash import as_stored as as_stored
from aims_agent.exporters.ledger_hash import entry_hash as entry_hash
from aims_agent.exporters.ledger_hash import field_digests as field_digests
from aims_agent.records import Actor
from aims_agent.storage.schema import (
    attachments,
    evidence_ledger,
    ledger_head,
    ledger_signatures,
    monitoring_records,
    nonconformities,
    nonconformity_events,
)
from aims_agent.storage.store import UPSERT

Kind = Literal["monitoring_record", "nonconformity", "nonconformity_event", "attachment", "report"]
KINDS: tuple[str, ...] = get_args(Kind)
HEAD_ID = 1
_L = evidence_ledger


def _fields(*names: str) -> Callable[[Mapping[str, Any]], object]:
    return lambda row: {n: row[n] for n in names}


@dataclass(frozen=True, slots=True)
class Source:
    table: Table
    key: ColumnElement[Any]  # the row's id, comparable with the ledger's ref_id (a string)
    columns: tuple[str, ...]  # what verify reads
    content: Callable[[Mapping[str, Any]], object]
    json_columns: tuple[str, ...] = ()
    expand: tuple[str, ...] = ()  # JSON columns whose keys get their own field digest
    whole: str | None = None  # the JSON column that is the whole content, if one is


_NC_FIELDS = ("nc_id", "model", "check_id", "opened_at")
_EVENT_FIELDS = ("event_id", "nc_id", "at", "actor", "event", "body")
_ATTACHMENT_FIELDS = tuple(c.name for c in attachments.c)
CONTENT: dict[str, Source] = {
    "monitoring_record": Source(
        monitoring_records,
        monitoring_records.c.record_id,
        tuple(c.name for c in monitoring_records.c),
        lambda row: row["body"],
        ("body",),
        MONITORING_EXPAND,  # the content is the body itself
        "body",
    ),
    "nonconformity": Source(
        nonconformities, nonconformities.c.nc_id, _NC_FIELDS, _fields(*_NC_FIELDS)
    ),
    "nonconformity_event": Source(
        nonconformity_events,
        cast(nonconformity_events.c.event_id, String),
        _EVENT_FIELDS,
        _fields(*_EVENT_FIELDS),
        ("body",),
        ("body",),
    ),
    "attachment": Source(
        attachments, attachments.c.attachment_id, _ATTACHMENT_FIELDS, _fields(*_ATTACHMENT_FIELDS)
    ),
}


ENTRY_COLUMNS = tuple(
    _L.c[n] for n in ("seq", "kind", "ref_id", "at", "content_sha256", "prev_hash", "hash")
)


def differing_fields(content: object, stored: object, expand: tuple[str, ...] = ()) -> list[str]:
    """The fields whose digest differs from the stored ones (a key of an expanded field rather
    than the field itself when that says which), or [] if none can be named."""
    now = field_digests(content, expand) or {}
    if not isinstance(stored, Mapping) or not stored:
        return []
    wrong = sorted(k for k in now.keys() | stored.keys() if now.get(k) != stored.get(k))
    return [k for k in wrong if not any(w.startswith(k + ".") for w in wrong)]


# --- appending -------------------------------------------------------------------------------

_TAKE_HEAD = (
    update(ledger_head)
    .where(ledger_head.c.id == HEAD_ID)
    .values(seq=ledger_head.c.seq + 1)
    .returning(ledger_head.c.seq, ledger_head.c.hash)
)


def _take_head(conn: Connection) -> tuple[int, str]:
    """The next seq and the previous hash; the head row stays locked until commit."""
    row = conn.execute(_TAKE_HEAD).first()
    if row is None:  # the first append on this database (or the row was deleted)
        last = conn.execute(select(_L.c.seq, _L.c.hash).order_by(_L.c.seq.desc()).limit(1)).first()
        seq, prev = (int(last.seq), str(last.hash)) if last else (0, GENESIS)
        ins: Any = UPSERT[conn.dialect.name](ledger_head)
        conn.execute(ins.values(id=HEAD_ID, seq=seq, hash=prev).on_conflict_do_nothing())
        row = conn.execute(_TAKE_HEAD).one()
    return int(row.seq), str(row.hash)


def append(conn: Connection, kind: Kind, ref_id: str, content: object, at: float) -> LedgerEntry:
    """Chain one evidence record in the caller's transaction, so both commit together."""
    if kind not in KINDS:
        raise LedgerError(f"unknown ledger kind {kind!r}; known: {', '.join(KINDS)}")
    source = CONTENT.get(kind)
    try:
        content_sha256, digests = digest_content(content, source.expand if source else None)
    except CanonicalJSONError as exc:
        raise LedgerError(f"{kind} {ref_id}: {exc}") from exc
    seq, prev = _take_head(conn)
    entry = chain_entry(
        seq=seq, kind=kind, ref_id=ref_id, at=at, content_sha256=content_sha256, prev_hash=prev
    )
    conn.execute(insert(_L).values(**asdict(entry), fields=digests))
    conn.execute(update(ledger_head).where(ledger_head.c.id == HEAD_ID).values(hash=entry.hash))
    return entry


def append_record(conn: Connection, body: Mapping[str, Any], *, at: float) -> LedgerEntry:
    """Chain a monitoring record by its body (as inserted into monitoring_records)."""
    return append(conn, "monitoring_record", str(body["record_id"]), as_stored(body), at)


def append_nonconformity(conn: Connection, row: Mapping[str, Any]) -> LedgerEntry:
    """Chain a newly opened nonconformity: `row` holds at least nc_id, model, check_id,
    opened_at."""
    content = CONTENT["nonconformity"].content(row)
    return append(conn, "nonconformity", str(row["nc_id"]), content, float(row["opened_at"]))


def append_event(conn: Connection, row: Mapping[str, Any]) -> LedgerEntry:
    """Chain a nonconformity event: `row` is every column, event_id included."""
    content = CONTENT["nonconformity_event"].content({**row, "body": as_stored(row["body"])})
    return append(conn, "nonconformity_event", str(row["event_id"]), content, float(row["at"]))


def insert_event(
    conn: Connection, *, nc_id: str, at: float, actor: Actor, event: str, body: Mapping[str, Any]
) -> int:
    """Insert a nonconformity event and chain it, in one call; returns its event_id. Use it
    wherever an event is written: `insert_event(conn, nc_id=.., at=now, actor=.., event="closed",
    body={"from": "verifying", "to": "closed"})`. The `actor` column keeps the actor's label;
    the body keeps the whole actor under `by`, so the ledger covers who it was."""
    values = {
        "nc_id": nc_id,
        "at": at,
        "actor": actor.label,
        "event": event,
        "body": {**body, "by": actor.as_dict()},
    }
    key = conn.execute(insert(nonconformity_events).values(**values)).inserted_primary_key
    if key is None:
        raise LedgerError("the database did not return the new event's id")
    event_id = int(key[0])
    append_event(conn, {"event_id": event_id, **values})
    return event_id


def append_attachment(conn: Connection, row: Mapping[str, Any]) -> LedgerEntry:
    """Chain an attachment: `row` is every column of the attachments row."""
    content = CONTENT["attachment"].content(row)
    return append(conn, "attachment", str(row["attachment_id"]), content, row["created_at"])


# --- signed heads ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedHead:
    seq: int
    hash: str
    signed_at: float
    public_key: str  # raw Ed25519 key, hex
    signature: str  # hex


def last_entry(conn: Connection) -> LedgerEntry | None:
    """The ledger's last entry: its head."""
    row = conn.execute(select(*ENTRY_COLUMNS).order_by(_L.c.seq.desc()).limit(1)).first()
    return LedgerEntry(**row._mapping) if row else None


def latest_signed_head(conn: Connection) -> SignedHead | None:
    """The signed head with the highest seq (the latest signature of it), if any."""
    s = ledger_signatures
    row = conn.execute(
        select(s.c.seq, s.c.hash, s.c.signed_at, s.c.public_key, s.c.signature)
        .order_by(s.c.seq.desc(), s.c.signature_id.desc())
        .limit(1)
    ).first()
    return SignedHead(**row._mapping) if row else None
