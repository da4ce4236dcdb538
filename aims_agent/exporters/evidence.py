"""Monitoring records (clause 9.1) and the nonconformity register (clause 10.2) in the store.

`record_run` returns one storage write that, in a single transaction, opens or updates the
nonconformity a breach calls for and stores the run's monitoring record linked to it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from aims_agent.errors import StorageError
from aims_agent.exporters import ledger, nc_record
from aims_agent.exporters.canonical import iso, json_safe
from aims_agent.exporters.lifecycle import note_effectiveness
from aims_agent.records import AGENT, Assessment, Attachment, BreachRule, CheckRun, Threshold
from aims_agent.storage import queries
from aims_agent.storage.schema import (
    attachments,
    monitoring_records,
    nonconformities,
)
from aims_agent.storage.store import UPSERT

MONITORING_SCHEMA = "aims.monitoring-record/1"
NONCONFORMITY_SCHEMA = "aims.nonconformity/1"


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceContext:
    """What every record of one model's check says about where and how it was made."""

    agent_version: str
    config_hash: str
    environment: str
    ai_system_id: str
    model_version: str
    reference_id: str
    reference_fingerprint: str
    n_reference: int
    schedule_seconds: float
    definition: str
    severity: str
    consecutive_breaches: int = 1  # breaching runs in a row before a nonconformity opens
    window_kind: str = "tumbling"  # or sliding
    window_span_seconds: float | None = None
    window_step_seconds: float | None = None  # sliding windows only
    effectiveness_windows: int = 3  # passing runs in a row that evidence a corrective action


def _threshold(t: Threshold | None) -> dict[str, Any] | None:
    if t is None:
        return None
    comparator = {
        ("above", True): ">=",
        ("above", False): ">",
        ("below", True): "<=",
        ("below", False): "<",
    }[(t.direction, t.inclusive)]
    return {
        "breach": t.breach,
        "warn": t.warn,
        "breaches_when": f"value {comparator} breach",
        "min_samples": t.min_samples,
    }


def _num(x: float | None) -> float | None:
    return None if x is None or x != x else x  # NaN is not JSON


def _measurement(a: Assessment) -> dict[str, Any]:
    m = a.measurement
    return {
        "metric": m.metric,
        "feature": m.feature,
        "value": _num(m.value),
        "p_value": _num(m.p_value),
        "method": m.method,
        "params": dict(m.params),
        "n_reference": m.n_reference,
        "n_current": m.n_current,
        "threshold": _threshold(m.threshold),
        "verdict": a.verdict,
        "headline": m.headline,
    }


def monitoring_record(
    run: CheckRun, ctx: EvidenceContext, *, record_id: str, nc_id: str | None
) -> dict[str, Any]:
    """The clause 9.1 record of one check run, as stored and as an auditor reads it."""
    head = run.headline
    return {
        "schema_version": MONITORING_SCHEMA,
        "record_id": record_id,
        "created_at": iso(run.finished_at),
        "system": {
            "ai_system_id": ctx.ai_system_id,
            "model": run.model,
            "model_version": ctx.model_version,
            "environment": ctx.environment,
        },
        "check": {
            "id": run.check_id,
            "kind": run.kind,
            "run_id": run.run_id,
            "metric": head.measurement.metric if head else None,
            "definition": ctx.definition,
        },
        "method": {
            "tests": sorted({a.measurement.method for a in run.assessments}),
            "reference": {
                "id": ctx.reference_id,
                "sha256": ctx.reference_fingerprint,
                "rows": ctx.n_reference,
            },
            "sample_sizes": {"reference": ctx.n_reference, "current": run.window.sampled},
            "segment": None,
            "agent_version": ctx.agent_version,
            "config_sha256": ctx.config_hash,
        },
        "window": {
            "start": iso(run.window.start),
            "end": iso(run.window.end),
            "records_seen": run.window.seen,
            "records_sampled": run.window.sampled,
            "kind": ctx.window_kind,
            "span_seconds": ctx.window_span_seconds,
            "step_seconds": ctx.window_step_seconds,
        },
        "executed_at": iso(run.started_at),
        "duration_seconds": round(run.finished_at - run.started_at, 6),
        "schedule": {"every_seconds": ctx.schedule_seconds},
        "criteria": {
            "threshold": _threshold(head.measurement.threshold) if head else None,
            "threshold_version": ctx.config_hash,
            "controls": list(run.controls.iso42001),
        },
        "result": {
            "outcome": "error" if run.error else run.verdict,
            "error": run.error,
            "value": _num(head.measurement.value) if head else None,
            "measurements": [_measurement(a) for a in run.assessments],
        },
        "controls": {
            "iso42001": list(run.controls.iso42001),
            "eu_ai_act": list(run.controls.eu_ai_act),
            "nist_ai_rmf": list(run.controls.nist_ai_rmf),
        },
        "nonconformity_id": nc_id,
    }


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
        body = monitoring_record(run, ctx, record_id=mon_id, nc_id=nc_id)
        body["result"]["breach_streak"] = {"runs": streak, "to_open": ctx.consecutive_breaches}
        body = json_safe(body)
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
