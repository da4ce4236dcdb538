"""Tables of the evidence store. Portable SQLAlchemy Core: SQLite by default, PostgreSQL too.

Each evidence row keeps its full record as a JSON document (`body`) beside the columns that are
queried or constrained, so the record an auditor reads is exactly the one that was written.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

# The reservoir of each model's current window as a log: one row per ingest batch (the slots it
# filled), compacted now and then into one snapshot row. Replaying a window's rows in id order
# from its latest snapshot rebuilds the reservoir; one row per batch keeps ingest fast.
sample_log = Table(
    "sample_log",
    metadata,
    Column(
        "entry_id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("model", String(128), nullable=False),
    Column("window_start", Double, nullable=False),
    Column("kind", String(16), nullable=False),  # "batch" or "snapshot"
    Column("seen", BigInteger, nullable=False),  # records seen in the window after this entry
    Column("n_rows", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),  # msgspec JSON, see storage.samples
)
Index("ix_sample_log_model", sample_log.c.model, sample_log.c.entry_id)

# Where each model's log tail has read up to; written with the records it read.
tail_checkpoints = Table(
    "tail_checkpoints",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("inode", BigInteger, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("head", LargeBinary, nullable=False),  # the file's first bytes, to see truncation
)

# Ingest batches sent with an Idempotency-Key: the first answer, committed with the batch's rows,
# so a replay is answered alike and stores nothing. Dropped with the window the batch went into.
ingest_keys = Table(
    "ingest_keys",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("window_start", Double, nullable=False),
    Column("answer", LargeBinary, nullable=False),  # the JSON body of the first answer
)
Index("ix_ingest_keys_window", ingest_keys.c.model, ingest_keys.c.window_start)

# Clause 9.1: one row per check run.
monitoring_records = Table(
    "monitoring_records",
    metadata,
    Column("record_id", String(64), primary_key=True),
    Column("model", String(128), nullable=False),
    Column("check_id", String(128), nullable=False),
    Column("executed_at", Double, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("nonconformity_id", String(64)),
    Column("body", JSON, nullable=False),
)
Index("ix_monitoring_model_time", monitoring_records.c.model, monitoring_records.c.executed_at)
# a check's latest records, newest first, without reading the model's others (the console's
# overview and the statement of applicability on a million-record store)
Index(
    "ix_monitoring_model_check_time",
    monitoring_records.c.model,
    monitoring_records.c.check_id,
    monitoring_records.c.executed_at,
)

# Clause 10.2. `open_key` is "model/check" while the record is open and NULL after: the unique
# constraint is what keeps two writers from opening two records for one model and check.
nonconformities = Table(
    "nonconformities",
    metadata,
    Column("nc_id", String(64), primary_key=True),
    Column("model", String(128), nullable=False),
    Column("check_id", String(128), nullable=False),
    Column("status", String(32), nullable=False),
    Column("opened_at", Double, nullable=False),
    Column("last_seen_at", Double, nullable=False),
    Column("recurrences", Integer, nullable=False, default=0),
    Column("open_key", String(300)),
    Column("body", JSON, nullable=False),
    UniqueConstraint("open_key", name="uq_nonconformities_open_key"),
)

# Artefacts an auditor can open (e.g. Evidently's HTML drift report), by content hash.
attachments = Table(
    "attachments",
    metadata,
    Column("attachment_id", String(64), primary_key=True),
    Column("monitoring_record_id", String(64), nullable=False, index=True),
    Column("kind", String(64), nullable=False),
    Column("path", String(1024), nullable=False),  # relative to the evidence directory
    Column("sha256", String(64), nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("created_at", Double, nullable=False),
)

nonconformity_events = Table(
    "nonconformity_events",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("nc_id", String(64), nullable=False, index=True),
    Column("at", Double, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("event", String(64), nullable=False),
    Column("body", JSON, nullable=False),
)


# Receivers of nonconformity events (exporters.notify). A receiver gets the events after
# `since_event_id`, the last event when it was first configured: no history replay.
notification_targets = Table(
    "notification_targets",
    metadata,
    Column("target", String(100), primary_key=True),
    Column("since_event_id", BigInteger, nullable=False),
    Column("added_at", Double, nullable=False),
)

# One row per event and receiver once delivery was tried; `delivered_at` set on success,
# `outcome` "delivered" or "refused" (the receiver answered 4xx: logged, not retried).
notification_deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("event_id", BigInteger, primary_key=True),
    Column("target", String(100), primary_key=True),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Double, nullable=False),
    Column("delivered_at", Double),
    Column("outcome", String(16)),
    Column("last_error", String(500)),
)

# The evidence ledger (exporters.ledger): every evidence row above, as an append-only hash chain.
# `seq` is given by the ledger itself (last + 1, never autoincrement), so a gap shows.
evidence_ledger = Table(
    "evidence_ledger",
    metadata,
    Column(
        "seq",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("kind", String(32), nullable=False),
    Column("ref_id", String(64), nullable=False),
    Column("at", Double, nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # {field: first 8 hex digits of SHA-256(canonical(value))} of the content, so verify can
    # name the field of a record whose content hash differs. Not part of the entry's hash: it
    # only explains a difference the content hash already shows.
    Column("fields", JSON),
)
Index("ix_evidence_ledger_ref", evidence_ledger.c.kind, evidence_ledger.c.ref_id)
Index("ix_evidence_ledger_hash", evidence_ledger.c.hash)

# One row (id 1): the last seq and hash. Every append updates it first, which takes its row
# lock, so concurrent writers append one after the other instead of forking the chain.
ledger_head = Table(
    "ledger_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# One row (id 1): how far the chain was last verified (exporters.ledger_check), so reports,
# exports and API reads re-verify only the entries after it. `hash` is that entry's hash,
# re-read and re-hashed on each check; `full_at` is when a whole-store verify last passed.
ledger_verified = Table(
    "ledger_verified",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("verified_at", Double, nullable=False),
    Column("full_at", Double),
    # SHA-256 over every nonconformity row as verified: unchanged and no new events, the
    # incremental check need not rebuild them from their events
    Column("ncs_sha256", String(64)),
)

# Ed25519 signatures of the ledger head (`aims-agent evidence head --sign`).
ledger_signatures = Table(
    "ledger_signatures",
    metadata,
    Column(
        "signature_id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("signed_at", Double, nullable=False),
    Column("public_key", String(64), nullable=False),  # the raw 32-byte key, hex
    Column("signature", String(128), nullable=False),  # hex
)
