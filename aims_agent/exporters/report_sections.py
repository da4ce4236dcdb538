"""The sections of a period report (`exporters.report`), from rows of the evidence store.

Runs are read as light columns (times, verdicts, the headline value, the control tags), so a
year of them stays cheap; full bodies only for each check's latest run.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aims_agent.controls import control_order, controls_for
from aims_agent.exporters.canonical import iso
from aims_agent.exporters.lifecycle import TERMINAL, status_after
from aims_agent.exporters.register import describe_source
from aims_agent.exporters.soa import control_titles
from aims_agent.storage import queries

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from aims_agent.config import CheckConfig, ModelConfig

OUTCOMES = ("pass", "warn", "breach", "insufficient_data", "error", "not_run")
# the worst verdict of a period: a breach outranks a warn, a warn a run without data, ...
_WORST = ("breach", "warn", "error", "insufficient_data", "pass")
DAY = 86400.0
JsonDict = dict[str, Any]


# --- building --------------------------------------------------------------------------------


def load_nonconformities(
    conn: Connection, t0: float, t1: float, model: str | None
) -> list[tuple[Any, Any]]:
    """Nonconformities open at some time in the period, each with its events before the end."""
    rows, events = queries.opened_before(conn, t1, model, events_before=True)
    out = []
    for r in rows:
        state = status_after(events[r.nc_id])
        if state[1] is None or state[1] >= t0:  # closed before the period: not part of it
            out.append((r, events[r.nc_id]))
    return out


def day_count(t0: float, as_of: float) -> int:
    """Days in the series: from the period's start to its end, or to now if it has not ended."""
    return max(1, math.ceil((as_of - t0) / DAY))


