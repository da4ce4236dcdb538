"""A tap's drain: its sampled exchanges (HTTP or gRPC, of every model the tap serves), decoded off
the call path into rows and handed to each model's ingest.

Exchanges are taken in batches (one commit per model and batch, not per request) and decoded in
small chunks with a yield between them, so tapped calls pass while a batch decodes. A batch that
cannot be stored is counted as dropped: the responses were served, the samples are lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from aims_agent.collectors import protocols
from aims_agent.collectors.exchange import decode_exchange
from aims_agent.collectors.push import Decoded, Deliver, Reject
from aims_agent.collectors.tap import Exchange, ExchangeQueue
from aims_agent.errors import BackpressureError, PayloadError, StorageError
from aims_agent.metrics import Metrics
from aims_agent.schema import ModelSchema

log = logging.getLogger(__name__)
BATCH = 1024  # exchanges decoded into one ingest batch, at most
LINGER = 0.2  # seconds the tap's samples wait to be batched
_CHUNK = 8  # exchanges decoded between two yields to the event loop


@dataclass(frozen=True, slots=True)
class Sink:
    """Where one model's exchanges go: how they decode, and who takes the rows."""

    mapping: protocols.Mapping
    schema: ModelSchema
    deliver: Deliver
    reject: Reject


class TapDrain:
    """Decodes a tap's samples and delivers each model's, counting what became of each."""

    def __init__(self, sinks: Mapping[str, Sink], metrics: Metrics) -> None:
        self.sinks, self.metrics = dict(sinks), metrics
        self._warned: dict[str, float] = {}  # when a model's decode failure was last logged

    async def run(self, queue: ExchangeQueue) -> None:
        """Until cancelled: wait for samples, gather a batch, ingest it."""
        while True:
            await queue.wait()
            if len(queue) < BATCH:  # gather a batch: one commit per batch, not per request
                await asyncio.sleep(LINGER)
            await self._take(queue)

    async def flush(self, queue: ExchangeQueue) -> None:
        """Ingest what the tap still holds (at shutdown, after the tap stopped)."""
        while len(queue):
            await self._take(queue)

    async def _take(self, queue: ExchangeQueue) -> None:
        by_model: dict[str, list[Exchange]] = {}
        for ex in queue.take(BATCH):
            by_model.setdefault(ex.model, []).append(ex)
        for model, batch in by_model.items():
            try:
                await self._ingest(model, batch)
            except Exception:  # noqa: BLE001 - the tap must outlive any one bad batch
                log.exception(
                    "tap: a batch of %d samples was lost",
                    len(batch),
                    extra={"event": "samples_dropped", "model": model},
                )
                self.metrics.proxy_samples.labels(model, "dropped").inc(len(batch))

    async def _ingest(self, model: str, batch: list[Exchange]) -> None:
        sink, samples = self.sinks[model], self.metrics.proxy_samples
        rows, ids, stamps, aliases = [], [], [], []
        invalid = undecodable = 0
        first: Exception | None = None
        for i, ex in enumerate(batch):
            try:
                request, response = ex.bodies()
                d = decode_exchange(
                    ex.protocol,
                    sink.mapping,
                    sink.schema,
                    request,
                    response,
                    path=ex.path,
                    request_id=ex.request_id,
                    echoed_id=ex.echoed_id,
                    header_lengths=ex.header_lengths,
                    now=ex.received_at,
                )
            except (PayloadError, ValueError) as exc:  # ValueError: content encoding
                undecodable += 1
                first = first or exc
            else:
                rows += d.rows
                ids += d.ids
                stamps += d.timestamps
                aliases += d.aliases or [()] * len(d.rows)
                invalid += len(d.errors)
            if i % _CHUNK == _CHUNK - 1:  # let tapped calls through between chunks
                await asyncio.sleep(0)
        if undecodable:
            samples.labels(model, "undecodable").inc(undecodable)
            now = time.monotonic()
            if now - self._warned.get(model, -60.0) >= 60:  # at most once a minute per model
                self._warned[model] = now
                log.warning(
                    "tap: %d undecodable exchange(s): %s",
                    undecodable,
                    first,
                    extra={"event": "samples_undecodable", "model": model},
                )
        if invalid:
            sink.reject(invalid)
        decoded = len(batch) - undecodable
        batch_aliases = aliases if any(aliases) else []
        try:
            await sink.deliver(
                Decoded(rows=rows, ids=ids, timestamps=stamps, errors=[], aliases=batch_aliases)
            )
        except (BackpressureError, StorageError) as exc:
            samples.labels(model, "dropped").inc(decoded)
            log.warning(
                "tap: %d sample(s) dropped: %s",
                decoded,
                exc,
                extra={"event": "samples_dropped", "model": model},
            )
            return
        samples.labels(model, "decoded").inc(decoded)
