"""Durable ingest: each model's window, and the one way rows and labels enter it.

A batch is sampled into the window and acknowledged only once the slots it filled are committed
to storage. Ingest runs on the event loop; check runs read the window through `snapshot`.

When a write fails, the later writes computed from that window generation are refused too (they
were sampled on rows storage never got), and the window is rebuilt from storage once; every
refused batch can be sent again, and none leaves a gap in the stored sample.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from sqlalchemy import Connection

from aims_agent.agent.models import ModelRuntime, model_of
from aims_agent.agent.sliding import SlidingWindow
from aims_agent.agent.window import Window
from aims_agent.collectors.push import Decoded, DecodedLabels
from aims_agent.config import Config
from aims_agent.errors import BackpressureError, StaleWindowError, StorageError
from aims_agent.metrics import Metrics
from aims_agent.records import Contents, Snapshot, WindowData
from aims_agent.storage.samples import append_batch, read_log, write_snapshot
from aims_agent.storage.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")
Clock = Callable[[], float]
Write = Callable[[Connection], None]
AnyWindow = Window | SlidingWindow


def new_window(mr: ModelRuntime, rng: np.random.Generator) -> AnyWindow:
    """An empty window of the model's kind, its vocabularies starting from the reference's."""
    m, common = mr.cfg, {"reference_categories": mr.reference.vocabularies, "rng": rng}
    if m.window.kind == "sliding":
        return SlidingWindow(
            mr.schema,
            capacity=m.window.max_sample,
            span=m.window.span_seconds,
            step=m.window.step,
            **common,  # type: ignore[arg-type]
        )
    return Window(
        mr.schema,
        capacity=m.window.max_sample,
        span=m.window.span_seconds,
        **common,  # type: ignore[arg-type]
    )


class Ingest:
    """The windows of all models and their durable sample logs."""

    def __init__(
        self,
        cfg: Config,
        models: Mapping[str, ModelRuntime],
        store: Store,
        metrics: Metrics,
        *,
        clock: Clock,
        rng: np.random.Generator,
    ) -> None:
        self.cfg, self.models, self.store, self.metrics = cfg, models, store, metrics
        self.clock = clock
        self._rng = rng
        self.windows: dict[str, AnyWindow] = {n: self._fresh(n) for n in models}
        self._logged: dict[str, int] = {}  # rows in each model's sample log since its snapshot
        self._stored_start: dict[str, float] = {}  # the window (pane) start last sent to storage
        self._recovering: dict[tuple[str, int], asyncio.Future[None]] = {}
        # the generation of each model's in-memory window, and the last one a write failed in
        self._epoch = dict.fromkeys(models, 0)
        self._failed: dict[str, int] = {}
        for name, window in self.windows.items():
            self.metrics.received.labels(name)  # series exist at 0 before the first record
            self.metrics.sampled.labels(name)
            self._restore(name, window)
            self._publish(name, window)

    def _fresh(self, name: str) -> AnyWindow:
        return new_window(self.models[name], np.random.default_rng(self._rng.integers(2**63)))

    def window(self, name: str) -> AnyWindow:
        model_of(self.models, name)  # UnknownModelError for a name not configured
        return self.windows[name]

    def snapshot(self, name: str) -> WindowData:
        """A consistent copy of the model's current window, for a check run."""
        return self.window(name).snapshot(now=self.clock())

    # --- storage ---------------------------------------------------------------------------

    def _submit(self, name: str, epoch: int, write: Callable[[Connection], T]) -> Future[T]:
        """Queue a write computed from the model's window of generation `epoch`; refused once
        an earlier write of that generation has failed."""

        def guarded(conn: Connection) -> T:
            if self._failed.get(name) == epoch:
                raise StaleWindowError(f"window of {name!r} is rebuilt after a failed write")
            return write(conn)

        def note(fut: Future[T]) -> None:  # runs before the writer takes its next write
            if fut.exception() is not None:
                self._failed[name] = epoch

        fut = self.store.submit(guarded)
        fut.add_done_callback(note)
        return fut

    async def _recover(self, name: str, epoch: int) -> None:
        """After a failed write of generation `epoch`, rebuild the window from storage, which
        no write of that generation changes any more. Every refused write waits for it."""
        key = (name, epoch)
        rebuild = self._recovering.get(key)
        if rebuild is None:
            rebuild = self._recovering[key] = asyncio.ensure_future(self._rebuild(name, epoch))
            rebuild.add_done_callback(lambda _: self._recovering.pop(key, None))
        await asyncio.shield(rebuild)

    async def _rebuild(self, name: str, epoch: int) -> None:
        if self._epoch[name] != epoch:
            return  # already rebuilt
        fresh = self._fresh(name)
        self._logged[name] = 0
        try:
            await asyncio.to_thread(self._restore, name, fresh)
        except StorageError as exc:  # the generation stays refused; the next failure retries
            log.error(
                "window not rebuilt from storage: %s",
                exc,
                extra={"event": "storage_problem", "model": name},
            )
            return
        if self._epoch[name] != epoch:
            return
        self._epoch[name] = epoch + 1
        self.windows[name] = fresh
        self._publish(name, fresh)
        log.info(
            "window rebuilt from storage after a failed write",
            extra={"event": "storage_recovered", "model": name},
        )

    def _restore(self, name: str, window: AnyWindow) -> None:
        since = window.window_start(self.clock()) - window.horizon
        entries = self.store.read(lambda conn: read_log(conn, name, since))
        if not entries:
            return
        for entry in entries:
            if isinstance(entry, Snapshot):
                window.restore(entry)
            else:
                window.replay([entry])
        self._logged[name] = sum(len(e.slots) for e in entries if isinstance(e, Contents))
        self._stored_start[name] = window.start
        log.info(
            "restored window: %d seen, %d sampled",
            window.seen,
            window.size,
            extra={"event": "window_restored", "model": name},
        )

    def _publish(self, name: str, window: AnyWindow) -> None:
        self.metrics.window_seen.labels(name).set(window.seen)
        self.metrics.window_sampled.labels(name).set(window.size)
        self.metrics.window_start.labels(name).set(window.start)

    # --- ingest ----------------------------------------------------------------------------

    async def ingest(self, name: str, decoded: Decoded, *, also: Write | None = None) -> int:
        """Sample the valid rows into the window; returns the count sampled once they are
        durable. `also` is committed in the same transaction (a log tail's checkpoint)."""
        return (await self.ingest_batch(name, decoded, also=also)).sampled

    async def ingest_batch(
        self,
        name: str,
        decoded: Decoded,
        *,
        also: Write | None = None,
        then: Callable[[Ingested], Write] | None = None,
    ) -> Ingested:
        """`ingest`, telling what became of the batch; `then(outcome)` is a write committed
        with the rows (an idempotency key's answer). Records whose id the window already
        holds, or that an earlier record of the batch has, are dropped (first wins)."""
        window = self.window(name)
        decoded, duplicates = first_of_each_id(decoded, window.holds)
        if not decoded.rows:
            done = Ingested(sampled=0, duplicates=duplicates, window_start=window.start)
            writes = [w for w in (also, then(done) if then else None) if w is not None]
            if writes:
                await self.store.write(_all(writes))
            self.metrics.rejected.labels(name, "duplicate_id").inc(duplicates)
            return done
        if self.store.pending >= self.cfg.agent.max_pending_writes:
            raise BackpressureError(self.store.pending, retry_after=1.0)
        # a large batch is offered OFFER_CHUNK rows at a time, the event loop free in between
        # (each part its own write, the last one with `also` and `then`): a part that failed
        # fails the batch, and the parts stored before it are duplicates when it is sent again
        pending: list[tuple[int, Future[None]]] = []
        sampled_total = 0
        window_start = window.start
        n = len(decoded.rows)
        for lo in range(0, n, OFFER_CHUNK):
            if lo:
                await asyncio.sleep(0)
            hi = min(n, lo + OFFER_CHUNK)
            epoch = self._epoch[name]
            window = self.windows[name]
            sampled, write = self._offer(name, window, decoded, lo, hi)
            sampled_total += len(sampled.slots)
            window_start = sampled.window_start
            writes = [write]
            if hi == n:
                done = Ingested(
                    sampled=sampled_total, duplicates=duplicates, window_start=window_start
                )
                writes += [w for w in (also, then(done) if then else None) if w is not None]
            pending.append((epoch, self._submit(name, epoch, _all(writes))))
            self._compact(name, epoch, window, len(sampled.slots), rolled=sampled.rolled)
        for epoch, fut in pending:
            try:
                await asyncio.wrap_future(fut)
            except StorageError:
                await self._recover(name, epoch)
                raise
        self.metrics.received.labels(name).inc(n)
        self.metrics.sampled.labels(name).inc(sampled_total)
        self.metrics.rejected.labels(name, "duplicate_id").inc(duplicates)
        self._publish(name, self.windows[name])
        return done

    def _offer(
        self, name: str, window: AnyWindow, decoded: Decoded, lo: int, hi: int
    ) -> tuple[_Offered, Write]:
        """Rows lo:hi sampled into the window, and the write of what they filled. Offer and
        submit run without an await between them, so storage sees batches in window order."""
        sampled = window.offer(
            decoded.rows[lo:hi],
            decoded.ids[lo:hi],
            decoded.timestamps[lo:hi],
            now=self.clock(),
            aliases=decoded.aliases[lo:hi] if decoded.aliases else (),
        )
        # against what storage was last sent: a label join or a reject may have rolled it first
        rolled = sampled.window_start != self._stored_start.get(name)
        self._stored_start[name] = sampled.window_start
        at = [lo + p for p in sampled.positions]
        batch = Contents(
            window_start=sampled.window_start,
            seen=sampled.seen,
            slots=list(sampled.slots),
            rows=[decoded.rows[p] for p in at],
            ids=[decoded.ids[p] for p in at],
            timestamps=[decoded.timestamps[p] for p in at],
            aliases=[decoded.aliases[p] for p in at] if decoded.aliases else [],
        )
        write = append_batch(
            name, batch, drop_before=batch.window_start - window.horizon if rolled else None
        )
        return _Offered(sampled.window_start, sampled.slots, rolled), write

    def _compact(
        self, name: str, epoch: int, window: AnyWindow, added: int, *, rolled: bool
    ) -> None:
        logged = (0 if rolled else self._logged.get(name, 0)) + added
        if logged > 2 * window.pane_capacity:  # keep the log within a few snapshot sizes
            self._submit(name, epoch, write_snapshot(name, window.export))
            logged = 0
        self._logged[name] = logged

    def reject_invalid(self, name: str, n: int) -> None:
        """Count `n` records of the model that failed validation: in the metrics, and in the
        window for the data-quality check."""
        self.metrics.rejected.labels(name, "invalid_record").inc(n)
        self.window(name).reject(n, now=self.clock())

    async def join_labels(
        self, name: str, decoded: DecodedLabels, *, feedback: bool = False
    ) -> dict[str, int]:
        """Join late labels (or human-review feedback) to sampled records; returns once the
        joined rows are durable."""
        window, epoch = self.window(name), self._epoch[name]
        ttl = self.models[name].cfg.window.label_ttl_seconds
        result = window.label(decoded.ids, decoded.cells, now=self.clock(), ttl=ttl)
        joined = sum(len(b.slots) for b in result.batches)
        writes = [self._submit(name, epoch, append_batch(name, b)) for b in result.batches]
        try:
            await asyncio.gather(*map(asyncio.wrap_future, writes))  # each commits on its own
        except StorageError:
            await self._recover(name, epoch)
            raise
        self._logged[name] = self._logged.get(name, 0) + joined
        counts = {"joined": joined, "unknown": result.unknown, "expired": result.expired}
        counter = self.metrics.feedback if feedback else self.metrics.labels
        for outcome, n in counts.items():
            counter.labels(name, outcome).inc(n)
        return counts


