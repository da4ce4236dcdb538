"""A nonconformity row is the projection of its events: every field it has, an event set.

The row's mutable fields are its columns `status`, `last_seen_at`, `recurrences`, `open_key`
and its `body` (reaction, cause analysis, corrective action, effectiveness review, severity,
serious incident, links to monitoring records...). Each event that changes any of them carries
in its body `set` (field -> new value) and `old` (field -> value before). A field is a column
name, "body" (the whole document, set by the event that opens the record) or "body.<key>" (one
top-level key of the document). The row is written from `set` by `change`, never beside it, so
replaying the events (`project`) gives the row back; `exporters.ledger_verify` compares the two
and names the first field that differs. Events are chained in the ledger, so their values are
as written.

    opened(conn, row, at=t, actor=AGENT_ACTOR, body={...})            # after inserting the row
    change(conn, nc_id, [Pending("updated", {...}, {"body.severity": "major"})], at=t, actor=ana)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, Text, cast, select, update

from aims_agent.errors import NonconformityNotFoundError
from aims_agent.exporters import ledger
from aims_agent.records import Actor
from aims_agent.storage.schema import nonconformities, nonconformity_events

COLUMNS = ("status", "last_seen_at", "recurrences", "open_key")
STATE = (*COLUMNS, "body")
_N = nonconformities


def state_of(row: Mapping[str, Any] | Any) -> dict[str, Any]:
    """The projected fields of a nonconformity row (its columns and body), JSON as stored."""
    return {k: ledger.as_stored(row[k]) if k == "body" else row[k] for k in STATE}


def get(state: Mapping[str, Any], field: str) -> Any:
    """A field's value in a state (None if absent)."""
    if field.startswith("body."):
        return (state.get("body") or {}).get(field[5:])
    return state.get(field)


def put(state: dict[str, Any], field: str, value: Any) -> None:
    """Set a field in a state, in place."""
    if field.startswith("body."):
        state["body"] = {**(state.get("body") or {}), field[5:]: value}
    elif field in STATE:
        state[field] = value
    else:
        raise ValueError(f"not a field of a nonconformity: {field!r}")


def opened(
    conn: Connection, row: Mapping[str, Any], *, at: float, actor: Actor, body: Mapping[str, Any]
) -> int:
    """Chain a newly inserted nonconformity (`row`: every column) and its "opened" event, which
    sets every field to what the row holds; returns the event's id."""
    ledger.append_nonconformity(conn, row)
    sets = state_of(row)
    return ledger.insert_event(
        conn,
        nc_id=str(row["nc_id"]),
        at=at,
        actor=actor,
        event="opened",
        body={**body, "set": sets},
    )


@dataclass(frozen=True, slots=True)
class Pending:
    """One event of a change: its name, its body and the fields it sets."""

    event: str
    body: Mapping[str, Any]
    sets: Mapping[str, Any]


def change(
    conn: Connection,
    nc_id: str,
    events: Iterable[Pending],
    *,
    at: float,
    actor: Actor,
    current: Mapping[str, Any] | None = None,
) -> list[int]:
    """Write the fields the events set into the row (read, locked, unless `current` holds its
    state) and insert the events, each with the new and old values of what it sets."""
    events = list(events)
    if current is None:
        row = conn.execute(
            select(*(_N.c[k] for k in STATE)).where(_N.c.nc_id == nc_id).with_for_update()
        ).first()
        if row is None:
            raise NonconformityNotFoundError(f"no nonconformity {nc_id!r}")
        current = state_of(row._mapping)
    state = dict(current)
    written: list[tuple[Pending, dict[str, Any], dict[str, Any]]] = []
    for p in events:
        sets = {k: ledger.as_stored(v) for k, v in p.sets.items()}
        old = {k: get(state, k) for k in sets}
        for k, v in sets.items():
            put(state, k, v)
        written.append((p, sets, old))
    values = {k: state[k] for k in STATE if state[k] != current.get(k)}
    if values:
        conn.execute(update(_N).where(_N.c.nc_id == nc_id).values(**values))
    ids = []
    for p, sets, old in written:
        body = {**p.body, "set": sets, "old": old} if sets else dict(p.body)
        ids.append(
            ledger.insert_event(conn, nc_id=nc_id, at=at, actor=actor, event=p.event, body=body)
        )
    return ids


@dataclass(frozen=True, slots=True)
class Replay:
    state: dict[str, Any] | None  # None: the first event sets no fields (written before sets)
    stale: tuple[int, str, Any, Any] | None  # (event_id, field, old, projected): altered before


