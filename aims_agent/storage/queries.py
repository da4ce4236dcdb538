"""Reads of the evidence store, shared by the HTTP API, the period report, the statement of
applicability and the OSCAL export, so each question is asked of the tables in one place.

Every function takes an open connection and returns rows (SQLAlchemy `Row`s with attribute
access) or plain values; none writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, func, select

from aims_agent.storage.schema import (
    attachments,
    monitoring_records,
    nonconformities,
    nonconformity_events,
)

NOT_RUN = "not_run"  # the outcome of a scheduled run that did not happen (exporters.not_run)

_mr, _nc, _ev, _at = (
    monitoring_records.c,
    nonconformities.c,
    nonconformity_events.c,
    attachments.c,
)


# --- monitoring records ----------------------------------------------------------------------


def monitoring_bodies(
    conn: Connection, *, model: str | None = None, check: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest monitoring record bodies, optionally of one model and check."""
    query = select(_mr.body).order_by(_mr.executed_at.desc())
    if model:
        query = query.where(_mr.model == model)
    if check:
        query = query.where(_mr.check_id == check)
    return list(conn.execute(query.limit(limit)).scalars())


def records_in(conn: Connection, t0: float, t1: float, model: str | None) -> list[Any]:
    """Whole monitoring record rows executed in [t0, t1), oldest first."""
    query = select(monitoring_records).where(_mr.executed_at >= t0, _mr.executed_at < t1)
    if model is not None:
        query = query.where(_mr.model == model)
    return list(conn.execute(query.order_by(_mr.executed_at, _mr.record_id)))


def runs_in(conn: Connection, t0: float, t1: float, model: str | None) -> list[Any]:
    """The check runs of [t0, t1), light columns only (a year of runs stays cheap)."""
    query = select(
        _mr.model,
        _mr.check_id,
        _mr.record_id,
        _mr.executed_at,
        _mr.outcome,
        _mr.nonconformity_id,
        _mr.body[("check", "kind")].as_string().label("kind"),
        _mr.body[("result", "value")].as_float().label("value"),
        _mr.body[("result", "not_run", "reason")].as_string().label("not_run_reason"),
        _mr.body[("controls", "iso42001")].label("controls"),
        _mr.body[("system", "model_version")].as_string().label("version"),
    ).where(_mr.executed_at >= t0, _mr.executed_at < t1)
    if model is not None:
        query = query.where(_mr.model == model)
    return list(conn.execute(query.order_by(_mr.executed_at, _mr.record_id)))


def bodies_of(conn: Connection, record_ids: Sequence[str]) -> dict[str, Any]:
    """Monitoring record bodies by id."""
    rows = conn.execute(select(_mr.record_id, _mr.body).where(_mr.record_id.in_(record_ids)))
    return {r.record_id: r.body for r in rows}


def check_bodies(
    conn: Connection, model: str, check_id: str, t0: float, t1: float
) -> Iterable[Any]:
    """One check's record bodies executed in [t0, t1), oldest first, read as they stream
    (ix_monitoring_model_check_time): a year of a check's runs is never held at once."""
    query = (
        select(_mr.body)
        .where(
            _mr.model == model,
            _mr.check_id == check_id,
            _mr.executed_at >= t0,
            _mr.executed_at < t1,
            _mr.outcome != NOT_RUN,
        )
        .order_by(_mr.executed_at, _mr.record_id)
        .execution_options(yield_per=500)
    )
    return conn.execute(query).scalars()


def first_runs(conn: Connection, model: str | None) -> dict[tuple[str, str], float]:
    """(model, check id) -> when its first monitoring record was made."""
    query = select(_mr.model, _mr.check_id, func.min(_mr.executed_at)).group_by(
        _mr.model, _mr.check_id
    )
    if model is not None:
        query = query.where(_mr.model == model)
    return {(str(m), str(c)): float(at) for m, c, at in conn.execute(query)}


def latest_scheduled(conn: Connection, model: str, check_id: str) -> float | None:
    """When a check's latest monitoring record of any outcome was made (downtime detection)."""
    query = select(func.max(_mr.executed_at)).where(_mr.model == model, _mr.check_id == check_id)
    at = conn.execute(query).scalar()
    return None if at is None else float(at)


