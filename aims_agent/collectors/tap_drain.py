"""The proxy tap's drain: its sampled exchanges, decoded off the response path into rows.

Exchanges are taken in batches (one commit per batch, not per request) and decoded in small
chunks with a yield between them, so proxied requests pass while a batch decodes. A batch that
cannot be stored is counted as dropped: the responses were served, the samples are lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from aims_agent.collectors import protocols
from aims_agent.collectors.exchange import decode_exchange
from aims_agent.collectors.push import Decoded, Deliver, Reject
from aims_agent.errors import BackpressureError, PayloadError, StorageError
from aims_agent.metrics import Metrics
from aims_agent.schema import ModelSchema

if TYPE_CHECKING:  # the proxy (aiohttp) loads only when a model has one
    from aims_agent.collectors.proxy import Exchange, Tap

log = logging.getLogger(__name__)
BATCH = 1024  # exchanges decoded into one ingest batch, at most
LINGER = 0.2  # seconds the tap's samples wait to be batched
_CHUNK = 8  # exchanges decoded between two yields to the event loop


class TapDrain:
    """Decodes one model's tap samples and delivers them, counting what became of each."""

    def __init__(
        self,
        model: str,
        mapping: protocols.Mapping,
        schema: ModelSchema,
        metrics: Metrics,
        *,
        deliver: Deliver,
        reject: Reject,
    ) -> None:
        self.model, self.mapping, self.schema, self.metrics = model, mapping, schema, metrics
        self.deliver, self.reject = deliver, reject
        self._warned = -60.0  # when a decode failure was last logged

    async def run(self, tap: Tap) -> None:
        """Until cancelled: wait for samples, gather a batch, ingest it."""
        while True:
            await tap.wait()
            if len(tap) < BATCH:  # gather a batch: one commit per batch, not per request
                await asyncio.sleep(LINGER)
            await self._take(tap)

    async def flush(self, tap: Tap) -> None:
        """Ingest what the tap still holds (at shutdown, after the proxy stopped)."""
        while len(tap):
            await self._take(tap)

    async def _take(self, tap: Tap) -> None:
        batch = tap.take(BATCH)
        try:
            await self._ingest(batch)
        except Exception:  # noqa: BLE001 - the tap must outlive any one bad batch
            log.exception(
                "proxy tap: a batch of %d samples was lost",
                len(batch),
                extra={"event": "samples_dropped", "model": self.model},
            )
            self.metrics.proxy_samples.labels(self.model, "dropped").inc(len(batch))

    async def _ingest(self, batch: list[Exchange]) -> None:
        samples = self.metrics.proxy_samples
        rows, ids, stamps = [], [], []
        invalid = undecodable = 0
        first: Exception | None = None
        for i, ex in enumerate(batch):
            try:
                d = decode_exchange(
                    ex.protocol,
                    self.mapping,
                    self.schema,
                    ex.request,
                    ex.decoded(),
                    path=ex.path,
                    request_id=ex.request_id,
                    now=ex.received_at,
                )
            except (PayloadError, ValueError) as exc:  # ValueError: content encoding
                undecodable += 1
                first = first or exc
            else:
                rows += d.rows
                ids += d.ids
                stamps += d.timestamps
                invalid += len(d.errors)
            if i % _CHUNK == _CHUNK - 1:  # let proxied requests through between chunks
                await asyncio.sleep(0)
        if undecodable:
            samples.labels(self.model, "undecodable").inc(undecodable)
            now = time.monotonic()
            if now - self._warned >= 60:  # at most once a minute per model
                self._warned = now
                log.warning(
                    "proxy tap: %d undecodable exchange(s): %s",
                    undecodable,
                    first,
                    extra={"event": "samples_undecodable", "model": self.model},
                )
        if invalid:
            self.reject(invalid)
        decoded = len(batch) - undecodable
        try:
            await self.deliver(Decoded(rows=rows, ids=ids, timestamps=stamps, errors=[]))
        except (BackpressureError, StorageError) as exc:
            samples.labels(self.model, "dropped").inc(decoded)
            log.warning(
                "proxy tap: %d sample(s) dropped: %s",
                decoded,
                exc,
                extra={"event": "samples_dropped", "model": self.model},
            )
            return
        samples.labels(self.model, "decoded").inc(decoded)
