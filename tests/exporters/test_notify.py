"""Notification formats: pure functions of an event."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from pydantic import ValidationError

from aims_agent.config import NotificationConfig
from aims_agent.errors import ConfigError
from aims_agent.exporters.notify import resolve_secrets
from aims_agent.exporters.notify_formats import FORMATS, Event

EVENT = Event(
    event_id=7,
    nc_id="NC-abc",
    at=1_796_083_200.0,
    actor="aims-agent",
    event="opened",
    details={"monitoring_record_id": "MR-1"},
    model="credit",
    check_id="drift",
    status="open",
    recurrences=0,
    record={
        "severity": "major",
        "opened_at": "2026-12-01T00:00:00Z",
        "ai_system_id": "AIS-1",
        "requirement": {"controls": ["A.6.2.6"]},
    },
)


def target(kind: str, **kw: object) -> NotificationConfig:
    return NotificationConfig(name="t", kind=kind, url="http://127.0.0.1:9/hook", **kw)  # type: ignore[arg-type]


def test_webhook_is_signed_over_timestamp_and_body():
    req = FORMATS["webhook"](target("webhook", secret_env="S"), EVENT, b"key", 1000.0)
    assert req.headers["Idempotency-Key"] == "NC-abc/7"
    assert req.headers["X-Aims-Timestamp"] == "1000"
    expected = hmac.new(b"key", b"1000." + req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-Aims-Signature"] == f"sha256={expected}"
    body = json.loads(req.body)
    assert body["type"] == "nonconformity.opened" and body["id"] == "NC-abc/7"
    assert body["nonconformity"]["controls"] == ["A.6.2.6"]
    assert body["occurred_at"].endswith("Z")


def test_slack_message_names_the_record():
    body = json.loads(FORMATS["slack"](target("slack"), EVENT, b"", 0).body)
    assert "NC-abc" in body["text"] and "credit" in body["text"]
    assert body["blocks"][1]["elements"][0]["text"].endswith("NC-abc/7")


def test_alertmanager_alert_per_record_ends_when_closed():
    req = FORMATS["alertmanager"](target("alertmanager"), EVENT, b"", 0)
    assert req.url == "http://127.0.0.1:9/hook/api/v2/alerts"
    [alert] = json.loads(req.body)
    assert alert["labels"]["nonconformity_id"] == "NC-abc" and "severity" not in alert["labels"]
    assert alert["endsAt"] == "2026-12-31T00:00:00Z"  # 30 days after the event: still firing
    closed = Event(**{**{f: getattr(EVENT, f) for f in EVENT.__slots__}, "event": "closed"})
    [alert] = json.loads(FORMATS["alertmanager"](target("alertmanager"), closed, b"", 0).body)
    assert alert["endsAt"] == "2026-12-01T00:00:00Z"  # the event's time: resolved


def test_webhooks_need_a_secret_and_secrets_come_from_the_environment():
    with pytest.raises(ValidationError, match="secret_env"):
        target("webhook")
    t = target("webhook", secret_env="HOOK_KEY")
    assert resolve_secrets((t,), {"HOOK_KEY": "k"}) == {"t": b"k"}
    with pytest.raises(ConfigError, match="HOOK_KEY"):
        resolve_secrets((t,), {})
