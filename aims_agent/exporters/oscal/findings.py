"""Nonconformities (clause 10.2) as OSCAL findings and risks, as they stood at a period's end."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aims_agent.exporters.canonical import iso
from aims_agent.exporters.lifecycle import TERMINAL, status_after
from aims_agent.exporters.oscal.common import (
    ANNEX_A,
    RISK_STATUS,
    JsonDict,
    control_id,
    framework_urn,
    one_line,
    prop,
    tool,
    uuid_of,
)
from aims_agent.exporters.register import describe_source
from aims_agent.exporters.soa import control_titles
from aims_agent.records import AGENT_ACTOR


@dataclass(frozen=True, slots=True)
class AsOf:
    """A nonconformity at the end of the period, from its events."""

    status: str
    closed_at: float | None
    set_before: frozenset[str]  # clause 10.2 fields updated before the end
    set_after: frozenset[str]  # ... and at or after it
    set_ever: frozenset[str]

    def has(self, field: str) -> bool:
        # a field no event mentions was set by other means: shown, not guessed away
        return field in self.set_before or field not in self.set_ever


def as_of(events: Sequence[Any], end: float) -> AsOf:
    status, closed_at = status_after(e for e in events if e.at < end)
    before: set[str] = set()
    after: set[str] = set()
    for e in events:
        detail = e.body if isinstance(e.body, Mapping) else {}
        fields = set(detail.get("fields") or ()) if e.event == "updated" else set()
        (after if e.at >= end else before).update(fields)
    return AsOf(status, closed_at, frozenset(before), frozenset(after), frozenset(before | after))


def _due(value: object) -> str | None:
    text = str(value or "")
    return f"{text}T23:59:59Z" if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else None


def compact(d: JsonDict) -> JsonDict:
    return {k: v for k, v in d.items() if v is not None and v != []}


def _corrective_action(nc_id: str, action: object, review: object, state: AsOf) -> JsonDict:
    act = action if isinstance(action, Mapping) else {"description": action}
    keys = (("owner", "owner"), ("status", "action-status"), ("due_date", "due-date"))
    done = act.get("status") == "done"
    if "corrective_action" in state.set_after:  # its value at the end is not kept: the status
        done = state.status in ("verifying", "closed")  # says whether it was done by then
    item: JsonDict = {
        "uuid": uuid_of("remediation", nc_id, "corrective-action"),
        "lifecycle": "completed" if done else "planned",
        "title": "Corrective action (ISO/IEC 42001 10.2 c)",
        "description": str(act.get("description") or "corrective action"),
        "props": [prop(name, act[key]) for key, name in keys if act.get(key)],
    }
    if due := _due(act.get("due_date")):
        task = {"type": "milestone", "title": "Corrective action due"}
        item["tasks"] = [
            {"uuid": uuid_of("task", nc_id, due), **task, "timing": {"on-date": {"date": due}}}
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
    return compact(item)


def _remediations(nc_id: str, body: Mapping[str, Any], state: AsOf) -> list[JsonDict]:
    def known(name: str) -> Any:  # as the record stood at the end of the period
        return body.get(name) if state.has(name) else None

    out: list[JsonDict] = []
    if isinstance(reaction := known("reaction"), Mapping):
        out.append(
            compact(
                {
                    "uuid": uuid_of("remediation", nc_id, "reaction"),
                    "lifecycle": "completed",
                    "title": "Reaction: containment or correction (ISO/IEC 42001 10.2 a)",
                    "description": str(reaction.get("action") or "reaction"),
                    "props": [prop(k, reaction[k]) for k in ("by", "at") if reaction.get(k)],
                }
            )
        )
    if action := known("corrective_action"):
        out.append(_corrective_action(nc_id, action, known("effectiveness_review"), state))
    elif state.status != "rejected":  # a false alarm needs no action
        out.append(
            {
                "uuid": uuid_of("remediation", nc_id, "corrective-action"),
                "lifecycle": "planned",
                "title": "Corrective action to be decided (ISO/IEC 42001 10.2 c)",
                "description": "No corrective action was recorded for this nonconformity by the "
                "end of the period.",
                "props": [prop("placeholder", "true")],
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
            "uuid": uuid_of("risk-log", nc_id, e.event_id),
            "title": one_line(f"{e.event} by {e.actor}"),
            "description": json.dumps(detail, sort_keys=True, ensure_ascii=False),
            "start": iso(e.at),
            "props": [prop("event", e.event), prop("actor", e.actor)],
        }
        if e.actor == AGENT_ACTOR:
            entry["logged-by"] = [{"party-uuid": party}]
        if detail.get("to") in RISK_STATUS:
            entry["status-change"] = RISK_STATUS[detail["to"]]
        entries.append(entry)
    return entries


def _found_by(check_id: str, body: Mapping[str, Any]) -> str:
    """`detected by the check drift`, or `found by internal_audit AUD-7 (reported by Ines)`."""
    detected = body.get("detected_by")
    if not isinstance(detected, Mapping) or detected.get("type") in (None, "check"):
        return f"detected by the check {check_id}"
    return f"found by {describe_source(body.get('source')) or detected.get('type')}"


def finding_and_risk(
    nc: Any, events: Sequence[Any], end: float, observed: list[JsonDict], agent: str, party: str
) -> tuple[JsonDict, JsonDict]:
    """The finding and the risk of one nonconformity, as it stood at `end`."""
    body: Mapping[str, Any] = nc.body
    state = as_of(events, end)
    req, nature = body.get("requirement") or {}, body.get("nature") or {}
    controls = [str(c) for c in req.get("controls") or ()] or ["10.2"]
    target = next((c for c in controls if ANNEX_A.fullmatch(c)), controls[0])
    severity = str(body.get("severity") or "minor")
    window = nature.get("window") or {}
    what = (
        f"observed {nature.get('observed') or 'a breach'} where "
        f"{nature.get('expected') or 'no breach'} is required, window {window.get('start')} to "
        f"{window.get('end')}"
    )
    props = [
        prop("nonconformity-id", nc.nc_id),
        prop("nonconformity-status", state.status),
        prop("severity", severity),
        prop("iso42001-clause", "10.2"),
        *(prop("iso42001-control", c) for c in controls),
        prop("recurrences", sum(e.event == "recurred" and e.at < end for e in events)),
    ]
    incident = body.get("possible_serious_incident")
    if isinstance(incident, Mapping) and incident.get("possible"):
        props.append(prop("possible-serious-incident", incident.get("kind") or "general"))
        props.append(prop("art73-reporting-deadline", incident.get("art73_reporting_deadline")))
    urn = f"{framework_urn().replace(':framework:', ':req_node:')}:{target.lower()}"
    finding: JsonDict = {
        "uuid": uuid_of("finding", nc.nc_id),
        "title": one_line(f"Nonconformity {nc.nc_id}: {nc.model}/{nc.check_id} against {target}"),
        "description": f"{req.get('criterion') or 'The monitoring criterion'}: {what}.",
        "props": props,
        "origins": tool(agent),
        "target": {
            "type": "objective-id",
            "target-id": control_id(target),
            "title": one_line(f"ISO/IEC 42001 {target} {control_titles().get(target, '')}"),
            "props": [prop("ciso-assistant-urn", urn)],
            "status": {
                "state": "satisfied" if state.status in TERMINAL else "not-satisfied",
                "reason": {"closed": "pass", "rejected": "other"}.get(state.status, "fail"),
            },
        },
        "related-observations": observed,
        "related-risks": [{"risk-uuid": uuid_of("risk", nc.nc_id)}],
    }
    if state.status == "rejected":
        finding["remarks"] = f"Rejected as no nonconformity: {body.get('rejection_justification')}"
    cause = body.get("cause_analysis") if state.has("cause_analysis") else None
    action = body.get("corrective_action") if state.has("corrective_action") else None
    risk: JsonDict = {
        "uuid": uuid_of("risk", nc.nc_id),
        "title": one_line(f"{severity.capitalize()} nonconformity {nc.nc_id} of {nc.model}"),
        "description": f"AI system {body.get('ai_system_id')} (model {nc.model} "
        f"{body.get('model_version')}) may not meet {', '.join(controls)} while this "
        f"nonconformity stands; {_found_by(nc.check_id, body)}."
        + (f" Root cause: {cause.get('root_cause')}." if isinstance(cause, Mapping) else ""),
        "statement": f"{severity.capitalize()} nonconformity: {what}.",
        "props": props,
        "status": RISK_STATUS.get(state.status, "open"),
        "origins": tool(agent),
        "deadline": _due(action.get("due_date")) if isinstance(action, Mapping) else None,
        "remediations": _remediations(nc.nc_id, body, state),
        "risk-log": compact({"entries": _risk_log(nc.nc_id, events, end, party)}) or None,
        "related-observations": observed,
    }
    return compact(finding), compact(risk)
