"""Notifications of governance events: every nonconformity event, to each configured receiver.

The outbox is the evidence store itself: an event is a row of `nonconformity_events`, written
in the same transaction as the nonconformity it is about, so no event can be recorded and not
notified. Per receiver, `notification_deliveries` records what was tried and delivered. The
notifier sends each receiver its undelivered events in event order, one at a time: a receiver
that is down or answers 5xx gets the same event again after a backoff (doubling, capped), so a
later event never overtakes an earlier one and nothing is lost across restarts. A receiver that
refuses an event (4xx other than 408 / 425 / 429) has it logged as refused and gets the next.

Delivery is at least once: a crash between the receiver's answer and its record resends the
event, with the same `Idempotency-Key` (`<nc_id>/<event_id>`), which receivers dedupe on.

What a receiver gets is its format's (`notify_formats.FORMATS`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from sqlalchemy import Connection, and_, func, select

from aims_agent.config import NotificationConfig
from aims_agent.errors import ConfigError, StorageError
from aims_agent.exporters.notify_formats import FORMATS, Event
from aims_agent.metrics import Metrics
from aims_agent.storage.schema import (
    nonconformities,
    nonconformity_events,
    notification_deliveries,
    notification_targets,
)
from aims_agent.storage.store import UPSERT, Store

log = logging.getLogger(__name__)
_RETRYABLE_4XX = frozenset({408, 425, 429})
_BATCH = 100  # events sent to one receiver per pass before the others get a turn


def resolve_secrets(
    targets: tuple[NotificationConfig, ...], environ: Mapping[str, str]
) -> dict[str, bytes]:
    """HMAC keys by receiver, from the environment; a missing one is a config error."""
    out, problems = {}, []
    for i, t in enumerate(targets):
        if t.secret_env is None:
            out[t.name] = b""
        elif not environ.get(t.secret_env):
            problems.append(
                f"agent.notifications[{i}].secret_env: environment variable {t.secret_env} "
                "is not set"
            )
        else:
            out[t.name] = environ[t.secret_env].encode()
    if problems:
        raise ConfigError(problems)
    return out


# storage ----------------------------------------------------------------------------------


def register(names: list[str], now: float) -> Callable[[Connection], None]:
    """A store write: receivers seen for the first time start after the latest event (an
    agent starting beside another that registers the same receiver leaves its row alone)."""

    def write(conn: Connection) -> None:
        last = conn.execute(select(func.max(nonconformity_events.c.event_id))).scalar() or 0
        ins: Any = UPSERT[conn.dialect.name](notification_targets)
        for name in names:
            conn.execute(
                ins.values(
                    target=name, since_event_id=int(last), added_at=now
                ).on_conflict_do_nothing(index_elements=[notification_targets.c.target])
            )

    return write


def _undelivered(target: NotificationConfig) -> Any:
    d = notification_deliveries
    joined = nonconformity_events.join(
        notification_targets, notification_targets.c.target == target.name
    ).outerjoin(d, and_(d.c.event_id == nonconformity_events.c.event_id, d.c.target == target.name))
    where = and_(
        nonconformity_events.c.event_id > notification_targets.c.since_event_id,
        d.c.outcome.is_(None),
    )
    if target.events is not None:
        where = and_(where, nonconformity_events.c.event.in_(target.events))
    return joined, where


def next_event(target: NotificationConfig) -> Callable[[Connection], tuple[Event | None, float]]:
    """A store read: the receiver's oldest undelivered event and when it may be sent."""

    def read(conn: Connection) -> tuple[Event | None, float]:
        joined, where = _undelivered(target)
        e, d, nc = nonconformity_events, notification_deliveries, nonconformities
        row = conn.execute(
            select(
                e.c.event_id,
                e.c.nc_id,
                e.c.at,
                e.c.actor,
                e.c.event,
                e.c.body,
                d.c.attempts,
                d.c.next_attempt_at,
                nc.c.model,
                nc.c.check_id,
                nc.c.status,
                nc.c.recurrences,
                nc.c.body.label("record"),
            )
            .select_from(joined.join(nc, nc.c.nc_id == e.c.nc_id))
            .where(where)
            .order_by(e.c.event_id)
            .limit(1)
        ).first()
        if row is None:
            return None, 0.0
        event = Event(
            event_id=int(row.event_id),
            nc_id=str(row.nc_id),
            at=float(row.at),
            actor=str(row.actor),
            event=str(row.event),
            details=row.body or {},
            model=str(row.model),
            check_id=str(row.check_id),
            status=str(row.status),
            recurrences=int(row.recurrences),
            record=row.record or {},
            attempts=int(row.attempts or 0),
        )
        return event, float(row.next_attempt_at or 0.0)

    return read


