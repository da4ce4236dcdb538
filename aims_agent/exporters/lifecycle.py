"""The life of a nonconformity record (ISO/IEC 42001 clause 10.2), worked by people.

    open -> investigating -> corrective_action -> verifying -> closed
    open | investigating -> rejected (a false alarm; a justification is required)
    verifying -> corrective_action (the action was not effective)

The agent opens records and adds recurrences; people do the rest through the API or the CLI,
and every change is an event with its actor and time. The fields follow clause 10.2: (a)
reaction, (b) cause analysis, (c) corrective action, (d) effectiveness review, (e) change to the
management system. A transition needs what its step produces: corrective action needs the
action (what, owner, due date), verifying a done action, closing a review that found the
action effective. Closing or rejecting frees the model and check, so a new breach opens a new
record. A possible serious incident (EU AI Act Art. 73) carries its reporting deadline: 15
days from awareness, 2 for a widespread or critical-infrastructure incident, 10 for a death.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import msgspec
from sqlalchemy import Connection, select

from aims_agent.config.identity import SegregationConfig
from aims_agent.errors import LifecycleError, NonconformityNotFoundError
from aims_agent.exporters import ledger, nc_record
from aims_agent.exporters.canonical import iso
from aims_agent.exporters.duties import check as duties_check
from aims_agent.records import AGENT, Actor
from aims_agent.storage.schema import monitoring_records, nonconformities, nonconformity_events

Status = Literal["open", "investigating", "corrective_action", "verifying", "closed", "rejected"]
Severity = Literal["major", "minor", "observation"]
IncidentKind = Literal["general", "widespread_or_critical_infrastructure", "death"]

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "open": ("investigating", "rejected"),
    "investigating": ("corrective_action", "rejected"),
    "corrective_action": ("verifying",),
    "verifying": ("closed", "corrective_action"),
    "closed": (),
    "rejected": (),
}
TERMINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
ART73_DAYS = {"general": 15, "widespread_or_critical_infrastructure": 2, "death": 10}
_SEVERITY_RANK = {"observation": 0, "minor": 1, "major": 2}


class Reaction(msgspec.Struct, forbid_unknown_fields=True):
    """(a) containment or correction: rollback, human review, traffic cut."""

    action: str
    by: str | None = None
    at: str | None = None


class CauseAnalysis(msgspec.Struct, forbid_unknown_fields=True):
    """(b) method, root cause, whether it exists or could occur elsewhere."""

    root_cause: str
    method: str | None = None
    could_occur_elsewhere: bool | None = None


class CorrectiveAction(msgspec.Struct, forbid_unknown_fields=True):
    """(c) what, owner, due date."""

    description: str
    owner: str
    due_date: date
    status: Literal["planned", "in_progress", "done"] = "planned"


class EffectivenessReview(msgspec.Struct, forbid_unknown_fields=True):
    """(d) verified by whom, when, on what evidence."""

    effective: bool
    verified_by: str
    evidence: str
    at: str | None = None


class SeriousIncident(msgspec.Struct, forbid_unknown_fields=True):
    """A possible serious incident and the EU AI Act Art. 73 reporting clock."""

    possible: bool
    kind: IncidentKind = "general"
    aware_at: datetime | None = None


class Change(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One update by a person: a new status and / or clause 10.2 fields."""

    status: Status | None = None
    reaction: Reaction | None = None
    cause_analysis: CauseAnalysis | None = None
    corrective_action: CorrectiveAction | None = None
    effectiveness_review: EffectivenessReview | None = None
    management_system_change: str | None = None
    severity: Severity | None = None
    serious_incident: SeriousIncident | None = None
    justification: str | None = None
    comment: str | None = None


_decode_change = msgspec.json.Decoder(Change).decode
AWARE_AHEAD_SECONDS = 86_400  # clocks disagree; a day ahead is the most a person can be aware


def decode_change(body: bytes, *, now: float | None = None) -> Change:
    """A change as a person sent it; msgspec.ValidationError names a field out of range."""
    change = _decode_change(body)
    now = time.time() if now is None else now
    incident = change.serious_incident
    if incident is not None and incident.aware_at is not None:
        aware = incident.aware_at
        seconds = (aware if aware.tzinfo else aware.replace(tzinfo=UTC)).timestamp()
        if not 0 <= seconds <= now + AWARE_AHEAD_SECONDS:
            raise msgspec.ValidationError(
                "must be from 1970 to a day after now - at `$.serious_incident.aware_at`"
            )
    return change


