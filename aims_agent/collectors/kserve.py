"""The KServe / Seldon payload-logger receiver: CloudEvents in binary mode, paired by `ce-id`.

KServe's InferenceService logger posts the request and the response of each inference as two
CloudEvents with the same `ce-id` and `ce-type` `org.kubeflow.serving.inference.request` /
`.response`. The halves wait here (bounded in number and time) until both arrived, then go
through the same protocol decoders as the proxy tap and the same schema validation as the push
API. The clock is passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from aims_agent.collectors import loggers
from aims_agent.collectors.push import Decoded, Deliver, Reject
from aims_agent.config import KServeLoggerConfig
from aims_agent.errors import PayloadError
from aims_agent.metrics import Metrics
from aims_agent.schema import ModelSchema

Half = Literal["request", "response"]
_TYPES: dict[str, Half] = {
    "org.kubeflow.serving.inference.request": "request",
    "org.kubeflow.serving.inference.response": "response",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    ce_id: str
    half: Half
    body: bytes


def parse_event(headers: Mapping[str, str], body: bytes) -> Event:
    """A binary-mode CloudEvent from HTTP headers; PayloadError names what is wrong."""
    ce_id, ce_type = headers.get("ce-id"), headers.get("ce-type")
    if not ce_id:
        raise PayloadError("missing ce-id header: not a CloudEvent in binary mode")
    half = _TYPES.get(ce_type or "")
    if half is None:
        raise PayloadError(f"ce-type {ce_type!r} is not one of {', '.join(_TYPES)}")
    return Event(ce_id=ce_id[:256], half=half, body=body)


@dataclass(slots=True)
class _Waiting:
    since: float
    request: bytes | None = None
    response: bytes | None = None


class PairBuffer:
    """Halves waiting for their other half; the oldest go first when full or too old."""

    def __init__(self, *, timeout: float, capacity: int) -> None:
        self.timeout, self.capacity = timeout, capacity
        self._waiting: OrderedDict[str, _Waiting] = OrderedDict()

    def add(self, event: Event, *, now: float) -> tuple[tuple[bytes, bytes] | None, int]:
        """The completed (request, response) if this event completes one, and how many waiting
        halves were dropped (timed out or evicted) to make room."""
        dropped = self._expire(now)
        slot = self._waiting.get(event.ce_id)
        if slot is None:
            if len(self._waiting) >= self.capacity:
                self._waiting.popitem(last=False)
                dropped += 1
            slot = self._waiting[event.ce_id] = _Waiting(since=now)
        setattr(slot, event.half, event.body)
        if slot.request is None or slot.response is None:
            return None, dropped
        del self._waiting[event.ce_id]
        return (slot.request, slot.response), dropped

    def _expire(self, now: float) -> int:
        dropped = 0
        while self._waiting:
            ce_id, oldest = next(iter(self._waiting.items()))
            if now - oldest.since <= self.timeout:
                break
            del self._waiting[ce_id]
            dropped += 1
        return dropped

    def __len__(self) -> int:
        return len(self._waiting)


def decode_pair(
    cfg: KServeLoggerConfig,
    schema: ModelSchema,
    ce_id: str,
    request: bytes,
    response: bytes,
    *,
    now: float,
) -> Decoded:
    """Records of one exchange, validated like pushed records; ProtocolError if undecodable.
    (The agent's wiring moves to `loggers` with the agent split; this keeps it working.)"""
    pair = loggers.Pair(
        loggers.Event(key=ce_id, half="request", body=request, event_id=ce_id),
        loggers.Event(key=ce_id, half="response", body=response),
    )
    return loggers.decode_pair(cfg, schema, pair, now=now)[0]


class KServeReceiver:
    """One model's logger endpoint: pairs each request event with its response event and
    delivers the exchange's records once paired."""

    def __init__(
        self, cfg: KServeLoggerConfig, schema: ModelSchema, metrics: Metrics, model: str
    ) -> None:
        self.cfg, self.schema, self.metrics, self.model = cfg, schema, metrics, model
        self.buffer = PairBuffer(timeout=cfg.pair_timeout_seconds, capacity=cfg.max_pending)

    async def receive(
        self, event: Event, *, now: float, deliver: Deliver, reject: Reject
    ) -> dict[str, int | str]:
        """Pair the event with its other half; deliver the exchange once paired. A pair that
        cannot be decoded raises PayloadError (the sender is told), and the agent carries on."""
        pair, dropped = self.buffer.add(event, now=now)
        counter = self.metrics.kserve_events
        if dropped:
            counter.labels(self.model, "dropped").inc(dropped)
        if pair is None:
            counter.labels(self.model, "waiting").inc()
            return {"status": "waiting", "records": 0}
        decoded = decode_pair(self.cfg, self.schema, event.ce_id, *pair, now=now)
        counter.labels(self.model, "paired").inc()
        if decoded.errors:
            reject(len(decoded.errors))
        await deliver(decoded)
        return {"status": "paired", "records": len(decoded.rows), "rejected": len(decoded.errors)}
