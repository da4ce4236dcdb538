"""What each console page shows, read from the evidence store (one connection per page).

Pure reads over `storage.queries` and the exporters' own views (the statement of applicability,
the nonconformity record as the API serves it), so the console says what the API, the reports
and the OSCAL export say.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, select

from aims_agent.config import Config, ModelConfig
from aims_agent.exporters.soa import build_soa
from aims_agent.storage import queries
from aims_agent.storage.schema import monitoring_records

HISTORY = 200  # runs shown on a check's page
STRIP = 30  # runs in the per-feature heat strip
_mr = monitoring_records.c


def iso(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def age(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    s = max(0.0, now - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.0f} {unit} ago"
    return f"{s:.0f} s ago"


def _nc(row: Any) -> dict[str, Any]:
    return {
        **row.body,
        "status": row.status,
        "recurrences": row.recurrences,
        "last_seen_at": row.last_seen_at,
    }


def _is_overdue(nc: Mapping[str, Any], today: date) -> bool:
    action = nc.get("corrective_action") or {}
    due = action.get("due_date")
    return bool(due) and action.get("status") != "done" and date.fromisoformat(str(due)) < today


def _incident(nc: Mapping[str, Any], now: float) -> dict[str, Any] | None:
    """A possible serious incident with its EU AI Act Art. 73 deadline and the days left."""
    incident = nc.get("possible_serious_incident")
    if not isinstance(incident, Mapping) or not incident.get("possible"):
        return None
    deadline = str(incident["art73_reporting_deadline"])
    end = datetime.fromisoformat(deadline.replace("Z", "+00:00"))
    return {
        "nc_id": nc["nc_id"],
        "model": nc.get("model"),
        "kind": incident.get("kind"),
        "deadline": deadline,
        "days_left": math.floor((end.timestamp() - now) / 86400),
    }


def overview(conn: Connection, cfg: Config, now: float) -> dict[str, Any]:
    """Every model: each check's latest verdict and its age, the worst verdict of its last
    runs, open and overdue nonconformities, possible serious incidents."""
    today = datetime.fromtimestamp(now, UTC).date()
    open_ncs = [
        {**r.body, "status": r.status}
        for m in cfg.models
        for r in queries.open_nonconformities(conn, m.name)
    ]
    models = []
    for m in cfg.models:
        latest = queries.latest_per_check(conn, m.name, None, [c.id for c in m.checks])
        checks = []
        for c in m.checks:
            last = latest.get(c.id)
            recent = queries.recent_outcomes(conn, m.name, c.id, 20)
            checks.append(
                {
                    "id": c.id,
                    "kind": c.kind,
                    "verdict": last.outcome if last else "no evidence yet",
                    "at": iso(last.executed_at) if last else "-",
                    "age": age(last.executed_at if last else None, now),
                    "stale": last is None or now - last.executed_at > 1.5 * c.schedule_seconds,
                    "worst": _worst(recent),
                }
            )
        mine = [n for n in open_ncs if n.get("model") == m.name]
        models.append(
            {
                "name": m.name,
                "version": m.version,
                "ai_system_id": m.ai_system_id,
                "checks": checks,
                "open": len(mine),
                "overdue": sum(_is_overdue(n, today) for n in mine),
            }
        )
    incidents = [i for n in open_ncs if (i := _incident(n, now)) is not None]
    return {"models": models, "incidents": incidents}


_ORDER = ("error", "breach", "warn", "insufficient_data", "pass")


def _worst(outcomes: Sequence[str]) -> str:
    return next((o for o in _ORDER if o in outcomes), "-")


def controls(conn: Connection, cfg: Config, now: float) -> dict[str, Any]:
    """The statement of applicability, every control with the age of its latest evidence and
    whether that is older than `console.freshness_hours` (stale)."""
    soa = build_soa(conn, cfg)
    fresh = cfg.console.freshness_hours * 3600
    for model in soa["models"]:
        for ctl in model["controls"]:
            at = ctl["latest_evidence"]
            ts = datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() if at else None
            ctl["age"] = age(ts, now) if ctl["applicable"] else ""
            ctl["stale"] = ctl["applicable"] and (ts is None or now - ts > fresh)
    return soa


def check_history(conn: Connection, model: ModelConfig, check_id: str) -> dict[str, Any]:
    """A check's last runs, oldest first: time, outcome, headline value and threshold; its
    features' latest drift values; the attachments of the runs shown."""
    rows = conn.execute(
        select(_mr.record_id, _mr.executed_at, _mr.outcome, _mr.body)
        .where(_mr.model == model.name, _mr.check_id == check_id)
        .order_by(_mr.executed_at.desc())
        .limit(HISTORY)
    ).all()[::-1]
    runs = []
    for r in rows:
        result = r.body.get("result") or {}
        head = next((m for m in result.get("measurements", []) if m.get("headline")), None)
        threshold = (head or {}).get("threshold") or {}
        runs.append(
            {
                "record_id": r.record_id,
                "at": iso(r.executed_at),
                "ts": r.executed_at,
                "outcome": r.outcome,
                "metric": (head or {}).get("metric"),
                "value": result.get("value") if head is None else head.get("value"),
                "breach": threshold.get("breach"),
                "warn": threshold.get("warn"),
                "reason": (r.body.get("not_run") or {}).get("reason") or result.get("reason"),
            }
        )
    last = rows[-1].body if rows else None
    features = []
    if last is not None:
        for m in (last.get("result") or {}).get("measurements", []):
            if m.get("feature") and not m.get("headline"):
                features.append(m)
    attachments = queries.attachments_of(conn, [r.record_id for r in rows])
    return {
        "runs": runs,
        "features": features,
        "strip": heat_strip(rows[-STRIP:], [str(f["feature"]) for f in features]),
        "attachments": [dict(a._mapping) for recs in attachments.values() for a in recs],
    }


