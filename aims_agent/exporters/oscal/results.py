"""The assessment-results document of one period: metadata, reviewed controls, observations,
findings and risks, back matter."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from aims_agent import __version__
from aims_agent.controls import control_order
from aims_agent.exporters.canonical import iso, sha256_hex
from aims_agent.exporters.oscal.common import (
    ANNEX_A,
    OSCAL_VERSION,
    JsonDict,
    as_float,
    control_id,
    framework_urn,
    model_component,
    one_line,
    prop,
    uuid_of,
)
from aims_agent.exporters.oscal.findings import as_of, compact, finding_and_risk
from aims_agent.exporters.oscal.observations import kind_props, observation
from aims_agent.storage import queries

if TYPE_CHECKING:
    from aims_agent.config import Config


def _metadata(last: str, scope: str, period: str, party: str, versions: Iterable[str]) -> JsonDict:
    return {
        "title": f"ISO/IEC 42001 runtime monitoring results: {scope}, {period}",
        "last-modified": last,
        "version": "",  # set from the content's digest
        "oscal-version": OSCAL_VERSION,
        "props": [prop("generator", f"aims-agent {__version__}")]
        + [prop("agent-version", v) for v in sorted(set(versions))],
        "roles": [{"id": "prepared-by", "title": "Prepared By"}],
        "parties": [
            {
                "uuid": party,
                "type": "organization",
                "name": "aims-agent",
                "remarks": "The runtime monitoring agent, a program: OSCAL knows parties only as "
                "persons or organizations.",
            }
        ],
        "responsible-parties": [{"role-id": "prepared-by", "party-uuids": [party]}],
        "remarks": "Exported from the agent's evidence store. record-sha256 is the SHA-256 of a "
        "monitoring record's canonical JSON (keys sorted, no blanks, UTF-8). hrefs starting "
        "with /v1/ are paths of the agent's API. The version is the content's digest.",
    }


def _reviewed(records: Sequence[Any], ncs: Sequence[Any], cfg_models: Sequence[Any]) -> JsonDict:
    """The Annex A controls the period's evidence speaks to; without evidence, those the
    configured checks are mapped to."""
    found = {str(c) for r in records for c in (r.body.get("controls") or {}).get("iso42001") or ()}
    found |= {str(c) for n in ncs for c in (n.body.get("requirement") or {}).get("controls") or ()}
    if not records and not ncs:
        from aims_agent.controls import controls_for

        found = {
            c
            for m in cfg_models
            for k in m.checks
            for c in controls_for(k.kind, k.controls).iso42001
        }
    annex = sorted((c for c in found if ANNEX_A.fullmatch(c)), key=control_order)
    clauses = {"9.1", *(c for c in found if not ANNEX_A.fullmatch(c))} | (
        {"10.2"} if ncs else set()
    )
    return {
        "description": "ISO/IEC 42001:2023 Annex A controls evidenced by the period's monitoring "
        "records and nonconformities (ids in lower case, as CISO Assistant names them).",
        "props": [prop("framework", framework_urn())]
        + [prop("iso42001-clause", c) for c in sorted(clauses, key=control_order)],
        "control-selections": [
            {"include-controls": [{"control-id": control_id(c)} for c in annex]}
            if annex
            else {"include-all": {}}
        ],
    }


def _back_matter(ev: _Evidence, plan: str, cfg: Config) -> JsonDict:
    hashes = sorted({str((r.body.get("method") or {}).get("config_sha256")) for r in ev.records})
    resources_: list[JsonDict] = [
        {
            "uuid": plan,
            "title": "Monitoring plan: the aims-agent configuration",
            "description": "No OSCAL assessment plan is published. The checks, schedules, "
            "thresholds and control mapping were those of the agent configuration with these "
            "SHA-256 digests.",
            "props": [prop("config-sha256", h) for h in hashes or [cfg.fingerprint()]],
        }
    ]
    for a in (a for atts in ev.attachments.values() for a in atts):
        link = {"href": f"/v1/attachments/{a.attachment_id}", "media-type": "text/html"}
        resources_.append(
            {
                "uuid": uuid_of("attachment", a.attachment_id),
                "title": one_line(f"{a.kind} {a.attachment_id}"),
                "props": [
                    prop("monitoring-record-id", a.monitoring_record_id),
                    prop("bytes", a.bytes),
                ],
                "rlinks": [{**link, "hashes": [{"algorithm": "SHA-256", "value": a.sha256}]}],
            }
        )
    return {"resources": resources_}


@dataclass(frozen=True, slots=True)
class _Evidence:
    records: list[Any]
    ncs: list[Any]
    events: dict[str, list[Any]]
    attachments: dict[str, list[Any]]


def _load(conn: Connection, t0: float, t1: float, model: str | None) -> _Evidence:
    """The period's monitoring records, and the nonconformities open at some time in it."""
    records = queries.records_in(conn, t0, t1, model)
    ncs, events = queries.opened_before(conn, t1, model)
    by_record = queries.attachments_of(conn, [r.record_id for r in records])
    # a record closed or rejected before the period began is not part of it
    ncs = [n for n in ncs if (as_of(events[n.nc_id], t1).closed_at or t1) >= t0]
    return _Evidence(records, ncs, events, by_record)


