"""Nonconformities from other sources: one register for the AI management system.

The agent opens records from check breaches; people open them from an internal audit (clause
9.2), an incident, a complaint, an external audit or any other source, with the source named.
Such a record is chained like the agent's (the row, then its "opened" event that sets every
field, with the person as its actor) and is worked through the same lifecycle; it has no
`open_key`, so several can be open for one model.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from sqlalchemy import Connection, insert

from aims_agent.exporters import nc_record
from aims_agent.exporters.canonical import iso
from aims_agent.exporters.lifecycle import (
    AWARE_AHEAD_SECONDS,
    SeriousIncident,
    Severity,
    _incident,
)
from aims_agent.records import Actor
from aims_agent.storage.schema import nonconformities

SCHEMA = "aims.nonconformity/1"
SourceType = Literal["internal_audit", "external_audit", "incident", "complaint", "other"]
CLAUSE = {
    "internal_audit": "9.2",
    "external_audit": "9.2",
    "incident": "10.2",
    "complaint": "10.2",
    "other": "10.2",
}


class Source(msgspec.Struct, forbid_unknown_fields=True):
    """Where the nonconformity was found: the audit, incident or complaint, and who reported it."""

    type: SourceType
    reference: str | None = msgspec.field(default=None)  # audit report, ticket, case number
    reported_by: str | None = None
    received_at: datetime | None = None


class NewNonconformity(msgspec.Struct, forbid_unknown_fields=True):
    """A nonconformity a person records: what was found against which requirement."""

    model: str
    source: Source
    description: str  # what was found (the nature of the nonconformity)
    requirement: str  # the requirement not met: clause, control, policy or procedure
    controls: list[str] = []
    severity: Severity = "minor"
    serious_incident: SeriousIncident | None = None
    comment: str | None = None


decode_new = msgspec.json.Decoder(NewNonconformity).decode


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """What a record says of the model it concerns."""

    ai_system_id: str
    version: str


def _seconds(at: datetime) -> float:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def validate(
    new: NewNonconformity, models: Mapping[str, ModelInfo], *, now: float
) -> list[tuple[str, str]]:
    """(field, reason) for each problem the types alone do not catch."""
    problems = []
    times = {
        "source.received_at": new.source.received_at,
        "serious_incident.aware_at": new.serious_incident and new.serious_incident.aware_at,
    }
    for name, at in times.items():
        if at and not 0 <= _seconds(at) <= now + AWARE_AHEAD_SECONDS:
            problems.append((name, "must be from 1970 to a day after now"))
    if new.model not in models:
        problems.append(("model", f"unknown model {new.model!r}; known: {', '.join(models)}"))
    for name in ("description", "requirement"):
        if not getattr(new, name).strip():
            problems.append((name, "must not be empty"))
    return problems


def _source(source: Source) -> dict[str, Any]:
    out: dict[str, Any] = {"type": source.type}
    if source.reference:
        out["reference"] = source.reference
    if source.reported_by:
        out["reported_by"] = source.reported_by
    if source.received_at is not None:
        at = source.received_at
        out["received_at"] = iso(_seconds(at))
    return out


def open_nonconformity(
    new: NewNonconformity, model: ModelInfo, *, actor: Actor, now: float
) -> Callable[[Connection], str]:
    """A store write: open a nonconformity a person found; returns its id."""
    nc_id = f"NC-{uuid.uuid4().hex[:12]}"
    source = _source(new.source)
    incident = _incident(new.serious_incident, now) if new.serious_incident else False
    body: dict[str, Any] = {
        "schema_version": SCHEMA,
        "nc_id": nc_id,
        "opened_at": iso(now),
        "detected_by": {**source, "recorded_by": actor.as_dict()},
        "source": source,
        "ai_system_id": model.ai_system_id,
        "model": new.model,
        "model_version": model.version,
        "requirement": {
            "controls": list(new.controls),
            "clause": CLAUSE[new.source.type],
            "criterion": new.requirement,
        },
        "nature": {"observed": new.description, "expected": new.requirement, "affected": []},
        "severity": new.severity,
        "possible_serious_incident": incident,
        "reaction": None,
        "cause_analysis": None,
        "corrective_action": None,
        "effectiveness_review": None,
        "management_system_change": None,
    }
    values = {
        "nc_id": nc_id,
        "model": new.model,
        "check_id": new.source.type,
        "status": "open",
        "opened_at": now,
        "last_seen_at": now,
        "recurrences": 0,
        "open_key": None,
        "body": body,
    }

    def write(conn: Connection) -> str:
        conn.execute(insert(nonconformities).values(**values))
        event: dict[str, Any] = {"source": source}
        if new.comment:
            event["comment"] = new.comment
        nc_record.opened(conn, values, at=now, actor=actor, body=event)
        return nc_id

    return write


def describe_source(source: object) -> str | None:
    """A source as one line: `internal_audit AUD-7 (reported by Ana, received ...)`."""
    if not isinstance(source, Mapping):
        return None
    words = [
        str(source.get("type")),
        *([str(source["reference"])] if source.get("reference") else []),
    ]
    extra: Sequence[str] = [
        f"{label} {source[key]}"
        for key, label in (("reported_by", "reported by"), ("received_at", "received"))
        if source.get(key)
    ]
    return " ".join(words) + (f" ({', '.join(extra)})" if extra else "")