def pending(target: NotificationConfig) -> Callable[[Connection], int]:
    def read(conn: Connection) -> int:
        joined, where = _undelivered(target)
        return int(
            conn.execute(select(func.count()).select_from(joined).where(where)).scalar() or 0
        )

    return read


def record_attempt(
    target: str,
    event_id: int,
    *,
    attempts: int,
    next_attempt_at: float,
    delivered_at: float | None,
    outcome: str | None,
    error: str | None,
) -> Callable[[Connection], None]:
    def write(conn: Connection) -> None:
        ins: Any = UPSERT[conn.dialect.name](notification_deliveries)
        values = {
            "attempts": attempts,
            "next_attempt_at": next_attempt_at,
            "delivered_at": delivered_at,
            "outcome": outcome,
            "last_error": error[:500] if error else None,
        }
        conn.execute(
            ins.values(event_id=event_id, target=target, **values).on_conflict_do_update(
                index_elements=[
                    notification_deliveries.c.event_id,
                    notification_deliveries.c.target,
                ],
                set_=values,
                where=notification_deliveries.c.outcome.is_(None),  # another agent's outcome stays
            )
        )

    return write


# the worker -------------------------------------------------------------------------------


class Notifier:
    """Sends each receiver its undelivered events until cancelled."""

    def __init__(
        self,
        targets: tuple[NotificationConfig, ...],
        secrets: Mapping[str, bytes],
        store: Store,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
        poll_seconds: float = 1.0,
    ) -> None:
        self.targets, self.secrets, self.store, self.metrics = targets, secrets, store, metrics
        self.clock, self.poll = clock, poll_seconds
        for t in targets:
            for outcome in ("delivered", "retried", "refused"):
                metrics.notifications.labels(t.name, outcome)

    async def register(self) -> None:
        """Record receivers seen for the first time; before the agent takes traffic, so no
        event falls between start-up and the receiver's starting point."""
        await self.store.write(register([t.name for t in self.targets], self.clock()))

    async def run(self) -> None:
        async with httpx.AsyncClient(trust_env=False, follow_redirects=False) as client:
            while True:
                for target in self.targets:
                    try:
                        await self.send_ready(client, target)
                    except StorageError as exc:
                        log.warning(
                            "notifications to %s paused: %s",
                            target.name,
                            exc,
                            extra={"event": "notification_paused"},
                        )
                await asyncio.sleep(self.poll)

    async def send_ready(self, client: httpx.AsyncClient, target: NotificationConfig) -> int:
        """Send the receiver's events that are due, in order; the number delivered."""
        sent, event = 0, None
        for _ in range(_BATCH):
            event, not_before = await asyncio.to_thread(self.store.read, next_event(target))
            if event is None or not_before > self.clock():
                break
            if not await self._send(client, target, event):
                break
            sent += 1
        backlog = 0  # nothing undelivered: no need to count it
        if event is not None:
            backlog = await asyncio.to_thread(self.store.read, pending(target))
        self.metrics.notifications_pending.labels(target.name).set(backlog)
        return sent

    async def _send(self, client: httpx.AsyncClient, target: NotificationConfig, ev: Event) -> bool:
        """Try one event; True if the receiver is done with it (delivered or refused)."""
        now = self.clock()
        request = FORMATS[target.kind](target, ev, self.secrets.get(target.name, b""), now)
        attempts = ev.attempts + 1
        try:
            response = await client.post(
                request.url,
                content=request.body,
                headers=request.headers,
                timeout=target.timeout_seconds,
            )
            status, error = response.status_code, f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            status, error = 0, f"{type(exc).__name__}: {exc}"
        done = self.clock()
        if 200 <= status < 300:
            outcome: str | None = "delivered"
        elif 400 <= status < 500 and status not in _RETRYABLE_4XX:
            outcome = "refused"
            log.error(
                "%s refused notification %s: %s",
                target.name,
                ev.key,
                error,
                extra={"event": "notification_refused", "nc_id": ev.nc_id},
            )
        else:
            outcome = None
        delay = min(target.max_backoff_seconds, target.backoff_seconds * 2 ** (attempts - 1))
        await self.store.write(
            record_attempt(
                target.name,
                ev.event_id,
                attempts=attempts,
                next_attempt_at=done + delay * random.uniform(0.8, 1.2),
                delivered_at=done if outcome == "delivered" else None,
                outcome=outcome,
                error=None if outcome == "delivered" else error,
            )
        )
        self.metrics.notifications.labels(target.name, outcome or "retried").inc()
        if outcome is None:
            log.warning(
                "notification %s to %s failed (%s); attempt %d, next in %.1f s",
                ev.key,
                target.name,
                error,
                attempts,
                delay,
            )
        return outcome is not None
