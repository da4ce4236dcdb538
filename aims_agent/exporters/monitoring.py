"""Clause 9.1 monitoring records as data: what one check run's record says, built without the
store (a dry-run `check` prints them without loading the database layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aims_agent.exporters.canonical import iso, json_safe
from aims_agent.records import Assessment, CheckRun, Threshold

MONITORING_SCHEMA = "aims.monitoring-record/1"


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceContext:
    """What every record of one model's check says about where and how it was made."""

    agent_version: str
    config_hash: str
    environment: str
    ai_system_id: str
    model_version: str
    reference_id: str
    reference_fingerprint: str
    n_reference: int
    schedule_seconds: float
    definition: str
    severity: str
    consecutive_breaches: int = 1  # breaching runs in a row before a nonconformity opens
    window_kind: str = "tumbling"  # or sliding
    window_span_seconds: float | None = None
    window_step_seconds: float | None = None  # sliding windows only
    effectiveness_windows: int = 3  # passing runs in a row that evidence a corrective action


def _threshold(t: Threshold | None) -> dict[str, Any] | None:
    if t is None:
        return None
    comparator = {
        ("above", True): ">=",
        ("above", False): ">",
        ("below", True): "<=",
        ("below", False): "<",
    }[(t.direction, t.inclusive)]
    return {
        "breach": t.breach,
        "warn": t.warn,
        "breaches_when": f"value {comparator} breach",
        "min_samples": t.min_samples,
    }


def _num(x: float | None) -> float | None:
    return None if x is None or x != x else x  # NaN is not JSON


def _measurement(a: Assessment) -> dict[str, Any]:
    m = a.measurement
    return {
        "metric": m.metric,
        "feature": m.feature,
        "value": _num(m.value),
        "p_value": _num(m.p_value),
        "method": m.method,
        "params": dict(m.params),
        "n_reference": m.n_reference,
        "n_current": m.n_current,
        "threshold": _threshold(m.threshold),
        "verdict": a.verdict,
        "headline": m.headline,
    }


def monitoring_record(
    run: CheckRun, ctx: EvidenceContext, *, record_id: str, nc_id: str | None
) -> dict[str, Any]:
    """The clause 9.1 record of one check run, as stored and as an auditor reads it."""
    head = run.headline
    return {
        "schema_version": MONITORING_SCHEMA,
        "record_id": record_id,
        "created_at": iso(run.finished_at),
        "system": {
            "ai_system_id": ctx.ai_system_id,
            "model": run.model,
            "model_version": ctx.model_version,
            "environment": ctx.environment,
        },
        "check": {
            "id": run.check_id,
            "kind": run.kind,
            "run_id": run.run_id,
            "metric": head.measurement.metric if head else None,
            "definition": ctx.definition,
        },
        "method": {
            "tests": sorted({a.measurement.method for a in run.assessments}),
            "reference": {
                "id": ctx.reference_id,
                "sha256": ctx.reference_fingerprint,
                "rows": ctx.n_reference,
            },
            "sample_sizes": {"reference": ctx.n_reference, "current": run.window.sampled},
            "segment": None,
            "agent_version": ctx.agent_version,
            "config_sha256": ctx.config_hash,
        },
        "window": {
            "start": iso(run.window.start),
            "end": iso(run.window.end),
            "records_seen": run.window.seen,
            "records_sampled": run.window.sampled,
            "kind": ctx.window_kind,
            "span_seconds": ctx.window_span_seconds,
            "step_seconds": ctx.window_step_seconds,
        },
        "executed_at": iso(run.started_at),
        "duration_seconds": round(run.finished_at - run.started_at, 6),
        "schedule": {"every_seconds": ctx.schedule_seconds},
        "criteria": {
            "threshold": _threshold(head.measurement.threshold) if head else None,
            "threshold_version": ctx.config_hash,
            "controls": list(run.controls.iso42001),
        },
        "result": {
            "outcome": "error" if run.error else run.verdict,
            "error": run.error,
            "value": _num(head.measurement.value) if head else None,
            "measurements": [_measurement(a) for a in run.assessments],
        },
        "controls": {
            "iso42001": list(run.controls.iso42001),
            "eu_ai_act": list(run.controls.eu_ai_act),
            "nist_ai_rmf": list(run.controls.nist_ai_rmf),
        },
        "nonconformity_id": nc_id,
    }


def stored_record(
    run: CheckRun, ctx: EvidenceContext, *, record_id: str, nc_id: str | None, streak: int
) -> dict[str, Any]:
    """The record as the store keeps it: with the breach streak it was part of (0 when it did
    not breach), JSON-safe."""
    body = monitoring_record(run, ctx, record_id=record_id, nc_id=nc_id)
    body["result"]["breach_streak"] = {"runs": streak, "to_open": ctx.consecutive_breaches}
    safe: dict[str, Any] = json_safe(body)
    return safe