_FIELDS = (
    "reaction",
    "cause_analysis",
    "corrective_action",
    "effectiveness_review",
    "management_system_change",
    "severity",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Updated:
    nc_id: str
    status: str
    events: tuple[str, ...]


def _builtins(value: object) -> Any:
    return msgspec.to_builtins(value)


def _requirements(target: str, body: dict[str, Any], change: Change) -> str | None:
    """Why the record cannot move to `target` with this change, or None if it can."""
    if target == "rejected" and not change.justification:
        return "rejecting needs a justification (why this is not a nonconformity)"
    action = body.get("corrective_action")
    if target == "corrective_action" and not action:
        return "corrective_action needs the action: description, owner, due_date"
    if target == "verifying" and (not action or action.get("status") != "done"):
        return "verifying needs the corrective action with status done"
    review = body.get("effectiveness_review")
    if target == "closed" and not (review and review.get("effective")):
        return "closing needs an effectiveness review that found the action effective"
    return None


def apply(
    nc_id: str,
    change: Change,
    *,
    actor: Actor,
    now: float,
    duties: SegregationConfig | None = None,
) -> Callable[[Connection], Updated]:
    """A store write: apply one person's change; LifecycleError if its state does not allow
    it, SegregationOfDutiesError if this actor may not make it (`duties`, default: all rules
    on), NonconformityNotFoundError if there is no such record."""
    rules = duties or SegregationConfig()

    def write(conn: Connection) -> Updated:
        row = conn.execute(
            select(*(nonconformities.c[k] for k in nc_record.STATE))
            .where(nonconformities.c.nc_id == nc_id)
            .with_for_update()
        ).first()
        if row is None:
            raise NonconformityNotFoundError(f"no nonconformity {nc_id!r}")
        current = nc_record.state_of(row._mapping)
        status, body = str(row.status), dict(current["body"])
        if status in TERMINAL:
            raise LifecycleError(f"{nc_id} is {status}: a {status} record does not change")
        events: list[nc_record.Pending] = []
        changed = {f: _builtins(getattr(change, f)) for f in _FIELDS}
        changed = {f: v for f, v in changed.items() if v is not None}
        escalations: list[nc_record.Pending] = []
        if "severity" in changed and _SEVERITY_RANK[changed["severity"]] > _SEVERITY_RANK.get(
            str(body.get("severity")), 1
        ):
            escalations.append(
                nc_record.Pending("escalated", {"severity": changed["severity"]}, {})
            )
        if change.serious_incident is not None:
            changed["possible_serious_incident"] = _incident(change.serious_incident, now)
            if change.serious_incident.possible:
                incident = {"serious_incident": changed["possible_serious_incident"]}
                escalations.append(nc_record.Pending("escalated", incident, {}))
        before = body.get("corrective_action") or {}
        marks_done = (changed.get("corrective_action") or {}).get("status") == "done" and (
            before.get("status") != "done"
        )
        body.update(changed)
        if changed:
            updated: dict[str, Any] = {"fields": sorted(changed)}
            if marks_done:
                updated["corrective_action_done"] = True
            sets = {f"body.{k}": v for k, v in changed.items()}
            events.append(nc_record.Pending("updated", updated, sets))
        events += escalations
        new_status = status
        if change.status is not None and change.status != status:
            allowed = TRANSITIONS[status]
            if change.status not in allowed:
                raise LifecycleError(
                    f"{nc_id} cannot go from {status} to {change.status}; "
                    f"from {status} it can go to {', '.join(allowed)}"
                )
            why = _requirements(change.status, body, change)
            if why:
                raise LifecycleError(f"{nc_id} cannot go to {change.status}: {why}")
            new_status = change.status
            detail: dict[str, Any] = {"from": status, "to": new_status}
            status_sets: dict[str, Any] = {"status": new_status}
            if change.justification:
                detail["justification"] = change.justification
                if new_status == "rejected":
                    status_sets["body.rejection_justification"] = change.justification
            if new_status in TERMINAL:
                status_sets["body.closed_at"] = iso(now)
                status_sets["open_key"] = None
            events.append(nc_record.Pending(new_status, detail, status_sets))
        if change.comment:
            events.append(nc_record.Pending("commented", {"comment": change.comment}, {}))
        if not events:
            raise LifecycleError(f"{nc_id}: the change is empty")
        duties_check(
            conn,
            nc_id,
            body,
            closing=change.status in TERMINAL,
            reviews=change.effectiveness_review is not None or change.status == "closed",
            target=change.status or status,
            actor=actor,
            marks_done=marks_done,
            duties=rules,
        )
        nc_record.change(conn, nc_id, events, at=now, actor=actor, current=current)
        return Updated(nc_id=nc_id, status=new_status, events=tuple(p.event for p in events))

    return write


def _incident(incident: SeriousIncident, now: float) -> dict[str, Any]:
    if not incident.possible:
        return {"possible": False}
    aware = incident.aware_at or datetime.fromtimestamp(now, UTC)
    if aware.tzinfo is None:
        aware = aware.replace(tzinfo=UTC)
    deadline = aware + timedelta(days=ART73_DAYS[incident.kind])
    return {
        "possible": True,
        "kind": incident.kind,
        "aware_at": iso(aware.timestamp()),
        "art73_reporting_deadline": iso(deadline.timestamp()),
        "art73_days": ART73_DAYS[incident.kind],
    }


def status_after(events: Iterable[Any]) -> tuple[str, float | None]:
    """A record's status after these events (rows with `at` and a `body`, in order), and when
    it became closed or rejected if it did: how reports and exports tell its state at a time."""
    status, closed_at = "open", None
    for e in events:
        to = e.body.get("to") if isinstance(e.body, Mapping) else None
        if to:
            status = str(to)
            closed_at = e.at if status in TERMINAL else None
    return status, closed_at


def overdue(now: float) -> Callable[[Connection], list[tuple[str, str]]]:
    """A store write: record `past_due` once for each record whose corrective action is past
    its due date and not done; returns their (nc_id, model)."""

    def write(conn: Connection) -> list[tuple[str, str]]:
        rows = conn.execute(
            select(nonconformities.c.nc_id, nonconformities.c.model, nonconformities.c.body).where(
                nonconformities.c.status.in_(("corrective_action", "investigating", "open"))
            )
        ).all()
        today = datetime.fromtimestamp(now, UTC).date()
        late = []  # (row, its corrective action)
        for row in rows:
            action = (row.body or {}).get("corrective_action") or {}
            due = action.get("due_date")
            if due and action.get("status") != "done" and date.fromisoformat(due) < today:
                late.append((row, action))
        e = nonconformity_events.c
        query = select(e.nc_id, e.body["due_date"].as_string()).where(
            e.event == "past_due", e.nc_id.in_([row.nc_id for row, _ in late])
        )
        noted = {(nc_id, due) for nc_id, due in conn.execute(query)}
        for row, action in late:
            if (row.nc_id, action["due_date"]) not in noted:
                ledger.insert_event(
                    conn,
                    nc_id=str(row.nc_id),
                    at=now,
                    actor=AGENT,
                    event="past_due",
                    body={"due_date": action["due_date"], "owner": action.get("owner")},
                )
        return [(str(row.nc_id), str(row.model)) for row, _ in late]

    return write


def note_effectiveness(
    conn: Connection, *, model: str, check_id: str, record_id: str, windows: int, now: float
) -> bool:
    """After a passing run: when the open record of this model and check has now seen
    `windows` passing runs in a row since its last breach, record once that evidence of
    effectiveness is available (clause 10.2 d). Only a person closes the record."""
    row = conn.execute(
        select(nonconformities.c.nc_id, nonconformities.c.body)
        .where(nonconformities.c.open_key == f"{model}/{check_id}")
        .with_for_update()  # a person's change on another agent is not overwritten
    ).first()
    if row is None:
        return False
    # the runs before this one (whose record is written after this note), newest first: the
    # last windows - 1 of them passed, and the one before those did not (noted only once)
    before = conn.execute(
        select(monitoring_records.c.record_id, monitoring_records.c.outcome)
        .where(
            monitoring_records.c.model == model,
            monitoring_records.c.check_id == check_id,
            # runs that failed or lacked data neither break nor extend the streak
            monitoring_records.c.outcome.in_(("pass", "warn", "breach")),
        )
        .order_by(monitoring_records.c.executed_at.desc())
        .limit(windows)
    ).all()
    within = ("pass", "warn")
    passes = [r.record_id for r in before[: windows - 1] if r.outcome in within]
    if len(passes) != windows - 1 or (len(before) == windows and before[-1].outcome in within):
        return False
    evidence = [record_id, *passes]
    noted = nc_record.Pending(
        "effectiveness_evidence",
        {"passing_runs": windows, "monitoring_records": evidence},
        {
            "body.effectiveness_evidence": {
                "available_since": iso(now),
                "monitoring_records": evidence,
            }
        },
    )
    nc_record.change(conn, str(row.nc_id), [noted], at=now, actor=AGENT)
    return True
