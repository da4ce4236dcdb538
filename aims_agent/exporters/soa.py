"""Statement of applicability view: which Annex A controls the agent evidences, per model.

For each monitored model, every ISO/IEC 42001 Annex A control (`configs/iso42001_annex_a.json`)
with whether the agent's monitoring evidences it, which of the model's checks do (from the
control mapping, `configs/controls.yaml`, or a check's own `controls`), and the date and verdict
of the latest monitoring record of those checks.

"applicable" here means "evidenced by the agent": whether a control applies to the AIMS at all
is the organisation's decision (clause 6.1.3 d), which this view informs but does not make.
Call it from a read connection: `store.read(lambda conn: build_soa(conn, cfg))`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from aims_agent.controls import annex_reference, control_mapping, controls_by_id
from aims_agent.errors import UnknownModelError
from aims_agent.exporters.canonical import iso
from aims_agent.exporters.lifecycle import TERMINAL
from aims_agent.storage import queries

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from aims_agent.config import Config, ModelConfig

SOA_SCHEMA = "aims.statement-of-applicability/1"
JsonDict = dict[str, Any]
_STANDARD = "ISO/IEC 42001:2023"


def _iso(ts: float | None) -> str | None:
    return None if ts is None else iso(ts)


@cache
def annex_a() -> tuple[Mapping[str, str], ...]:
    """The Annex A controls (id, title, group, CISO Assistant URN), in the standard's order."""
    return tuple(annex_reference()["annex_a_controls"])


@cache
def control_titles() -> Mapping[str, str]:
    """Title by id of every Annex A control and clause in the reference file."""
    return {cid: c["title"] for cid, c in controls_by_id().items()}


def _check_controls(model: ModelConfig) -> dict[str, list[JsonDict]]:
    """Control id -> the model's checks that evidence it, with the role the mapping gives."""
    out: dict[str, list[JsonDict]] = {}
    for check in model.checks:
        entry = control_mapping().get(check.kind, {})
        if check.controls:
            roles = dict.fromkeys(check.controls, "configured")
        else:
            roles = dict.fromkeys(entry.get("supporting", ()), "supporting")
            roles.update(dict.fromkeys(entry.get("primary", ()), "primary"))
        for control, role in roles.items():
            out.setdefault(control, []).append({"id": check.id, "kind": check.kind, "role": role})
    return out


def _open_ncs(conn: Connection, model: str, until: float | None) -> list[Any]:
    """The model's nonconformities still open at `until` (now when None)."""
    if until is None:
        return queries.open_nonconformities(conn, model)
    rows, _ = queries.opened_before(conn, until, model)
    out = []
    for r in rows:
        closed = (r.body or {}).get("closed_at")
        if r.status not in TERMINAL or (
            closed and datetime.fromisoformat(closed).timestamp() >= until
        ):
            out.append(r)
    return out


def _justification(checks: Sequence[JsonDict]) -> str:
    if not checks:
        return "Not evidenced by the agent: no check of this model is mapped to this control."
    parts = [f"{c['id']} ({c['kind']}, {c['role']})" for c in checks]
    return (
        f"Evidenced at runtime by the monitoring records (clause 9.1) of {', '.join(parts)}; "
        "a breach opens a nonconformity (clause 10.2) against it."
    )


def model_soa(conn: Connection, model: ModelConfig, until: float | None = None) -> JsonDict:
    """The statement of applicability view of one configured model."""
    by_control = _check_controls(model)
    latest = queries.latest_per_check(conn, model.name, until, [c.id for c in model.checks])
    open_ncs = _open_ncs(conn, model.name, until)
    controls = []
    for ctl in annex_a():
        checks = by_control.get(ctl["id"], [])
        runs = [latest[c["id"]] for c in checks if c["id"] in latest]
        last = max(runs, key=lambda r: (r.executed_at, r.record_id), default=None)
        ncs = [
            n.nc_id
            for n in open_ncs
            if ctl["id"] in ((n.body or {}).get("requirement") or {}).get("controls", ())
        ]
        controls.append(
            {
                "id": ctl["id"],
                "title": ctl["title"],
                "group": ctl["group"],
                "ciso_assistant_urn": ctl["ciso_assistant_urn"],
                "applicable": bool(checks),
                "justification": _justification(checks),
                "checks": checks,
                "latest_evidence": _iso(last.executed_at) if last else None,
                "latest_status": last.outcome if last else None,
                "latest_record_id": last.record_id if last else None,
                "open_nonconformities": ncs,
            }
        )
    evidenced = [c for c in controls if c["applicable"]]
    return {
        "model": model.name,
        "version": model.version,
        "ai_system_id": model.ai_system_id,
        "summary": {
            "controls": len(controls),
            "evidenced": len(evidenced),
            "not_evidenced": len(controls) - len(evidenced),
            "without_evidence_yet": sum(c["latest_evidence"] is None for c in evidenced),
            "latest_breach": sum(c["latest_status"] == "breach" for c in evidenced),
        },
        "controls": controls,
    }


def build_soa(
    conn: Connection, cfg: Config, model: str | None = None, *, until: float | None = None
) -> JsonDict:
    """The statement of applicability view of every configured model (or one), from the control
    mapping and the evidence store. `until`: only evidence before this time counts (a report's
    period end); default: all of it, and the nonconformities open now."""
    models = [m for m in cfg.models if model is None or m.name == model]
    if not models:
        known = ", ".join(m.name for m in cfg.models)
        raise UnknownModelError(f"--model: unknown model {model!r}; known: {known}")
    return {
        "schema_version": SOA_SCHEMA,
        "standard": _STANDARD,
        "as_of": _iso(until),
        "source": "control mapping (configs/controls.yaml, or a check's own controls) and the "
        "monitoring records of the evidence store",
        "note": "applicable = evidenced by the agent's runtime monitoring of the model; whether a "
        "control applies to the AI management system is decided by the organisation "
        "(ISO/IEC 42001 6.1.3 d).",
        "models": [model_soa(conn, m, until) for m in models],
    }