def _all(writes: list[Write]) -> Write:
    if len(writes) == 1:
        return writes[0]

    def write(conn: Connection) -> None:
        for w in writes:
            w(conn)

    return write


OFFER_CHUNK = 500  # rows sampled per step of a large batch: a few milliseconds each


@dataclass(frozen=True, slots=True)
class _Offered:
    window_start: float
    slots: tuple[int, ...]
    rolled: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Ingested:
    """What became of a batch: rows sampled, duplicates dropped, the window they went into."""

    sampled: int
    duplicates: int
    window_start: float


def first_of_each_id(decoded: Decoded, holds: Callable[[str], bool]) -> tuple[Decoded, int]:
    """The batch less every record whose id the window `holds` already or an earlier record
    of the batch has (a batch sent again, a replayed event): the first record of an id is the
    one kept, so a label joins one record. Returns the rows kept and how many were dropped."""
    ids = decoded.ids
    if len(set(ids)) == len(ids) and not any(map(holds, ids)):
        return decoded, 0
    taken: set[str] = set()
    keep = []
    for i, rid in enumerate(ids):
        if rid not in taken and not holds(rid):
            keep.append(i)
        taken.add(rid)
    kept = Decoded(
        rows=[decoded.rows[i] for i in keep],
        ids=[ids[i] for i in keep],
        timestamps=[decoded.timestamps[i] for i in keep],
        errors=decoded.errors,
        aliases=[decoded.aliases[i] for i in keep] if decoded.aliases else [],
    )
    return kept, len(ids) - len(keep)
