"""OSCAL assessment results (NIST OSCAL 1.2.1, JSON) from the evidence store, for one period.

    monitoring record (clause 9.1) -> observation: methods TEST, the agent as origin (tool), the
                                      model as subject (component), the record as evidence
    nonconformity (clause 10.2)    -> finding on `objective-id` of its primary Annex A control
                                      (`a.6.2.6`): not-satisfied until closed (or rejected)
    its effect                     -> risk: status from the lifecycle, corrective action and
                                      reaction as remediations, the record's events as risk log

Only plain dicts: trestle, which validates the output in the tests, is a dev dependency. Every
uuid is a uuid5 of an evidence id and every time comes from the evidence, so the same evidence
exports to the same bytes. A nonconformity is shown as it stood at the end of the period: its
status from its events; a clause 10.2 field first set later is left out, one changed later is
shown as last recorded (the store keeps no older value) and says so. ISO clause ids, which are
no OSCAL tokens, and EU AI Act / NIST AI RMF tags are `props` in the namespace `NS`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sqlalchemy import Connection, select

from aims_agent import __version__
from aims_agent.controls import annex_reference, control_order
from aims_agent.exporters.canonical import iso, sha256_hex
from aims_agent.exporters.lifecycle import TERMINAL, status_after
from aims_agent.exporters.soa import control_titles
from aims_agent.records import AGENT_ACTOR
from aims_agent.storage.schema import (
    attachments,
    monitoring_records,
    nonconformities,
    nonconformity_events,
)

if TYPE_CHECKING:
    from aims_agent.config import Config

JsonDict = dict[str, Any]
OSCAL_VERSION = "1.2.1"  # what compliance-trestle 5.2's models implement
NS = "urn:aims-agent:oscal"
_UUIDS = uuid.uuid5(uuid.NAMESPACE_URL, NS)
RISK_STATUS = {  # nonconformity lifecycle -> OSCAL risk status
    "open": "open",
    "investigating": "investigating",
    "corrective_action": "remediating",
    "verifying": "remediating",
    "closed": "closed",
    "rejected": "closed",
}
_ANNEX_A = re.compile(r"A\.\d+\.\d+(\.\d+)*")
_TAGS = (
    ("iso42001", "iso42001-control"),
    ("eu_ai_act", "eu-ai-act"),
    ("nist_ai_rmf", "nist-ai-rmf"),
)


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(_UUIDS, "/".join(str(p) for p in parts)))


def _line(value: object) -> str:
    """One line without outer blanks: what OSCAL titles and property values accept."""
    return " ".join(str(value).split()) or "-"


def _prop(name: str, value: object, **extra: str) -> JsonDict:
    return {"name": name, "ns": NS, "value": _line(value), **extra}


def _token(value: object) -> str:
    text = re.sub(r"[^A-Za-z0-9_.-]", "-", str(value))
    return text if re.match(r"[A-Za-z_]", text) else f"_{text}"


def control_id(control: str) -> str:
    """An ISO/IEC 42001 id as an OSCAL control id: `A.6.2.6` -> `a.6.2.6` (CISO Assistant's
    spelling); a clause, which cannot start a token, `9.1` -> `clause-9.1`."""
    return control.lower() if _ANNEX_A.fullmatch(control) else f"clause-{control}"


def _framework_urn() -> str:
    return str(annex_reference()["ciso_assistant_framework_urn"])


def _as_float(t: float | datetime) -> float:
    return t.timestamp() if isinstance(t, datetime) else float(t)


def _tool(agent: str) -> list[JsonDict]:
    return [{"actors": [{"type": "tool", "actor-uuid": agent}]}]


def _model_component(model: str, version: str, ais: str, env: str) -> JsonDict:
    return {
        "uuid": _uuid("component", "model", model, version),
        "type": "software",
        "title": _line(f"Model {model} {version}"),
        "description": f"The monitored model {model} version {version} of AI system {ais} ({env}).",
        "props": [
            _prop("ai-system-id", ais),
            _prop("model", model),
            _prop("model-version", version),
            _prop("environment", env),
        ],
        "status": {"state": "operational"},
    }


def _measurement(m: Mapping[str, Any]) -> JsonDict:
    label = f"{m.get('metric')}[{m['feature']}]" if m.get("feature") else str(m.get("metric"))
    text = f"{label} = {m.get('value')} ({m.get('method')}"
    text += f", p = {m['p_value']}" if m.get("p_value") is not None else ""
    return _prop(
        "measurement", f"{text}, n = {m.get('n_current')})", **{"class": _token(m.get("verdict"))}
    )


def _observation(rec: Any, subject: JsonDict, agent: str, atts: Sequence[Any]) -> JsonDict:
    body: Mapping[str, Any] = rec.body
    check, result = body.get("check") or {}, body.get("result") or {}
    system, window = body.get("system") or {}, body.get("window") or {}
    outcome = str(result.get("outcome") or rec.outcome)
    props = [
        _prop("monitoring-record-id", rec.record_id),
        _prop("check-id", rec.check_id),
        _prop("check-kind", check.get("kind")),
        _prop("verdict", outcome),
    ]
    title = f"{rec.model}/{rec.check_id}: {outcome}"
    if result.get("value") is not None:
        props.append(_prop("value", f"{check.get('metric')} = {result['value']}"))
        title += f", {check.get('metric')} = {result['value']:.4g}"
    props += [_measurement(m) for m in result.get("measurements") or ()]
    threshold = (body.get("criteria") or {}).get("threshold") or {}
    if threshold.get("breaches_when"):
        props.append(
            _prop("threshold", f"{threshold['breaches_when']}, breach = {threshold.get('breach')}")
        )
    controls = body.get("controls") or {}
    props += [_prop(name, c) for key, name in _TAGS for c in controls.get(key) or ()]
    evidence = [
        {
            "href": "/v1/monitoring-records?"
            + urlencode({"model": rec.model, "check": rec.check_id}),
            "description": f"Monitoring record {rec.record_id} (ISO/IEC 42001 clause 9.1) as the "
            "agent's API serves it",
            "props": [
                _prop("monitoring-record-id", rec.record_id),
                _prop("record-sha256", sha256_hex(rec.body)),
            ],
        }
    ]
    evidence += [
        {"href": f"#{_uuid('attachment', a.attachment_id)}", "description": f"{a.kind} attachment"}
        for a in atts
    ]
    obs: JsonDict = {
        "uuid": _uuid("observation", rec.record_id),
        "title": _line(title),
        "description": f"Run of the {check.get('kind')} check {rec.check_id} on model {rec.model} "
        f"{system.get('model_version')} over the window {window.get('start')} to "
        f"{window.get('end')} ({window.get('records_sampled')} of {window.get('records_seen')} "
        f"records sampled): {outcome}. Metric: {check.get('definition')}.",
        "props": props,
        "methods": ["TEST"],
        "types": ["control-objective", "finding"] if outcome == "breach" else ["control-objective"],
        "origins": _tool(agent),
        "subjects": [
            {"subject-uuid": subject["uuid"], "type": "component", "title": subject["title"]}
        ],
        "relevant-evidence": evidence,
        "collected": body.get("created_at") or iso(rec.executed_at),
    }
    if result.get("error"):
        obs["remarks"] = f"The check failed: {result['error']}"
    return obs


@dataclass(frozen=True, slots=True)
class _AsOf:
    """A nonconformity at the end of the period, from its events."""

    status: str
    closed_at: float | None
    set_before: frozenset[str]  # clause 10.2 fields updated before the end
    set_after: frozenset[str]  # ... and at or after it
    set_ever: frozenset[str]

    def has(self, field: str) -> bool:
        # a field no event mentions was set by other means: shown, not guessed away
        return field in self.set_before or field not in self.set_ever


def _as_of(events: Sequence[Any], end: float) -> _AsOf:
    status, closed_at = status_after(e for e in events if e.at < end)
    before: set[str] = set()
    after: set[str] = set()
    for e in events:
        detail = e.body if isinstance(e.body, Mapping) else {}
        fields = set(detail.get("fields") or ()) if e.event == "updated" else set()
        (after if e.at >= end else before).update(fields)
    return _AsOf(status, closed_at, frozenset(before), frozenset(after), frozenset(before | after))


def _due(value: object) -> str | None:
    text = str(value or "")
    return f"{text}T23:59:59Z" if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else None


def _compact(d: JsonDict) -> JsonDict:
    return {k: v for k, v in d.items() if v is not None and v != []}


def _corrective_action(nc_id: str, action: object, review: object, state: _AsOf) -> JsonDict:
    act = action if isinstance(action, Mapping) else {"description": action}
    keys = (("owner", "owner"), ("status", "action-status"), ("due_date", "due-date"))
    done = act.get("status") == "done"
    if "corrective_action" in state.set_after:  # its value at the end is not kept: the status
        done = state.status in ("verifying", "closed")  # says whether it was done by then
    item: JsonDict = {
        "uuid": _uuid("remediation", nc_id, "corrective-action"),
        "lifecycle": "completed" if done else "planned",
        "title": "Corrective action (ISO/IEC 42001 10.2 c)",
        "description": str(act.get("description") or "corrective action"),
        "props": [_prop(name, act[key]) for key, name in keys if act.get(key)],
    }
    if due := _due(act.get("due_date")):
        task = {"type": "milestone", "title": "Corrective action due"}
        item["tasks"] = [
            {"uuid": _uuid("task", nc_id, due), **task, "timing": {"on-date": {"date": due}}}
        ]
    remarks = []
    if "corrective_action" in state.set_after:
        remarks.append(
            "Changed after the period: description, owner, status and due date are the latest "
            "recorded."
        )
    if isinstance(review, Mapping):
        remarks.append(
            f"Effectiveness review (10.2 d): effective = {review.get('effective')}, verified by "
            f"{review.get('verified_by')} on {review.get('evidence')}."
        )
    item["remarks"] = " ".join(remarks) or None
    return _compact(item)


def _remediations(nc_id: str, body: Mapping[str, Any], state: _AsOf) -> list[JsonDict]:
    def known(name: str) -> Any:  # as the record stood at the end of the period
        return body.get(name) if state.has(name) else None

    out: list[JsonDict] = []
    if isinstance(reaction := known("reaction"), Mapping):
        out.append(
            _compact(
                {
                    "uuid": _uuid("remediation", nc_id, "reaction"),
                    "lifecycle": "completed",
                    "title": "Reaction: containment or correction (ISO/IEC 42001 10.2 a)",
                    "description": str(reaction.get("action") or "reaction"),
                    "props": [_prop(k, reaction[k]) for k in ("by", "at") if reaction.get(k)],
                }
            )
        )
    if action := known("corrective_action"):
        out.append(_corrective_action(nc_id, action, known("effectiveness_review"), state))
    elif state.status != "rejected":  # a false alarm needs no action
        out.append(
            {
                "uuid": _uuid("remediation", nc_id, "corrective-action"),
                "lifecycle": "planned",
                "title": "Corrective action to be decided (ISO/IEC 42001 10.2 c)",
                "description": "No corrective action was recorded for this nonconformity by the "
                "end of the period.",
                "props": [_prop("placeholder", "true")],
            }
        )
    return out


def _risk_log(nc_id: str, events: Sequence[Any], end: float, party: str) -> list[JsonDict]:
    entries = []
    for e in events:
        if e.at >= end:
            continue
        detail = e.body if isinstance(e.body, Mapping) else {}
        entry: JsonDict = {
            "uuid": _uuid("risk-log", nc_id, e.event_id),
            "title": _line(f"{e.event} by {e.actor}"),
            "description": json.dumps(detail, sort_keys=True, ensure_ascii=False),
            "start": iso(e.at),
            "props": [_prop("event", e.event), _prop("actor", e.actor)],
        }
        if e.actor == AGENT_ACTOR:
            entry["logged-by"] = [{"party-uuid": party}]
        if detail.get("to") in RISK_STATUS:
            entry["status-change"] = RISK_STATUS[detail["to"]]
        entries.append(entry)
    return entries


def _nonconformity(
    nc: Any, events: Sequence[Any], end: float, observed: list[JsonDict], agent: str, party: str
) -> tuple[JsonDict, JsonDict]:
    """The finding and the risk of one nonconformity, as it stood at `end`."""
    body: Mapping[str, Any] = nc.body
    state = _as_of(events, end)
    req, nature = body.get("requirement") or {}, body.get("nature") or {}
    controls = [str(c) for c in req.get("controls") or ()] or ["10.2"]
    target = next((c for c in controls if _ANNEX_A.fullmatch(c)), controls[0])
    severity = str(body.get("severity") or "minor")
    window = nature.get("window") or {}
    what = (
        f"observed {nature.get('observed') or 'a breach'} where "
        f"{nature.get('expected') or 'no breach'} is required, window {window.get('start')} to "
        f"{window.get('end')}"
    )
    props = [
        _prop("nonconformity-id", nc.nc_id),
        _prop("nonconformity-status", state.status),
        _prop("severity", severity),
        _prop("iso42001-clause", "10.2"),
        *(_prop("iso42001-control", c) for c in controls),
        _prop("recurrences", sum(e.event == "recurred" and e.at < end for e in events)),
    ]
    incident = body.get("possible_serious_incident")
    if isinstance(incident, Mapping) and incident.get("possible"):
        props.append(_prop("possible-serious-incident", incident.get("kind") or "general"))
        props.append(_prop("art73-reporting-deadline", incident.get("art73_reporting_deadline")))
    urn = f"{_framework_urn().replace(':framework:', ':req_node:')}:{target.lower()}"
    finding: JsonDict = {
        "uuid": _uuid("finding", nc.nc_id),
        "title": _line(f"Nonconformity {nc.nc_id}: {nc.model}/{nc.check_id} against {target}"),
        "description": f"{req.get('criterion') or 'The monitoring criterion'}: {what}.",
        "props": props,
        "origins": _tool(agent),
        "target": {
            "type": "objective-id",
            "target-id": control_id(target),
            "title": _line(f"ISO/IEC 42001 {target} {control_titles().get(target, '')}"),
            "props": [_prop("ciso-assistant-urn", urn)],
            "status": {
                "state": "satisfied" if state.status in TERMINAL else "not-satisfied",
                "reason": {"closed": "pass", "rejected": "other"}.get(state.status, "fail"),
            },
        },
        "related-observations": observed,
        "related-risks": [{"risk-uuid": _uuid("risk", nc.nc_id)}],
    }
    if state.status == "rejected":
        finding["remarks"] = f"Rejected as no nonconformity: {body.get('rejection_justification')}"
    cause = body.get("cause_analysis") if state.has("cause_analysis") else None
    action = body.get("corrective_action") if state.has("corrective_action") else None
    risk: JsonDict = {
        "uuid": _uuid("risk", nc.nc_id),
        "title": _line(f"{severity.capitalize()} nonconformity {nc.nc_id} of {nc.model}"),
        "description": f"AI system {body.get('ai_system_id')} (model {nc.model} "
        f"{body.get('model_version')}) may not meet {', '.join(controls)} while this "
        f"nonconformity stands; detected by the check {nc.check_id}."
        + (f" Root cause: {cause.get('root_cause')}." if isinstance(cause, Mapping) else ""),
        "statement": f"{severity.capitalize()} nonconformity: {what}.",
        "props": props,
        "status": RISK_STATUS.get(state.status, "open"),
        "origins": _tool(agent),
        "deadline": _due(action.get("due_date")) if isinstance(action, Mapping) else None,
        "remediations": _remediations(nc.nc_id, body, state),
        "risk-log": _compact({"entries": _risk_log(nc.nc_id, events, end, party)}) or None,
        "related-observations": observed,
    }
    return _compact(finding), _compact(risk)


def _metadata(last: str, scope: str, period: str, party: str, versions: Iterable[str]) -> JsonDict:
    return {
        "title": f"ISO/IEC 42001 runtime monitoring results: {scope}, {period}",
        "last-modified": last,
        "version": "",  # set from the content's digest
        "oscal-version": OSCAL_VERSION,
        "props": [_prop("generator", f"aims-agent {__version__}")]
        + [_prop("agent-version", v) for v in sorted(set(versions))],
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
    annex = sorted((c for c in found if _ANNEX_A.fullmatch(c)), key=control_order)
    clauses = {"9.1", *(c for c in found if not _ANNEX_A.fullmatch(c))} | (
        {"10.2"} if ncs else set()
    )
    return {
        "description": "ISO/IEC 42001:2023 Annex A controls evidenced by the period's monitoring "
        "records and nonconformities (ids in lower case, as CISO Assistant names them).",
        "props": [_prop("framework", _framework_urn())]
        + [_prop("iso42001-clause", c) for c in sorted(clauses, key=control_order)],
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
            "props": [_prop("config-sha256", h) for h in hashes or [cfg.fingerprint()]],
        }
    ]
    for a in (a for atts in ev.attachments.values() for a in atts):
        link = {"href": f"/v1/attachments/{a.attachment_id}", "media-type": "text/html"}
        resources_.append(
            {
                "uuid": _uuid("attachment", a.attachment_id),
                "title": _line(f"{a.kind} {a.attachment_id}"),
                "props": [
                    _prop("monitoring-record-id", a.monitoring_record_id),
                    _prop("bytes", a.bytes),
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
    mr, nct, ev = monitoring_records.c, nonconformities.c, nonconformity_events.c
    rq = select(monitoring_records).where(mr.executed_at >= t0, mr.executed_at < t1)
    nq = select(nonconformities).where(nct.opened_at < t1)
    if model is not None:
        rq, nq = rq.where(mr.model == model), nq.where(nct.model == model)
    records = list(conn.execute(rq.order_by(mr.executed_at, mr.record_id)))
    ncs = list(conn.execute(nq.order_by(nct.opened_at, nct.nc_id)))
    events: dict[str, list[Any]] = {n.nc_id: [] for n in ncs}
    eq = select(nonconformity_events).where(ev.nc_id.in_(list(events))).order_by(ev.event_id)
    for e in conn.execute(eq):
        events[e.nc_id].append(e)
    aq = select(attachments).where(
        attachments.c.monitoring_record_id.in_([r.record_id for r in records])
    )
    by_record: dict[str, list[Any]] = {}
    for a in conn.execute(aq.order_by(attachments.c.attachment_id)):
        by_record.setdefault(a.monitoring_record_id, []).append(a)
    # a record closed or rejected before the period began is not part of it
    ncs = [n for n in ncs if (_as_of(events[n.nc_id], t1).closed_at or t1) >= t0]
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
    t0, t1 = _as_float(start), _as_float(end)
    ev = _load(conn, t0, t1, model)
    agent, party = _uuid("component", "aims-agent"), _uuid("party", "aims-agent")
    cfg_models = [m for m in cfg.models if model is None or m.name == model]
    env = cfg.agent.environment
    components = {
        (m.name, m.version): _model_component(m.name, m.version, m.ai_system_id, env)
        for m in cfg_models
    }
    observations = []
    for r in ev.records:
        s = r.body.get("system") or {}
        key = (r.model, str(s.get("model_version")))
        if key not in components:
            ais, r_env = str(s.get("ai_system_id")), str(s.get("environment"))
            components[key] = _model_component(r.model, key[1], ais, r_env)
        atts = ev.attachments.get(r.record_id, [])
        observations.append(_observation(r, components[key], agent, atts))
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
        finding, risk = _nonconformity(n, ev.events[n.nc_id], t1, observed, agent, party)
        findings.append(finding)
        risks.append(risk)

    versions = {str((r.body.get("method") or {}).get("agent_version")) for r in ev.records}
    agent_component = {
        "uuid": agent,
        "type": "software",
        "title": "aims-agent",
        "description": "The runtime ML monitoring sidecar that ran the checks and keeps the "
        "evidence (ISO/IEC 42001 clauses 9.1 and 10.2).",
        "props": [_prop("version", v) for v in sorted(versions or {__version__})],
        "status": {"state": "operational"},
    }
    times = [t0, *(r.executed_at for r in ev.records)]
    times += [e.at for n in ev.ncs for e in ev.events[n.nc_id] if e.at < t1]
    scope = f"model {model}" if model else "all models"
    period = f"{iso(t0)} to {iso(t1)}"
    plan = _uuid("assessment-plan", scope, t0, t1)
    result = {
        "uuid": _uuid("result", scope, t0, t1),
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
        "uuid": _uuid("assessment-results", scope, t0, t1),
        "metadata": _metadata(iso(max(times)), scope, period, party, versions),
        "import-ap": {"href": f"#{plan}"},
        "results": [_compact(result)],
        "back-matter": _back_matter(ev, plan, cfg),
    }
    doc["metadata"]["version"] = f"sha256-{sha256_hex(doc)[:16]}"
    return {"assessment-results": doc}
