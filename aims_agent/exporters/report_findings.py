"""What a period report puts first: possible serious incidents with their EU AI Act Art. 73
reporting deadline, and per check the breaches of the period (observed against expected, the
features involved), read from the breaching monitoring records themselves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aims_agent.exporters.lifecycle import TERMINAL
from aims_agent.storage import queries

if TYPE_CHECKING:
    from sqlalchemy import Connection

JsonDict = dict[str, Any]
MAX_BREACHES = 50  # per check; the most recent ones (the counts cover every run)


def serious_incidents(models: Sequence[Mapping[str, Any]], as_of: float) -> list[JsonDict]:
    """Every nonconformity of the report flagged a possible serious incident, soonest deadline
    first, with the days left to report (negative: past the deadline)."""
    out = []
    for m in models:
        for i in m["nonconformities"]["items"]:
            incident = i.get("possible_serious_incident")
            if not incident:
                continue
            deadline = incident.get("art73_reporting_deadline")
            left = None
            if deadline:
                at = datetime.fromisoformat(deadline.replace("Z", "+00:00")).timestamp()
                left = round((at - as_of) / 86400, 1)
            out.append(
                {
                    "nc_id": i["nc_id"],
                    "model": m["name"],
                    "check_id": i["check_id"],
                    "kind": incident.get("kind"),
                    "aware_at": incident.get("aware_at"),
                    "art73_days": incident.get("art73_days"),
                    "art73_reporting_deadline": deadline,
                    "days_left": left,
                    "status_at_end": i["status_at_end"],
                    "open": i["status_at_end"] not in TERMINAL,
                }
            )
    return sorted(out, key=lambda x: x["art73_reporting_deadline"] or "")


def _label(m: Mapping[str, Any]) -> str:
    return f"{m['metric']}[{m['feature']}]" if m.get("feature") else str(m["metric"])


def breach_item(body: Mapping[str, Any]) -> JsonDict:
    """One breaching run: what was observed against what was expected, and which features."""
    result = body.get("result") or {}
    breached = [m for m in result.get("measurements") or () if m.get("verdict") == "breach"]
    heads = [m for m in breached if m.get("headline")] or breached
    observed = "; ".join(
        f"{_label(m)} = {m['value']:.6g}" for m in heads if m.get("value") is not None
    )
    expected = "; ".join(
        f"{_label(m)}: breach when {(m.get('threshold') or {}).get('breaches_when')}, "
        f"breach = {(m.get('threshold') or {}).get('breach')}"
        for m in heads
    )
    return {
        "record_id": body.get("record_id"),
        "at": body.get("executed_at"),
        "observed": observed or None,
        "expected": expected or None,
        "features": sorted({m["feature"] for m in breached if m.get("feature")}),
        "nonconformity_id": body.get("nonconformity_id"),
    }


def breaches(conn: Connection, runs: Sequence[Any]) -> dict[tuple[str, str], JsonDict]:
    """(model, check id) -> {"items": the latest MAX_BREACHES breaches, "total": how many}."""
    found: dict[tuple[str, str], list[str]] = {}
    for r in runs:
        if r.outcome == "breach":
            found.setdefault((r.model, r.check_id), []).append(r.record_id)
    wanted = [rid for ids in found.values() for rid in ids[-MAX_BREACHES:]]
    bodies = queries.bodies_of(conn, wanted)
    return {
        key: {
            "total": len(ids),
            "items": [breach_item(bodies[rid]) for rid in ids[-MAX_BREACHES:] if rid in bodies],
        }
        for key, ids in found.items()
    }