def latest_records(
    conn: Connection, model: str, check_id: str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The bodies of a check's latest monitoring record and of its latest one without an error."""

    def newest(*where: Any) -> dict[str, Any] | None:
        query = select(_mr.body).where(
            _mr.model == model, _mr.check_id == check_id, _mr.outcome != NOT_RUN, *where
        )
        return conn.execute(query.order_by(_mr.executed_at.desc()).limit(1)).scalar()

    latest = newest()
    if latest is None or latest["result"]["outcome"] != "error":
        return latest, latest
    return latest, newest(_mr.outcome != "error")


def latest_per_check(
    conn: Connection, model: str, until: float | None, check_ids: Iterable[str]
) -> dict[str, Any]:
    """Check id -> its latest monitoring record (record_id, executed_at, outcome) before
    `until` (or ever), for each of `check_ids` that has one. One indexed lookup per check
    (ix_monitoring_model_check_time), newest first: no scan of the model's other records."""
    out = {}
    for check_id in check_ids:
        query = select(_mr.check_id, _mr.record_id, _mr.executed_at, _mr.outcome).where(
            _mr.model == model, _mr.check_id == check_id, _mr.outcome != NOT_RUN
        )
        if until is not None:
            query = query.where(_mr.executed_at < until)
        row = conn.execute(
            query.order_by(_mr.executed_at.desc(), _mr.record_id.desc()).limit(1)
        ).first()
        if row is not None:
            out[check_id] = row
    return out


def recent_outcomes(conn: Connection, model: str, check_id: str, limit: int) -> list[str]:
    """The outcomes of a check's latest `limit` runs, newest first."""
    query = (
        select(_mr.outcome)
        .where(_mr.model == model, _mr.check_id == check_id, _mr.outcome != NOT_RUN)
        .order_by(_mr.executed_at.desc())
        .limit(limit)
    )
    return [str(o) for o in conn.execute(query).scalars()]


# --- attachments -----------------------------------------------------------------------------


def attachment(conn: Connection, attachment_id: str) -> Any | None:
    """One attachment row, or None."""
    return conn.execute(select(attachments).where(_at.attachment_id == attachment_id)).first()


def attachments_of(conn: Connection, record_ids: Iterable[str]) -> dict[str, list[Any]]:
    """Monitoring record id -> its attachment rows, in id order."""
    query = select(attachments).where(_at.monitoring_record_id.in_(list(record_ids)))
    out: dict[str, list[Any]] = {}
    for a in conn.execute(query.order_by(_at.attachment_id)):
        out.setdefault(a.monitoring_record_id, []).append(a)
    return out


# --- nonconformities -------------------------------------------------------------------------


def nonconformity_list(
    conn: Connection, *, status: str | None = None, model: str | None = None
) -> list[Any]:
    """Nonconformity rows, newest first."""
    query = select(nonconformities).order_by(_nc.opened_at.desc())
    if status:
        query = query.where(_nc.status == status)
    if model:
        query = query.where(_nc.model == model)
    return list(conn.execute(query))


def nonconformity_page(
    conn: Connection, *, status: str | None, model: str | None, offset: int, limit: int
) -> tuple[list[Any], int]:
    """A page of nonconformity rows, newest first, and how many there are in all."""
    where = [c for c in (_nc.status == status if status else None,
                         _nc.model == model if model else None) if c is not None]  # fmt: skip
    total = conn.execute(select(func.count()).select_from(nonconformities).where(*where))
    query = select(nonconformities).where(*where).order_by(_nc.opened_at.desc())
    return list(conn.execute(query.offset(offset).limit(limit))), int(total.scalar_one())


def nonconformity(conn: Connection, nc_id: str) -> tuple[Any, list[Any]] | None:
    """One nonconformity row and its events in order, or None."""
    row = conn.execute(select(nonconformities).where(_nc.nc_id == nc_id)).first()
    if row is None:
        return None
    events = conn.execute(
        select(nonconformity_events).where(_ev.nc_id == nc_id).order_by(_ev.event_id)
    )
    return row, list(events)


def opened_before(
    conn: Connection, t1: float, model: str | None, *, events_before: bool = False
) -> tuple[list[Any], dict[str, list[Any]]]:
    """Nonconformities opened before `t1`, oldest first, with their events (only those before
    `t1` with `events_before`). Which were still open in a period is the lifecycle's call."""
    query = select(nonconformities).where(_nc.opened_at < t1)
    if model is not None:
        query = query.where(_nc.model == model)
    rows = list(conn.execute(query.order_by(_nc.opened_at, _nc.nc_id)))
    events: dict[str, list[Any]] = {r.nc_id: [] for r in rows}
    eq = select(nonconformity_events).where(_ev.nc_id.in_(list(events)))
    if events_before:
        eq = eq.where(_ev.at < t1)
    for e in conn.execute(eq.order_by(_ev.at, _ev.event_id)):
        events[e.nc_id].append(e)
    return rows, events


def open_nonconformities(conn: Connection, model: str) -> list[Any]:
    """The model's nonconformities open now (nc_id, status, opened_at, body)."""
    query = select(_nc.nc_id, _nc.status, _nc.opened_at, _nc.body).where(
        _nc.model == model, _nc.open_key.is_not(None)
    )
    return list(conn.execute(query.order_by(_nc.opened_at)))


def open_counts(conn: Connection) -> dict[str, int]:
    """Model -> how many of its nonconformities are open."""
    query = select(_nc.model, func.count()).where(_nc.open_key.is_not(None)).group_by(_nc.model)
    return {str(m): int(n) for m, n in conn.execute(query).all()}
