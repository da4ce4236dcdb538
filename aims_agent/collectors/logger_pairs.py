"""Payload-logger halves paired and decoded: `Pending` holds the halves waiting for their other
half (bounded in count and bytes, expired on a timer), `Receiver` is one model's endpoint, and
`decode_pair` turns an inference into records with the sender's time (`collectors.loggers`
parses the events).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import msgspec

from aims_agent.collectors.exchange import decode_exchange, mapping_for
from aims_agent.collectors.loggers import Event, Pair
from aims_agent.collectors.push import Decoded, Deliver, Reject
from aims_agent.config import KServeLoggerConfig
from aims_agent.errors import PayloadError
from aims_agent.metrics import Metrics
from aims_agent.schema import ModelSchema

_top = msgspec.json.Decoder(dict[str, msgspec.Raw])
_tensor_list = msgspec.json.Decoder(list[dict[str, msgspec.Raw]])


def protocol_of(pair: Pair, configured: str) -> str:
    """The decoder for a pair: the configured one, else the one its sender named, else the one
    its request body shows (`instances`: v1; `inputs` of tensors: v2; `data`: Seldon)."""
    if configured != "auto":
        return configured
    named = pair.request.protocol or pair.response.protocol
    if named is not None:
        return named
    try:
        top = _top.decode(pair.request.body)
    except (msgspec.DecodeError, RecursionError):
        raise PayloadError("request: not a JSON object; set kserve_logger.protocol") from None
    if "instances" in top:
        return "kserve-v1"
    if "inputs" in top:
        try:
            tensors = _tensor_list.decode(top["inputs"])
        except (msgspec.DecodeError, RecursionError):
            return "kserve-v1"  # v1's columnar form: an object of columns, or a list of rows
        return "oip-v2" if tensors and "datatype" in tensors[0] else "kserve-v1"
    if any(k in top for k in ("data", "jsonData", "strData", "binData")):
        return "seldon"
    keys = ", ".join(sorted(top)[:10]) or "none"
    raise PayloadError(
        f"request: cannot tell the protocol from its keys ({keys}); set kserve_logger.protocol"
    )


def decode_pair(
    cfg: KServeLoggerConfig, schema: ModelSchema, pair: Pair, *, now: float
) -> tuple[Decoded, bool]:
    """Records of one inference, validated like pushed records, stamped with the sender's time
    (clamped to `now` within the configured bounds: the flag says it was); ProtocolError or
    PayloadError if it cannot be decoded."""
    when = pair.request.time if pair.request.time is not None else pair.response.time
    stamp, clamped = clamp(when, now, cfg)
    req, resp = pair.request, pair.response
    decoded = decode_exchange(
        protocol_of(pair, cfg.protocol),
        mapping_for(cfg, schema),
        schema,
        req.body,
        resp.body,
        path="",
        request_id=req.request_id or resp.request_id,
        echoed_id=req.event_id,
        now=stamp,
    )
    return decoded, clamped


def clamp(when: float | None, now: float, cfg: KServeLoggerConfig) -> tuple[float, bool]:
    """The event time within [now - max_event_age, now + max_clock_skew]; None is now."""
    if when is None:
        return now, False
    low, high = now - cfg.max_event_age_seconds, now + cfg.max_clock_skew_seconds
    if when < low:
        return low, True
    if when > high:
        return now, True
    return when, False


@dataclass(slots=True)
class _Waiting:
    since: float
    size: int = 0
    request: Event | None = None
    response: Event | None = None


class Pending:
    """Halves waiting for their other half, oldest first; bounded in number and bytes, and
    expired `timeout` seconds after the first half came (`expire`, run on a timer)."""

    def __init__(self, *, timeout: float, max_halves: int, max_bytes: int) -> None:
        self.timeout, self.max_halves, self.max_bytes = timeout, max_halves, max_bytes
        self._waiting: OrderedDict[str, _Waiting] = OrderedDict()
        self.bytes = 0

    def add(self, event: Event, *, now: float) -> tuple[Pair | None, int]:
        """The completed pair if this event completes one, and how many waiting halves were
        dropped (timed out, or evicted to make room) on the way."""
        dropped = self.expire(now)
        slot = self._waiting.get(event.key)
        if slot is None:
            slot = self._waiting[event.key] = _Waiting(since=now)
        old = getattr(slot, event.half)
        if old is not None:  # a resent half replaces the one before
            slot.size -= len(old.body)
            self.bytes -= len(old.body)
        setattr(slot, event.half, event)
        slot.size += len(event.body)
        self.bytes += len(event.body)
        if slot.request is not None and slot.response is not None:
            del self._waiting[event.key]
            self.bytes -= slot.size
            return Pair(slot.request, slot.response), dropped
        while len(self._waiting) > self.max_halves or self.bytes > self.max_bytes:
            dropped += self._drop_oldest()
        return None, dropped

    def expire(self, now: float) -> int:
        """Drop the halves waiting longer than the timeout; how many went."""
        dropped = 0
        while self._waiting:
            oldest = next(iter(self._waiting.values()))
            if now - oldest.since <= self.timeout:
                break
            dropped += self._drop_oldest()
        return dropped

    def _drop_oldest(self) -> int:
        _, slot = self._waiting.popitem(last=False)
        self.bytes -= slot.size
        return (slot.request is not None) + (slot.response is not None)

    def __len__(self) -> int:
        """Halves waiting."""
        return sum(
            (s.request is not None) + (s.response is not None) for s in self._waiting.values()
        )


class Receiver:
    """One model's payload-logger endpoint: pairs the halves of each inference and delivers
    its records once paired."""

    def __init__(
        self, cfg: KServeLoggerConfig, schema: ModelSchema, metrics: Metrics, model: str
    ) -> None:
        self.cfg, self.schema, self.metrics, self.model = cfg, schema, metrics, model
        self.pending = Pending(
            timeout=cfg.pair_timeout_seconds,
            max_halves=cfg.max_pending,
            max_bytes=cfg.max_pending_bytes,
        )

    async def receive(
        self, event: Event, *, now: float, deliver: Deliver, reject: Reject
    ) -> dict[str, int | str]:
        """Pair the event with its other half; deliver the records once paired. A pair that
        cannot be decoded raises PayloadError (the sender is told), and the agent carries on."""
        pair, dropped = self.pending.add(event, now=now)
        counter = self.metrics.kserve_events
        if dropped:
            counter.labels(self.model, "dropped").inc(dropped)
        publish(self.metrics, self.model, self.pending)
        if pair is None:
            counter.labels(self.model, "waiting").inc()
            return {"status": "waiting", "records": 0}
        decoded, clamped = decode_pair(self.cfg, self.schema, pair, now=now)
        counter.labels(self.model, "paired").inc()
        if clamped:
            counter.labels(self.model, "time_clamped").inc()
        if decoded.errors:
            reject(len(decoded.errors))
        await deliver(decoded)
        return {"status": "paired", "records": len(decoded.rows), "rejected": len(decoded.errors)}


def publish(metrics: Metrics, model: str, pending: Pending) -> None:
    """The pending gauges of one model."""
    metrics.kserve_pending.labels(model).set(len(pending))
    metrics.kserve_pending_bytes.labels(model).set(pending.bytes)


async def expire_pending(
    pending: Mapping[str, Pending],
    metrics: Metrics,
    *,
    clock: Callable[[], float] = time.time,
    every: float = 1.0,
) -> None:
    """Until cancelled: expire each model's waiting halves on a timer (not only when the next
    event comes), count them dropped, and keep the pending gauges current."""
    while True:
        now = clock()
        for model, p in pending.items():
            if gone := p.expire(now):
                metrics.kserve_events.labels(model, "dropped").inc(gone)
            publish(metrics, model, p)
        await asyncio.sleep(every)