def project(events: Iterable[tuple[int, Mapping[str, Any]]]) -> Replay:
    """Replay (event_id, body) in order: the state they set, and the first event whose `old`
    value disagrees with the state before it (the row had been altered before that change)."""
    state: dict[str, Any] | None = None
    stale = None
    for event_id, body in events:
        sets = body.get("set") if isinstance(body, Mapping) else None
        if not isinstance(sets, Mapping):
            continue
        if state is None:
            if "body" not in sets:
                return Replay(None, None)
            state = {}
        old = body.get("old")
        for k, v in sets.items():
            if stale is None and isinstance(old, Mapping) and k in old and old[k] != get(state, k):
                stale = (event_id, k, old[k], get(state, k))
            put(state, k, v)
    return Replay(state, stale)


def first_difference(expected: Any, stored: Any, path: str) -> tuple[str, Any, Any] | None:
    """The first (sorted) path where two JSON values differ, with both values there."""
    if isinstance(expected, Mapping) and isinstance(stored, Mapping):
        for k in sorted(expected.keys() | stored.keys()):
            found = first_difference(expected.get(k), stored.get(k), f"{path}.{k}")
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(stored, list) and len(expected) == len(stored):
        for i, (a, b) in enumerate(zip(expected, stored, strict=True)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    same = (
        expected == stored
        and type(expected) is type(stored)
        or (
            isinstance(expected, int | float)
            and isinstance(stored, int | float)
            and not isinstance(expected, bool)
            and not isinstance(stored, bool)
            and expected == stored
        )
    )
    return None if same else (path, expected, stored)


def problem(events: list[tuple[int, str, Any]], stored: dict[str, Any]) -> str | None:
    """Why a stored row (its columns and body) is not what its events (event_id, name, body)
    set, or None."""
    if not stored:
        return "record altered: body is not valid JSON"
    replay = project((i, b) for i, _, b in events if isinstance(b, Mapping))
    if replay.state is None:  # written before events carried their fields
        status, recurred = "open", 0
        for _, name, body in events:
            recurred += name == "recurred"
            to = body.get("to") if isinstance(body, Mapping) else None
            status = to if isinstance(to, str) else status
        got = (stored.get("status"), stored.get("recurrences"))
        if got == (status, recurred):
            return None
        return (
            f"record state not explained by its events: status {got[0]}, {got[1]} "
            f"recurrences; the events say {status}, {recurred}"
        )
    for k in STATE:
        diff = first_difference(replay.state.get(k), stored.get(k), k)
        if diff:
            path, expected, got = diff
            return f"field {path} altered: stored {_short(got)}, its events say {_short(expected)}"
    if replay.stale:
        event_id, path, old, projected = replay.stale
        return (
            f"field {path} was altered before event {event_id}: it found {_short(old)}, "
            f"the events before it say {_short(projected)}"
        )
    return None


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def problems(conn: Connection) -> Iterator[tuple[str, str]]:
    """(nc_id, why) of each nonconformity whose row is not what its events set; records written
    before events carried their fields: status and recurrences only."""
    n, e = nonconformities, nonconformity_events
    cols = [n.c.nc_id, *(n.c[k] for k in COLUMNS), cast(n.c.body, Text).label("body")]
    rows = conn.execute(
        select(*cols, e.c.event_id, e.c.event, cast(e.c.body, Text).label("event_body"))
        .select_from(n.outerjoin(e, e.c.nc_id == n.c.nc_id))
        .order_by(n.c.nc_id, e.c.event_id)
        .execution_options(yield_per=1000)
    )
    for nc_id, group in groupby(rows, key=lambda r: str(r.nc_id)):
        events, stored = [], None
        for row in group:
            if stored is None:
                try:
                    stored = {**{k: row._mapping[k] for k in COLUMNS}, "body": json.loads(row.body)}
                except ValueError:
                    stored = {}
            try:
                body = json.loads(row.event_body) if row.event_body else None
            except ValueError:  # reported by the event's own check
                body = None
            if row.event_id is not None:
                events.append((int(row.event_id), row.event, body))
        why = problem(events, stored or {})
        if why:
            yield nc_id, why


def rows_digest(conn: Connection) -> str:
    """SHA-256 over every nonconformity row as stored (its fields, in nc_id order): what the
    incremental verify compares to tell whether any row changed since the last check."""
    n = nonconformities
    digest = hashlib.sha256()
    rows = conn.execute(
        select(n.c.nc_id, *(n.c[k] for k in COLUMNS), cast(n.c.body, Text))
        .order_by(n.c.nc_id)
        .execution_options(yield_per=1000)
    )
    for row in rows:
        digest.update(json.dumps(list(row)).encode() + b"\n")
    return digest.hexdigest()
