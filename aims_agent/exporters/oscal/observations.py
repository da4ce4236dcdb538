"""Monitoring records (clause 9.1) as OSCAL observations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from aims_agent.exporters import kind_sections
from aims_agent.exporters.canonical import iso, sha256_hex
from aims_agent.exporters.oscal.common import (
    TAGS,
    JsonDict,
    one_line,
    prop,
    token,
    tool,
    uuid_of,
)


def _measurement(m: Mapping[str, Any]) -> JsonDict:
    label = f"{m.get('metric')}[{m['feature']}]" if m.get("feature") else str(m.get("metric"))
    text = f"{label} = {m.get('value')} ({m.get('method')}"
    text += f", p = {m['p_value']}" if m.get("p_value") is not None else ""
    return prop(
        "measurement", f"{text}, n = {m.get('n_current')})", **{"class": token(m.get("verdict"))}
    )


def _num(value: object) -> str:
    return "none" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)


def _estimate_props(w: Mapping[str, Any]) -> list[JsonDict]:
    keys = (
        ("estimate", "estimated-value"),
        ("band_low", "band-low"),
        ("band_high", "band-high"),
        ("limit", "limit"),
        ("realised", "realised-value"),
        ("error", "estimate-error"),
        ("labelled_rows", "labelled-rows"),
    )
    return [
        prop(name, _num(e[key]), group=token(metric))
        for metric, e in w["metrics"].items()
        for key, name in keys
        if e.get(key) is not None
    ]


def _intended_use_props(w: Mapping[str, Any]) -> list[JsonDict]:
    props = [
        prop(name.replace("_", "-"), _num(v["value"]))
        for name, v in w["shares"].items()
        if v["value"] is not None
    ]
    outside = sorted(((v, f) for f, v in w["features"].items() if v), reverse=True)
    props += [
        prop("feature-outside-share", _num(v), **{"class": token(f)})
        for v, f in outside[: kind_sections.WORST_FEATURES]
    ]
    props += [prop("unexpected-category", c) for c in w["unexpected_categories"][:20]]
    return props


def _oversight_props(w: Mapping[str, Any]) -> list[JsonDict]:
    props = [
        prop(name.replace("_", "-"), _num(r["value"]))
        for name, r in w["rates"].items()
        if r["value"] is not None
    ]
    names = {"decisions": "decisions", "needing_review": "decisions-needing-review"}
    return props + [
        prop(names.get(name, f"decisions-{name}"), n)
        for name, n in w["counts"].items()
        if n is not None
    ]


_KIND_PROPS = {
    "estimated_performance": _estimate_props,
    "intended_use": _intended_use_props,
    "oversight": _oversight_props,
}


def kind_props(kind: str | None, body: Mapping[str, Any]) -> list[JsonDict]:
    """What a governance reader needs of a run of the kinds with a section (`kind_sections`):
    an estimate with its band, limit, realised value and error (grouped by metric); the shares
    outside the intended-use envelope and its worst features; the oversight rates."""
    w = kind_sections.window(kind, body)
    return [] if w is None or kind is None else _KIND_PROPS[kind](w)


def observation(rec: Any, subject: JsonDict, agent: str, atts: Sequence[Any]) -> JsonDict:
    body: Mapping[str, Any] = rec.body
    check, result = body.get("check") or {}, body.get("result") or {}
    system, window = body.get("system") or {}, body.get("window") or {}
    outcome = str(result.get("outcome") or rec.outcome)
    props = [
        prop("monitoring-record-id", rec.record_id),
        prop("check-id", rec.check_id),
        prop("check-kind", check.get("kind")),
        prop("verdict", outcome),
    ]
    title = f"{rec.model}/{rec.check_id}: {outcome}"
    if result.get("value") is not None:
        props.append(prop("value", f"{check.get('metric')} = {result['value']}"))
        title += f", {check.get('metric')} = {result['value']:.4g}"
    props += [_measurement(m) for m in result.get("measurements") or ()]
    props += kind_props(check.get("kind"), body)
    threshold = (body.get("criteria") or {}).get("threshold") or {}
    if threshold.get("breaches_when"):
        props.append(
            prop("threshold", f"{threshold['breaches_when']}, breach = {threshold.get('breach')}")
        )
    controls = body.get("controls") or {}
    props += [prop(name, c) for key, name in TAGS for c in controls.get(key) or ()]
    evidence = [
        {
            "href": "/v1/monitoring-records?"
            + urlencode({"model": rec.model, "check": rec.check_id}),
            "description": f"Monitoring record {rec.record_id} (ISO/IEC 42001 clause 9.1) as the "
            "agent's API serves it",
            "props": [
                prop("monitoring-record-id", rec.record_id),
                prop("record-sha256", sha256_hex(rec.body)),
            ],
        }
    ]
    evidence += [
        {
            "href": f"#{uuid_of('attachment', a.attachment_id)}",
            "description": f"{a.kind} attachment",
        }
        for a in atts
    ]
    obs: JsonDict = {
        "uuid": uuid_of("observation", rec.record_id),
        "title": one_line(title),
        "description": f"Run of the {check.get('kind')} check {rec.check_id} on model {rec.model} "
        f"{system.get('model_version')} over the window {window.get('start')} to "
        f"{window.get('end')} ({window.get('records_sampled')} of {window.get('records_seen')} "
        f"records sampled): {outcome}. Metric: {check.get('definition')}.",
        "props": props,
        "methods": ["TEST"],
        "types": ["control-objective", "finding"] if outcome == "breach" else ["control-objective"],
        "origins": tool(agent),
        "subjects": [
            {"subject-uuid": subject["uuid"], "type": "component", "title": subject["title"]}
        ],
        "relevant-evidence": evidence,
        "collected": body.get("created_at") or iso(rec.executed_at),
    }
    if result.get("error"):
        obs["remarks"] = f"The check failed: {result['error']}"
    return obs
