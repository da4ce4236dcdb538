"""Monitoring records (clause 9.1) and the nonconformity register (clause 10.2) in the store.

`record_run` returns one storage write that, in a single transaction, opens or updates the
nonconformity a breach calls for and stores the run's monitoring record linked to it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, insert, select

from aims_agent.errors import StorageError
from aims_agent.exporters import ledger, nc_record
from aims_agent.exporters.canonical import iso
from aims_agent.exporters.lifecycle import note_effectiveness
from aims_agent.exporters.monitoring import MONITORING_SCHEMA as MONITORING_SCHEMA
from aims_agent.exporters.monitoring import EvidenceContext as EvidenceContext
from aims_agent.exporters.monitoring import _threshold, stored_record
from aims_agent.exporters.monitoring import monitoring_record as monitoring_record
from aims_agent.records import AGENT, Attachment, BreachRule, CheckRun
from aims_agent.storage import queries
from aims_agent.storage.schema import (
    attachments,
    monitoring_records,
    nonconformities,
)
from aims_agent.storage.store import UPSERT

NONCONFORMITY_SCHEMA = "aims.nonconformity/1"


def _label(m: Any) -> str:
    return f"{m.metric}[{m.feature}]" if m.feature else m.metric


def _nature(run: CheckRun) -> dict[str, Any]:
    breaches = [
        a.measurement for a in run.assessments if a.measurement.headline and a.verdict == "breach"
    ]
    expected = []
    for m in breaches:
        t = _threshold(m.threshold) or {}
        expected.append(
            f"{_label(m)} not breaching ({t.get('breaches_when')}, breach = {t.get('breach')})"
        )
    return {
        "observed": "; ".join(f"{_label(m)} = {m.value:.6g}" for m in breaches),
        "expected": "; ".join(expected),
        "window": {"start": iso(run.window.start), "end": iso(run.window.end)},
        "affected": sorted(
            a.measurement.feature
            for a in run.assessments
            if a.verdict == "breach" and a.measurement.feature
        ),
    }


def _open_record(conn: Connection, key: str) -> Any:
    """The open record of a model and check, locked until commit on PostgreSQL (SQLite has
    one writer at a time anyway), so a person closing it and a breach recurring on it queue."""
    return conn.execute(
        select(nonconformities.c.nc_id, nonconformities.c.recurrences)
        .where(nonconformities.c.open_key == key)
        .with_for_update()
    ).first()


def _open_or_recur(
    conn: Connection, run: CheckRun, ctx: EvidenceContext, mon_id: str, decide: BreachRule
) -> tuple[str | None, int, bool]:
    """The nonconformity this breach opens or recurs on (as `decide` rules on the breach streak
    and the open record), the streak it is part of, and whether it opened the record."""
    key = f"{run.model}/{run.check_id}"
    row = _open_record(conn, key)
    streak = 1
    if ctx.consecutive_breaches > 1:
        before = queries.recent_outcomes(
            conn, run.model, run.check_id, ctx.consecutive_breaches - 1
        )
        streak += next((i for i, o in enumerate(before) if o != "breach"), len(before))
    if decide(streak, row is not None) == "none":
        return None, streak, False
    if row is None:
        nc_id = f"NC-{uuid.uuid4().hex[:12]}"
        body = {
            "schema_version": NONCONFORMITY_SCHEMA,
            "nc_id": nc_id,
            "opened_at": iso(run.finished_at),
            "detected_by": {
                "type": "check",
                "check_id": run.check_id,
                "monitoring_record_id": mon_id,
            },
            "ai_system_id": ctx.ai_system_id,
            "model": run.model,
            "model_version": ctx.model_version,
            "requirement": {
                "controls": list(run.controls.iso42001),
                "clause": "10.2",
                "criterion": ctx.definition,
                "threshold_version": ctx.config_hash,
            },
            "nature": _nature(run),
            "severity": ctx.severity,
            "possible_serious_incident": False,
            "reaction": None,
            "cause_analysis": None,
            "corrective_action": None,
            "effectiveness_review": None,
            "management_system_change": None,
        }
        # Another agent on the same database may have opened it since the read above: the
        # unique open_key lets one insert win, and this breach recurs on the winner's record.
        values = {
            "nc_id": nc_id,
            "model": run.model,
            "check_id": run.check_id,
            "status": "open",
            "opened_at": run.finished_at,
            "last_seen_at": run.finished_at,
            "recurrences": 0,
            "open_key": key,
            "body": body,
        }
        ins: Any = UPSERT[conn.dialect.name](nonconformities)
        inserted = conn.execute(
            ins.values(**values)
            .on_conflict_do_nothing(index_elements=[nonconformities.c.open_key])
            .returning(nonconformities.c.nc_id)
        ).first()
        if inserted is not None:
            event_body = {"monitoring_record_id": mon_id, "nature": _nature(run)}
            nc_record.opened(conn, values, at=run.finished_at, actor=AGENT, body=event_body)
            return nc_id, streak, True
        if (row := _open_record(conn, key)) is None:
            raise StorageError(f"the record another agent opened for {key} was closed at once")
    nc_id = str(row.nc_id)
    recurred = nc_record.Pending(
        "recurred",
        {"monitoring_record_id": mon_id, "nature": _nature(run)},
        {"recurrences": int(row.recurrences) + 1, "last_seen_at": run.finished_at},
    )
    nc_record.change(conn, nc_id, [recurred], at=run.finished_at, actor=AGENT)
    return nc_id, streak, False


def record_run(run: CheckRun, ctx: EvidenceContext, decide: BreachRule) -> Any:
    """A store write: nonconformity first (on a breach, as `decide` rules), then the monitoring
    record linking it."""
    mon_id = f"MR-{uuid.uuid4().hex}"

    def write(conn: Connection) -> tuple[str, str | None, bool]:
        nc_id, streak, opened = None, 0, False
        if run.verdict == "breach" and not run.error:
            nc_id, streak, opened = _open_or_recur(conn, run, ctx, mon_id, decide)
        elif run.verdict in ("pass", "warn") and not run.error:
            note_effectiveness(
                conn,
                model=run.model,
                check_id=run.check_id,
                record_id=mon_id,
                windows=ctx.effectiveness_windows,
                now=run.finished_at,
            )
        body = stored_record(run, ctx, record_id=mon_id, nc_id=nc_id, streak=streak)
        conn.execute(
            insert(monitoring_records).values(
                record_id=mon_id,
                model=run.model,
                check_id=run.check_id,
                executed_at=run.started_at,
                outcome=body["result"]["outcome"],
                nonconformity_id=nc_id,
                body=body,
            )
        )
        ledger.append_record(conn, body, at=run.finished_at)
        return mon_id, nc_id, opened

    return write


def save_attachment(
    att: Attachment, monitoring_record_id: str, at: float
) -> Callable[[Connection], None]:
    """A store write: an attachment (its path and SHA-256) linked to a monitoring record."""

    def write(conn: Connection) -> None:
        row = {
            "attachment_id": att.attachment_id,
            "monitoring_record_id": monitoring_record_id,
            "kind": att.kind,
            "path": att.path,
            "sha256": att.sha256,
            "bytes": att.bytes,
            "created_at": at,
        }
        conn.execute(insert(attachments).values(**row))
        ledger.append_attachment(conn, row)

    return write