def heat_strip(rows: Sequence[Any], names: Sequence[str]) -> dict[str, Any]:
    """Each feature's verdict in each of these runs (oldest first; None where the run did not
    measure it), for the heat strip under a check's chart."""
    cells: dict[str, list[dict[str, Any] | None]] = {name: [] for name in names}
    for r in rows:
        measured = {
            str(m["feature"]): m
            for m in ((r.body.get("result") or {}).get("measurements") or [])
            if m.get("feature") and not m.get("headline")
        }
        for name in names:
            m = measured.get(name)
            cells[name].append(None if m is None else {"verdict": m.get("verdict"),
                                                       "value": m.get("value")})  # fmt: skip
    return {"at": [iso(r.executed_at) for r in rows], "cells": cells}


PAGE = 100  # register rows per page


def nonconformities(
    conn: Connection, now: float, *, model: str | None, status: str | None,
    severity: str | None, source: str | None, overdue: bool, page: int = 1,
) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
    """A page of the register, filtered, newest first, and how many match in all. Filters on
    columns page in SQL; severity, source and overdue (in the record's body) read them all."""
    today = datetime.fromtimestamp(now, UTC).date()
    first = (max(1, page) - 1) * PAGE
    if not (severity or source or overdue):
        rows, total = queries.nonconformity_page(
            conn, status=status or None, model=model or None, offset=first, limit=PAGE
        )
        return [_listed(_nc(r), today) for r in rows], total
    out = []
    for row in queries.nonconformity_list(conn, status=status or None, model=model or None):
        nc = _nc(row)
        src = (nc.get("detected_by") or {}).get("type")
        if severity and nc.get("severity") != severity:
            continue
        if source and src != source:
            continue
        listed = _listed(nc, today)
        if overdue and not listed["overdue"]:
            continue
        out.append(listed)
    return out[first : first + PAGE], len(out)


def _listed(nc: dict[str, Any], today: date) -> dict[str, Any]:
    source = (nc.get("detected_by") or {}).get("type")
    return {**nc, "source": source, "overdue": _is_overdue(nc, today)}


def nonconformity(conn: Connection, nc_id: str) -> dict[str, Any] | None:
    """One record with its dated events and who did each."""
    found = queries.nonconformity(conn, nc_id)
    if found is None:
        return None
    row, events = found
    timeline = [
        {
            "at": iso(e.at),
            "event": e.event,
            "by": (e.body or {}).get("by") or {"name": e.actor},
            "note": (e.body or {}).get("comment") or (e.body or {}).get("reason"),
        }
        for e in events
    ]
    return {"nc": _nc(row), "timeline": timeline}
