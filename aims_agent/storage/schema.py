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

# The reservoir of each model's current window, slot by slot; rewritten in place as it samples.
samples = Table(
    "samples",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("window_start", Double, primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("record_id", String(256), nullable=False),
    Column("timestamp", Double, nullable=False),  # the record's own time
    Column("row", LargeBinary, nullable=False),  # msgspec JSON of the normalised row
)
Index("ix_samples_record", samples.c.model, samples.c.record_id)

windows = Table(
    "windows",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("window_start", Double, nullable=False),
    Column("seen", BigInteger, nullable=False),
)

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
