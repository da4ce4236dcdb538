"""What each kind of notification receiver gets: a registry of formats.

`webhook`: the event as JSON, signed with HMAC-SHA256 over `<timestamp>.<body>`; `slack`: an
incoming-webhook message; `alertmanager`: Alertmanager's API v2 alerts, active while the record
is open.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aims_agent.config import NotificationConfig
from aims_agent.exporters.canonical import iso

ALERT_DAYS = 30  # an open record's Alertmanager alert lasts this long after its latest event


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """A nonconformity event with the record it is about."""

    event_id: int
    nc_id: str
    at: float
    actor: str
    event: str
    details: Mapping[str, Any]
    model: str
    check_id: str
    status: str
    recurrences: int
    record: Mapping[str, Any]  # the nonconformity's body
    attempts: int = 0

    @property
    def key(self) -> str:
        return f"{self.nc_id}/{self.event_id}"

    @property
    def summary(self) -> str:
        severity = self.record.get("severity", "minor")
        return (
            f"Nonconformity {self.nc_id} {self.event.replace('_', ' ')}: model {self.model}, "
            f"check {self.check_id} ({severity})"
        )


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    headers: dict[str, str]
    body: bytes


def _dumps(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def webhook(target: NotificationConfig, ev: Event, secret: bytes, now: float) -> Request:
    body = _dumps(
        {
            "id": ev.key,
            "type": f"nonconformity.{ev.event}",
            "occurred_at": iso(ev.at),
            "actor": ev.actor,
            "nonconformity": {
                "nc_id": ev.nc_id,
                "model": ev.model,
                "check_id": ev.check_id,
                "status": ev.status,
                "severity": ev.record.get("severity"),
                "opened_at": ev.record.get("opened_at"),
                "recurrences": ev.recurrences,
                "controls": ev.record.get("requirement", {}).get("controls", []),
                "ai_system_id": ev.record.get("ai_system_id"),
            },
            "details": dict(ev.details),
        }
    )
    stamp = str(int(now))
    signature = hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return Request(
        target.url,
        {
            "Content-Type": "application/json",
            "Idempotency-Key": ev.key,
            "X-Aims-Event": f"nonconformity.{ev.event}",
            "X-Aims-Timestamp": stamp,
            "X-Aims-Signature": f"sha256={signature}",
        },
        body,
    )


def slack(target: NotificationConfig, ev: Event, _: bytes, now: float) -> Request:
    controls = ", ".join(ev.record.get("requirement", {}).get("controls", [])) or "none"
    detail = (
        f"*{ev.summary}*\nStatus: {ev.status}. Recurrences: {ev.recurrences}. "
        f"ISO/IEC 42001 controls: {controls}."
    )
    body = _dumps(
        {
            "text": ev.summary,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": detail}},
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": f"aims-agent event {ev.key}"}],
                },
            ],
        }
    )
    return Request(
        target.url, {"Content-Type": "application/json", "Idempotency-Key": ev.key}, body
    )


def alertmanager(target: NotificationConfig, ev: Event, _: bytes, now: float) -> Request:
    """One alert per nonconformity (its labels identify it, so Alertmanager dedupes resends);
    an event that ends the record ends the alert. An open record's alert lasts ALERT_DAYS
    past each event (Alertmanager would otherwise resolve it after its resolve_timeout); the
    severity is an annotation, so escalating it keeps the alert's identity."""
    alert: dict[str, Any] = {
        "labels": {
            "alertname": "AimsNonconformity",
            "model": ev.model,
            "check": ev.check_id,
            "nonconformity_id": ev.nc_id,
        },
        "annotations": {
            "severity": str(ev.record.get("severity", "minor")),
            "summary": ev.summary,
            "event": ev.event,
            "idempotency_key": ev.key,
        },
        "startsAt": ev.record.get("opened_at") or iso(ev.at),
    }
    ends = ev.at if ev.event in ("closed", "rejected") else ev.at + ALERT_DAYS * 86400
    alert["endsAt"] = iso(ends)
    return Request(
        target.url.rstrip("/") + "/api/v2/alerts",
        {"Content-Type": "application/json", "Idempotency-Key": ev.key},
        _dumps([alert]),
    )


FORMATS: dict[str, Callable[[NotificationConfig, Event, bytes, float], Request]] = {
    "webhook": webhook,
    "slack": slack,
    "alertmanager": alertmanager,
}