def _tally(rows: Sequence[Any], t0: float, ndays: int, *, values: bool) -> JsonDict:
    """Runs, verdict counts and the daily series of some runs."""
    counts = Counter(r.outcome for r in rows)
    series: list[JsonDict] = [
        {
            "date": (datetime.fromtimestamp(t0, UTC) + timedelta(days=i)).date().isoformat(),
            "runs": 0,
            **dict.fromkeys(OUTCOMES, 0),
        }
        for i in range(ndays)
    ]
    daily: list[list[float]] = [[] for _ in range(ndays)]
    for r in rows:
        i = min(ndays - 1, int((r.executed_at - t0) // DAY))
        series[i]["runs"] += 1
        series[i][r.outcome if r.outcome in OUTCOMES else "error"] += 1
        if r.value is not None:
            daily[i].append(float(r.value))
    if values:
        for day, vs in zip(series, daily, strict=True):
            day["value_mean"] = round(statistics.fmean(vs), 6) if vs else None
            day["value_max"] = round(max(vs), 6) if vs else None
    last = rows[-1] if rows else None
    ran = [r for r in rows if r.outcome != "not_run"]
    return {
        "runs": len(rows),
        "counts": {o: counts.get(o, 0) for o in OUTCOMES},
        "first_run": iso(rows[0].executed_at) if rows else None,
        "last_run": iso(last.executed_at) if last else None,
        "last_outcome": ran[-1].outcome if ran else None,
        "worst_outcome": next((o for o in _WORST if counts.get(o)), None),
        "series": series,
    }


def _check_section(
    check_id: str,
    rows: Sequence[Any],
    cfg: CheckConfig | None,
    body: Mapping[str, Any] | None,
    t0: float,
    ndays: int,
) -> JsonDict:
    body = body or {}
    kind = (rows[-1].kind if rows else None) or (cfg.kind if cfg else None)
    controls = (body.get("controls") or {}).get("iso42001")
    if controls is None and cfg is not None:
        controls = list(controls_for(cfg.kind, cfg.controls).iso42001)
    criteria = body.get("criteria") or {}
    return {
        "id": check_id,
        "kind": kind,
        "configured": cfg is not None,
        "severity": cfg.severity if cfg else None,
        "schedule_seconds": cfg.schedule_seconds if cfg else None,
        "controls": list(controls or ()),
        "metric": (body.get("check") or {}).get("metric"),
        "threshold": criteria.get("threshold"),
        "last_value": rows[-1].value if rows else None,
        **_tally(rows, t0, ndays, values=True),
    }


def _control_sections(
    checks: Sequence[JsonDict], rows: Sequence[Any], t0: float, ndays: int
) -> list[JsonDict]:
    """Per control: the runs of every check that evidences it (as each record was tagged)."""
    fallback = {c["id"]: c["controls"] for c in checks}
    runs: dict[str, list[Any]] = {c: [] for ch in checks for c in ch["controls"]}
    ids: dict[str, set[str]] = {c: set() for c in runs}
    for ch in checks:
        for c in ch["controls"]:
            ids[c].add(ch["id"])
    for r in rows:
        for c in r.controls if r.controls is not None else fallback.get(r.check_id, ()):
            runs.setdefault(c, []).append(r)
            ids.setdefault(c, set()).add(r.check_id)
    titles = control_titles()
    return [
        {
            "id": c,
            "title": titles.get(c),
            "checks": sorted(ids[c]),
            **_tally(runs[c], t0, ndays, values=False),
        }
        for c in sorted(runs, key=control_order)
    ]


def _days_between(a: float, b: float) -> float:
    return round((b - a) / DAY, 2)


def _field(body: Mapping[str, Any], name: str, *keys: str) -> JsonDict | None:
    value = body.get(name)
    if not value:
        return None
    value = value if isinstance(value, Mapping) else {keys[0]: value}
    return {k: value.get(k) for k in keys}


def _nc_item(row: Any, events: Sequence[Any], t0: float, as_of: float) -> JsonDict:
    """One nonconformity as it stood at the end of the period (fields as last recorded)."""
    body: Mapping[str, Any] = row.body or {}
    status, closed_at = status_after(events)
    recurred = [e.at for e in events if e.event == "recurred"]
    action = _field(body, "corrective_action", "description", "owner", "due_date", "status")
    still_open = status not in TERMINAL
    due = str((action or {}).get("due_date") or "")
    incident = body.get("possible_serious_incident")
    nature = body.get("nature") or {}
    return {
        "nc_id": row.nc_id,
        "check_id": row.check_id,
        "severity": body.get("severity"),
        "controls": list((body.get("requirement") or {}).get("controls") or ()),
        "opened_at": iso(row.opened_at),
        "opened_in_period": row.opened_at >= t0,
        "status_at_end": status,
        "status_now": row.status,
        "closed_at": iso(closed_at) if closed_at is not None else None,
        "age_days": _days_between(row.opened_at, as_of) if still_open else None,
        "days_to_close": _days_between(row.opened_at, closed_at) if closed_at else None,
        "recurrences_in_period": sum(t >= t0 for t in recurred),
        "recurrences_total": len(recurred),
        "last_seen_at": iso(max([row.opened_at, *recurred])),
        "observed": nature.get("observed"),
        "expected": nature.get("expected"),
        "reaction": _field(body, "reaction", "action", "by", "at"),
        "cause_analysis": _field(body, "cause_analysis", "root_cause", "method"),
        "corrective_action": action,
        "corrective_action_overdue": bool(
            still_open
            and action
            and action.get("status") != "done"
            and due
            and due < iso(as_of)[:10]
        ),
        "effectiveness_review": _field(
            body, "effectiveness_review", "effective", "verified_by", "evidence", "at"
        ),
        "effectiveness_evidence_since": (body.get("effectiveness_evidence") or {}).get(
            "available_since"
        ),
        "possible_serious_incident": dict(incident)
        if isinstance(incident, Mapping) and incident.get("possible")
        else None,
        "rejection_justification": body.get("rejection_justification"),
        "features": list(nature.get("affected") or ()),
        "source": describe_source(body.get("source")) or _source(body.get("detected_by")),
        **_people(events),
    }


def _source(detected: object) -> str | None:
    """Where a record came from: the check that breached, or what a person recorded."""
    if not isinstance(detected, Mapping):
        return None
    if detected.get("type") == "check":
        record = detected.get("monitoring_record_id")
        return f"check {detected.get('check_id')} (monitoring record {record})"
    return str(detected.get("type"))


def _who(e: Any) -> JsonDict:
    by = (e.body or {}).get("by") if isinstance(e.body, Mapping) else None
    by = by if isinstance(by, Mapping) else {}
    return {
        "by": e.actor,
        "by_kind": by.get("kind"),
        "by_email": by.get("email"),
        "by_client": by.get("client"),
    }


def _people(events: Sequence[Any]) -> JsonDict:
    """Who did each step, from the events: the history, and the actor and time of the action
    marked done, of the effectiveness review and of the closing."""
    history, done, reviewed, closed = [], None, None, None
    for e in events:
        body = e.body if isinstance(e.body, Mapping) else {}
        fields = body.get("fields") or ()
        detail = (
            f"{body.get('from')} -> {body.get('to')}"
            if body.get("to")
            else ", ".join(fields) or body.get("comment") or None
        )
        step = {"at": iso(e.at), "event": e.event, "detail": detail, **_who(e)}
        history.append(step)
        if body.get("corrective_action_done"):
            done = step
        if "effectiveness_review" in fields:
            reviewed = step
        if body.get("to") in TERMINAL:
            closed = step
    return {
        "history": history,
        "action_done": done,
        "reviewed": reviewed,
        "closed": closed,
    }


def _stats(values: Sequence[float]) -> JsonDict:
    if not values:
        return {"n": 0, "mean": None, "median": None, "max": None}
    return {
        "n": len(values),
        "mean": round(statistics.fmean(values), 2),
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
    }


def _nc_summary(items: Sequence[JsonDict]) -> JsonDict:
    ended = Counter(i["status_at_end"] for i in items)
    still_open = [i for i in items if i["status_at_end"] not in TERMINAL]
    opened = [i for i in items if i["opened_in_period"]]
    actions = [i["corrective_action"] for i in items if i["corrective_action"]]
    return {
        "carried_in": len(items) - len(opened),
        "opened": len(opened),
        "closed": ended["closed"],
        "rejected": ended["rejected"],
        "open_at_end": len(still_open),
        "recurrences": sum(i["recurrences_in_period"] for i in items),
        "by_status_at_end": {
            s: ended[s] for s in ("open", "investigating", "corrective_action", "verifying")
        },
        "by_severity_opened": dict(Counter(str(i["severity"]) for i in opened)),
        "days_to_close": _stats(
            [i["days_to_close"] for i in items if i["status_at_end"] == "closed"]
        ),
        "age_days_open": _stats([i["age_days"] for i in still_open]),
        "corrective_actions": {
            "recorded": len(actions),
            "done": sum(a.get("status") == "done" for a in actions),
            "overdue": sum(i["corrective_action_overdue"] for i in items),
            "missing_on_open": sum(i["corrective_action"] is None for i in still_open),
        },
    }


def model_section(
    name: str,
    mcfg: ModelConfig | None,
    rows: Sequence[Any],
    ncs: Sequence[tuple[Any, Any]],
    bodies: Mapping[str, Any],
    last: Mapping[tuple[str, str], str],
    span: tuple[float, float, int],
) -> JsonDict:
    t0, as_of, ndays = span
    check_ids = [c.id for c in mcfg.checks] if mcfg else []
    check_ids += sorted({r.check_id for r in rows} - set(check_ids))
    by_check: dict[str, list[Any]] = {c: [] for c in check_ids}
    for r in rows:
        by_check[r.check_id].append(r)
    cfgs = mcfg.checks_by_id if mcfg else {}
    checks = [
        _check_section(c, by_check[c], cfgs.get(c), bodies.get(last.get((name, c), "")), t0, ndays)
        for c in check_ids
    ]
    items = [_nc_item(r, events, t0, as_of) for r, events in ncs]
    versions = sorted({r.version for r in rows if r.version})
    system = next(
        (
            b.get("system") or {}
            for k, rid in last.items()
            if k[0] == name and (b := bodies.get(rid))
        ),
        {},
    )
    counts = Counter(r.outcome for r in rows)
    return {
        "name": name,
        "configured": mcfg is not None,
        "version": mcfg.version if mcfg else system.get("model_version"),
        "versions_seen": versions,
        "ai_system_id": mcfg.ai_system_id if mcfg else system.get("ai_system_id"),
        "totals": {"runs": len(rows), **{o: counts.get(o, 0) for o in OUTCOMES}},
        "checks": checks,
        "controls": _control_sections(checks, rows, t0, ndays),
        "nonconformities": {"summary": _nc_summary(items), "items": items},
    }


def notes(models: Sequence[JsonDict], now: float, t1: float, as_of: float) -> list[str]:
    """What the evidence does not say, or says only in part, for this report."""
    notes = []
    if now < t1:
        notes.append(f"The period has not ended: figures are as of {iso(as_of)}.")
    for m in models:
        if not m["configured"]:
            notes.append(f"{m['name']}: evidence in the period, but no longer configured.")
        elif not m["totals"]["runs"]:
            notes.append(f"{m['name']}: no check ran in the period.")
        bare = [
            i["nc_id"]
            for i in m["nonconformities"]["items"]
            if i["status_at_end"] not in TERMINAL and i["corrective_action"] is None
        ]
        if bare:
            notes.append(
                f"{m['name']}: {len(bare)} nonconformit{'y' if len(bare) == 1 else 'ies'} open "
                f"at the end of the period without a recorded corrective action: "
                f"{', '.join(bare)}."
            )
    notes.append(
        "Nonconformity status at the end of the period is taken from its dated events; "
        "severity, reaction, cause analysis, corrective action and effectiveness review are "
        "shown as last recorded; who did each step and when is taken from the events."
    )
    notes.append("Daily series are UTC days; a run counts on the day it started.")
    return notes