def assessment_results(
    conn: Connection,
    cfg: Config,
    start: float | datetime,
    end: float | datetime,
    model: str | None = None,
) -> JsonDict:
    """The OSCAL document `{"assessment-results": ...}` of the evidence from `start`
    (included) to `end` (excluded), of one model or all; the same evidence gives the same
    document."""
    t0, t1 = as_float(start), as_float(end)
    ev = _load(conn, t0, t1, model)
    agent, party = uuid_of("component", "aims-agent"), uuid_of("party", "aims-agent")
    cfg_models = [m for m in cfg.models if model is None or m.name == model]
    env = cfg.agent.environment
    components = {
        (m.name, m.version): model_component(m.name, m.version, m.ai_system_id, env)
        for m in cfg_models
    }
    observations = []
    for r in ev.records:
        s = r.body.get("system") or {}
        key = (r.model, str(s.get("model_version")))
        if key not in components:
            ais, r_env = str(s.get("ai_system_id")), str(s.get("environment"))
            components[key] = model_component(r.model, key[1], ais, r_env)
        atts = ev.attachments.get(r.record_id, [])
        observations.append(observation(r, components[key], agent, atts))
    position = {r.record_id: i for i, r in enumerate(ev.records)}
    by_nc: dict[str, set[int]] = {}
    for i, r in enumerate(ev.records):
        if r.nonconformity_id is not None:
            by_nc.setdefault(r.nonconformity_id, set()).add(i)
    findings, risks = [], []
    for n in ev.ncs:
        effective = (n.body.get("effectiveness_evidence") or {}).get("monitoring_records") or ()
        linked = by_nc.get(n.nc_id, set()) | {position[r] for r in effective if r in position}
        observed = [{"observation-uuid": observations[i]["uuid"]} for i in sorted(linked)]
        finding, risk = finding_and_risk(n, ev.events[n.nc_id], t1, observed, agent, party)
        # the figures of the latest run that opened or recurred it (kinds with a section)
        runs = [ev.records[i] for i in sorted(by_nc.get(n.nc_id, ()))]
        for r in reversed(runs):
            if figures := kind_props((r.body.get("check") or {}).get("kind"), r.body):
                finding["props"] = [*finding["props"], *figures]
                break
        findings.append(finding)
        risks.append(risk)

    versions = {str((r.body.get("method") or {}).get("agent_version")) for r in ev.records}
    agent_component = {
        "uuid": agent,
        "type": "software",
        "title": "aims-agent",
        "description": "The runtime ML monitoring sidecar that ran the checks and keeps the "
        "evidence (ISO/IEC 42001 clauses 9.1 and 10.2).",
        "props": [prop("version", v) for v in sorted(versions or {__version__})],
        "status": {"state": "operational"},
    }
    times = [t0, *(r.executed_at for r in ev.records)]
    times += [e.at for n in ev.ncs for e in ev.events[n.nc_id] if e.at < t1]
    scope = f"model {model}" if model else "all models"
    period = f"{iso(t0)} to {iso(t1)}"
    plan = uuid_of("assessment-plan", scope, t0, t1)
    result = {
        "uuid": uuid_of("result", scope, t0, t1),
        "title": f"Runtime monitoring of {scope}, {period}",
        "description": f"Check runs (ISO/IEC 42001 clause 9.1) and nonconformities (clause 10.2) "
        f"of {scope} from {iso(t0)} (included) to {iso(t1)} (excluded).",
        "start": iso(t0),
        "end": iso(t1),
        "local-definitions": {
            "components": sorted(
                [agent_component, *components.values()], key=lambda c: (c["title"], c["uuid"])
            )
        },
        "reviewed-controls": _reviewed(ev.records, ev.ncs, cfg_models),
        "observations": observations,
        "risks": risks,
        "findings": findings,
    }
    doc: JsonDict = {
        "uuid": uuid_of("assessment-results", scope, t0, t1),
        "metadata": _metadata(iso(max(times)), scope, period, party, versions),
        "import-ap": {"href": f"#{plan}"},
        "results": [compact(result)],
        "back-matter": _back_matter(ev, plan, cfg),
    }
    doc["metadata"]["version"] = f"sha256-{sha256_hex(doc)[:16]}"
    return {"assessment-results": doc}
