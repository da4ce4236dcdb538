"""The agent's live state: per-model windows and checks, the store, the metrics.

`Runtime` is what the HTTP app and the scheduler share. Ingest runs on the event loop;
`run_check` runs in a worker thread and touches the window only through `snapshot`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from sqlalchemy import Connection, func, select

from aims_agent import __version__
from aims_agent.agent.judge import assess, overall
from aims_agent.agent.reference import load_references
from aims_agent.agent.sliding import SlidingWindow
from aims_agent.agent.window import Window
from aims_agent.checks.base import Check, Reference, build_check
from aims_agent.collectors import protocols
from aims_agent.collectors.exchange import decode_exchange, mapping_for
from aims_agent.collectors.kserve import Event, PairBuffer, decode_pair
from aims_agent.collectors.logtail import LogTail, Position
from aims_agent.collectors.push import Decoded, DecodedLabels, decode_records, rename_fields
from aims_agent.config import Config, ModelConfig
from aims_agent.controls import controls_for
from aims_agent.errors import (
    BackpressureError,
    PayloadError,
    StaleWindowError,
    StorageError,
    UnknownModelError,
)
from aims_agent.exporters.evidence import (
    EvidenceContext,
    latest_records,
    record_run,
    save_attachment,
)
from aims_agent.exporters.evidently_report import ReportError
from aims_agent.exporters.evidently_report import render as render_report
from aims_agent.exporters.lifecycle import overdue
from aims_agent.exporters.prometheus import observe_run, restore_run
from aims_agent.metrics import Metrics
from aims_agent.privacy import privacy_for
from aims_agent.records import (
    Assessment,
    Attachment,
    CheckRun,
    Contents,
    ControlTags,
    Snapshot,
    Verdict,
    WindowData,
)
from aims_agent.schema import ModelSchema
from aims_agent.storage.samples import (
    append_batch,
    load_tail_position,
    purge_samples,
    read_log,
    save_tail_position,
    write_snapshot,
)
from aims_agent.storage.schema import nonconformities
from aims_agent.storage.store import Store

if TYPE_CHECKING:  # the proxy (aiohttp) loads only when a model has one
    from aims_agent.collectors.proxy import Exchange, Tap

log = logging.getLogger(__name__)
Clock = Callable[[], float]
T = TypeVar("T")
_TAP_BATCH = 1024  # exchanges decoded into one ingest batch, at most
_TAP_LINGER = 0.2  # seconds the tap's samples wait to be batched

DEFINITIONS = {
    "drift": "share of monitored features whose distribution in the window differs from the "
    "reference under each feature's statistical test",
    "data_quality": "share of the window's values per feature that are missing, outside the "
    "reference or configured range, or unseen categories; share of records refused at ingest",
    "performance": "model performance metrics on the window's records that carry ground-truth "
    "labels, against absolute bounds or the reference's own performance",
    "fairness": "gaps in selection rate and error rates between groups of each sensitive "
    "attribute; groups below the minimum size are reported as insufficient data",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOutcome:
    run: CheckRun
    monitoring_record_id: str
    nonconformity_id: str | None
    opened: bool = False  # this run opened the nonconformity (rather than recurring on it)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelRuntime:
    cfg: ModelConfig
    schema: ModelSchema
    reference: Reference
    window: Window | SlidingWindow
    checks: dict[str, Check]
    contexts: dict[str, EvidenceContext]
    controls: dict[str, ControlTags]


class Runtime:
    """Everything a running agent holds. Build with `Runtime(cfg)`, release with `close()`."""

    def __init__(
        self,
        cfg: Config,
        *,
        clock: Clock = time.time,
        seed: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.cfg = cfg
        env = os.environ if environ is None else environ
        self._privacy = {
            m.name: privacy_for(m.privacy, env, f"models[{i}].privacy")
            for i, m in enumerate(cfg.models)
        }
        self.clock = clock
        self.metrics = Metrics()
        self._rng = np.random.default_rng(seed)
        self._idle = threading.Condition()
        self._in_flight = 0
        self._logged: dict[str, int] = {}  # rows in each model's sample log since its snapshot
        self._stored_start: dict[str, float] = {}  # the window (pane) start last sent to storage
        self._recovering: dict[tuple[str, int], asyncio.Future[None]] = {}
        self._warned: dict[str, float] = {}  # when each model's tap last logged a decode failure
        # the generation of each model's in-memory window, and the last one a write failed in
        self._epoch = {m.name: 0 for m in cfg.models}
        self._failed: dict[str, int] = {}
        self._pairs = {
            m.name: PairBuffer(
                timeout=m.kserve_logger.pair_timeout_seconds, capacity=m.kserve_logger.max_pending
            )
            for m in cfg.models
            if m.kserve_logger is not None
        }
        self.store = Store(cfg.storage_url, durability=cfg.agent.durability)
        config_hash = cfg.fingerprint()
        references = load_references(cfg.models)
        self.models = {
            m.name: self._build(m, ref, config_hash)
            for m, ref in zip(cfg.models, references, strict=True)
        }
        for name, mr in self.models.items():
            self.metrics.received.labels(name)  # series exist at 0 before the first record
            for c in mr.cfg.checks:
                self.metrics.schedule.labels(name, c.id).set(c.schedule_seconds)
                self.metrics.check_info.labels(name, c.id, c.kind, c.severity).set(1)
            self.metrics.sampled.labels(name)
            self._restore(name, mr)
            self._publish_window(name, mr.window)
        self._restore_gauges()
        self.refresh_open_nonconformities()

    def _build(self, m: ModelConfig, reference: Reference, config_hash: str) -> ModelRuntime:
        privacy = self._privacy[m.name]
        schema = ModelSchema(m.schema_, privacy)
        if privacy is not None:  # the reference's values hashed like the records'
            reference = dataclasses.replace(
                reference, vocabularies=privacy.vocabularies(reference.vocabularies)
            )
        window = self._new_window(m, schema, reference)
        checks = {c.id: build_check(c, reference, schema) for c in m.checks}
        contexts = {
            c.id: EvidenceContext(
                agent_version=__version__,
                config_hash=config_hash,
                environment=self.cfg.agent.environment,
                ai_system_id=m.ai_system_id,
                model_version=m.version,
                reference_id=reference.reference_id,
                reference_fingerprint=reference.fingerprint,
                n_reference=reference.n_rows,
                schedule_seconds=c.schedule_seconds,
                definition=DEFINITIONS[c.kind],
                severity=c.severity,
                consecutive_breaches=c.consecutive_breaches,
                effectiveness_windows=c.effectiveness_windows,
                window_kind=m.window.kind,
                window_span_seconds=m.window.span_seconds,
                window_step_seconds=m.window.step if m.window.kind == "sliding" else None,
            )
            for c in m.checks
        }
        controls = {c.id: controls_for(c.kind, c.controls) for c in m.checks}
        return ModelRuntime(
            cfg=m,
            schema=schema,
            reference=reference,
            window=window,
            checks=checks,
            contexts=contexts,
            controls=controls,
        )

    def _new_window(
        self, m: ModelConfig, schema: ModelSchema, reference: Reference
    ) -> Window | SlidingWindow:
        rng = np.random.default_rng(self._rng.integers(2**63))
        if m.window.kind == "sliding":
            return SlidingWindow(
                schema,
                capacity=m.window.max_sample,
                span=m.window.span_seconds,
                step=m.window.step,
                reference_categories=reference.vocabularies,
                rng=rng,
            )
        return Window(
            schema,
            capacity=m.window.max_sample,
            span=m.window.span_seconds,
            reference_categories=reference.vocabularies,
            rng=rng,
        )

    def _submit(self, name: str, epoch: int, write: Callable[[Connection], T]) -> Future[T]:
        """Queue a write computed from the model's window of generation `epoch`.

        Once one such write has failed, the later ones of that generation are refused: they
        were computed on rows that storage does not hold, and would leave slots in the stored
        window that no record fills. `_recover` then starts the next generation from storage."""

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
        no write of that generation changes any more; the clients send the refused rows again.
        Every write refused in that generation waits for the one rebuild."""
        key = (name, epoch)
        rebuild = self._recovering.get(key)
        if rebuild is None:
            rebuild = self._recovering[key] = asyncio.ensure_future(self._rebuild(name, epoch))
            rebuild.add_done_callback(lambda _: self._recovering.pop(key, None))
        await asyncio.shield(rebuild)

    async def _rebuild(self, name: str, epoch: int) -> None:
        if self._epoch[name] != epoch:
            return  # already rebuilt
        mr = self.model(name)
        fresh = dataclasses.replace(mr, window=self._new_window(mr.cfg, mr.schema, mr.reference))
        self._logged[name] = 0
        try:
            await asyncio.to_thread(self._restore, name, fresh)
        except StorageError as exc:  # the generation stays refused; the next failure retries
            log.error("window of %s not rebuilt from storage: %s", name, exc)
            return
        if self._epoch[name] != epoch:
            return
        self._epoch[name] = epoch + 1
        self.models[name] = fresh
        self._publish_window(name, fresh.window)

    def _restore(self, name: str, mr: ModelRuntime) -> None:
        since = mr.window.window_start(self.clock()) - mr.window.horizon
        entries = self.store.read(lambda conn: read_log(conn, name, since))
        if not entries:
            return
        for entry in entries:
            if isinstance(entry, Snapshot):
                mr.window.restore(entry)
            else:
                mr.window.replay([entry])
        self._logged[name] = sum(len(e.slots) for e in entries if isinstance(e, Contents))
        self._stored_start[name] = mr.window.start
        log.info("restored window of %s: %d seen, %d sampled", name, mr.window.seen, mr.window.size)

    def _restore_gauges(self) -> None:
        """The check gauges as the latest stored runs left them (see `Metrics.restore_run`)."""
        pairs = [(name, c.id) for name, mr in self.models.items() for c in mr.cfg.checks]
        found = self.store.read(lambda conn: [latest_records(conn, *pair) for pair in pairs])
        for (name, check_id), (latest, succeeded) in zip(pairs, found, strict=True):
            if latest is None:
                continue
            try:
                restore_run(self.metrics, name, check_id, latest, succeeded)
            except (KeyError, TypeError, ValueError) as exc:  # a record this version cannot read
                log.warning("gauges of %s/%s not restored: %r", name, check_id, exc)

    def model(self, name: str) -> ModelRuntime:
        try:
            return self.models[name]
        except KeyError:
            raise UnknownModelError(f"no model named {name!r}") from None

    def _publish_window(self, name: str, window: Window | SlidingWindow) -> None:
        self.metrics.window_seen.labels(name).set(window.seen)
        self.metrics.window_sampled.labels(name).set(window.size)
        self.metrics.window_start.labels(name).set(window.start)

    async def ingest(
        self, name: str, decoded: Decoded, *, also: Callable[[Connection], None] | None = None
    ) -> int:
        """Sample the valid rows into the window; returns once they are durable.

        `also` is committed in the same transaction (a log tail's checkpoint)."""
        mr = self.model(name)
        if not decoded.rows:
            if also is not None:
                await self.store.write(also)
            return 0
        if self.store.pending >= self.cfg.agent.max_pending_writes:
            raise BackpressureError(self.store.pending, retry_after=1.0)
        # offer and submit without an await between them: storage sees batches in window order
        window, epoch = mr.window, self._epoch[name]
        sampled = window.offer(decoded.rows, decoded.ids, decoded.timestamps, now=self.clock())
        # against what storage was last sent: a label join or a reject may have rolled it first
        rolled = sampled.window_start != self._stored_start.get(name)
        self._stored_start[name] = sampled.window_start
        batch = Contents(
            window_start=sampled.window_start,
            seen=sampled.seen,
            slots=list(sampled.slots),
            rows=[decoded.rows[p] for p in sampled.positions],
            ids=[decoded.ids[p] for p in sampled.positions],
            timestamps=[decoded.timestamps[p] for p in sampled.positions],
        )
        write = append_batch(
            name, batch, drop_before=batch.window_start - window.horizon if rolled else None
        )
        pending = self._submit(name, epoch, write if also is None else _both(write, also))
        logged = (0 if rolled else self._logged.get(name, 0)) + len(batch.slots)
        if logged > 2 * window.pane_capacity:  # keep the log within a few snapshot sizes
            self._submit(name, epoch, write_snapshot(name, window.export))
            logged = 0
        self._logged[name] = logged
        try:
            await asyncio.wrap_future(pending)
        except StorageError:
            await self._recover(name, epoch)
            raise
        self.metrics.received.labels(name).inc(len(decoded.rows))
        self.metrics.sampled.labels(name).inc(len(sampled.slots))
        self._publish_window(name, mr.window)
        return len(sampled.slots)

    def reject_invalid(self, name: str, n: int) -> None:
        """Count `n` records of the model that failed validation: in the metrics, and in the
        window for the data-quality check."""
        self.metrics.rejected.labels(name, "invalid_record").inc(n)
        self.model(name).window.reject(n, now=self.clock())

    async def join_labels(self, name: str, decoded: DecodedLabels) -> dict[str, int]:
        """Join late labels to sampled records; returns once the joined rows are durable."""
        mr, epoch = self.model(name), self._epoch[name]
        result = mr.window.label(
            decoded.ids, decoded.cells, now=self.clock(), ttl=mr.cfg.window.label_ttl_seconds
        )
        joined = sum(len(b.slots) for b in result.batches)
        writes = [self._submit(name, epoch, append_batch(name, b)) for b in result.batches]
        try:
            await asyncio.gather(*map(asyncio.wrap_future, writes))  # each commits on its own
        except StorageError:
            await self._recover(name, epoch)
            raise
        self._logged[name] = self._logged.get(name, 0) + joined
        counts = {"joined": joined, "unknown": result.unknown, "expired": result.expired}
        for outcome, n in counts.items():
            self.metrics.labels.labels(name, outcome).inc(n)
        return counts

    async def kserve_event(self, name: str, event: Event) -> dict[str, int | str]:
        """Pair a KServe logger CloudEvent with its other half; ingest the exchange once paired.

        A pair that cannot be decoded is counted and reported, and the agent carries on."""
        mr = self.model(name)
        cfg, buffer = mr.cfg.kserve_logger, self._pairs.get(name)
        if cfg is None or buffer is None:
            raise UnknownModelError(f"model {name!r} has no kserve_logger configured")
        now = self.clock()
        pair, dropped = buffer.add(event, now=now)
        counter = self.metrics.kserve_events
        if dropped:
            counter.labels(name, "dropped").inc(dropped)
        if pair is None:
            counter.labels(name, "waiting").inc()
            return {"status": "waiting", "records": 0}
        decoded = decode_pair(cfg, mr.schema, event.ce_id, *pair, now=now)
        counter.labels(name, "paired").inc()
        if decoded.errors:
            self.reject_invalid(name, len(decoded.errors))
        await self.ingest(name, decoded)
        return {"status": "paired", "records": len(decoded.rows), "rejected": len(decoded.errors)}

    async def tail_log(self, name: str) -> None:
        """Follow the model's prediction log until cancelled; each read is committed together
        with the tail's new position, so a crash neither loses nor repeats a line."""
        mr = self.model(name)
        cfg = mr.cfg.log_tail
        assert cfg is not None
        stored = self.store.read(lambda conn: load_tail_position(conn, name))
        committed = Position(*stored) if stored else None
        tail = LogTail(cfg.path, committed)
        try:
            while True:
                lines = await asyncio.to_thread(tail.read)
                if lines and tail.position is not None and tail.position != committed:
                    pos = tail.position
                    try:
                        await self._ingest_lines(
                            name,
                            lines,
                            cfg.fields,
                            save_tail_position(name, pos.inode, pos.offset, pos.head),
                        )
                        committed = pos
                    except StorageError as exc:  # read those lines again next time
                        log.warning("log tail of %s: %s; will retry", name, exc)
                        tail.close()
                        tail = LogTail(cfg.path, committed)
                await asyncio.sleep(cfg.poll_seconds)
        finally:
            tail.close()

    async def _ingest_lines(
        self,
        name: str,
        lines: list[bytes],
        fields: dict[str, str],
        checkpoint: Callable[[Connection], None],
    ) -> None:
        mr = self.model(name)
        if fields:
            lines = [rename_fields(line, fields) for line in lines]
        decoded = decode_records(
            b"\n".join(lines), "application/x-ndjson", mr.schema, now=self.clock()
        )
        if decoded.errors:
            first = decoded.errors[0]  # field and reason only: ids may be personal data
            log.warning(
                "log tail of %s: %d malformed line(s), first: line %d field %s: %s",
                name,
                len(decoded.errors),
                first.index,
                first.field,
                first.reason,
            )
            self.reject_invalid(name, len(decoded.errors))
        await self.ingest(name, decoded, also=checkpoint)

    async def drain_tap(self, name: str, tap: Tap) -> None:
        """Decode and ingest the proxy tap's sampled exchanges until cancelled."""
        mr = self.model(name)
        assert mr.cfg.proxy is not None
        mapping = mapping_for(mr.cfg.proxy, mr.schema)
        while True:
            await tap.wait()
            if len(tap) < _TAP_BATCH:  # gather a batch: one commit per batch, not per request
                await asyncio.sleep(_TAP_LINGER)
            await self._ingest_taken(name, mapping, tap)

    async def flush_tap(self, name: str, tap: Tap) -> None:
        """Ingest what the tap still holds (at shutdown, after the proxy stopped)."""
        mr = self.model(name)
        assert mr.cfg.proxy is not None
        mapping = mapping_for(mr.cfg.proxy, mr.schema)
        while len(tap):
            await self._ingest_taken(name, mapping, tap)

    async def _ingest_taken(self, name: str, mapping: protocols.Mapping, tap: Tap) -> None:
        batch = tap.take(_TAP_BATCH)
        try:
            await self._ingest_exchanges(name, mapping, batch)
        except Exception:  # noqa: BLE001 - the tap must outlive any one bad batch
            log.exception("proxy tap of %s: a batch of %d samples was lost", name, len(batch))
            self.metrics.proxy_samples.labels(name, "dropped").inc(len(batch))

    async def _ingest_exchanges(
        self, name: str, mapping: protocols.Mapping, batch: list[Exchange]
    ) -> None:
        mr = self.model(name)
        samples = self.metrics.proxy_samples
        rows, ids, stamps = [], [], []
        invalid = undecodable = 0
        first: Exception | None = None
        for i, ex in enumerate(batch):
            try:
                d = decode_exchange(
                    ex.protocol,
                    mapping,
                    mr.schema,
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
            if i % 8 == 7:  # let proxied requests through between chunks of decoding
                await asyncio.sleep(0)
        if undecodable:
            samples.labels(name, "undecodable").inc(undecodable)
            now = time.monotonic()
            if now - self._warned.get(name, -60.0) >= 60:  # at most once a minute per model
                self._warned[name] = now
                log.warning(
                    "proxy tap of %s: %d undecodable exchange(s): %s", name, undecodable, first
                )
        if invalid:
            self.reject_invalid(name, invalid)
        decoded = len(batch) - undecodable
        try:
            await self.ingest(name, Decoded(rows=rows, ids=ids, timestamps=stamps, errors=[]))
        except (BackpressureError, StorageError) as exc:
            samples.labels(name, "dropped").inc(decoded)
            log.warning("proxy tap of %s: %d sample(s) dropped: %s", name, decoded, exc)
            return
        samples.labels(name, "decoded").inc(decoded)

    async def housekeeping(self, every: float = 60.0) -> None:
        """Until cancelled: note corrective actions past their due date (a `past_due` event,
        once per due date) and publish how many each model has; delete sampled records older
        than the retention limit."""
        keep = self.cfg.agent.retention.samples_days * 86400
        while True:
            now = self.clock()
            try:
                late = await self.store.write(overdue(now))
                purged = await self.store.write(purge_samples(now - keep))
            except StorageError as exc:
                log.warning("housekeeping failed: %s", exc)
            else:
                for name in self.models:
                    self.metrics.nc_overdue.labels(name).set(sum(m == name for _, m in late))
                if purged:
                    log.info(
                        "retention: %d sample log entries older than %g days deleted",
                        purged,
                        keep / 86400,
                    )
            await asyncio.sleep(every)

    def run_check(self, name: str, check_id: str) -> RunOutcome:
        """Run one check on a snapshot of the window and record its evidence. Blocking."""
        with self._idle:
            self._in_flight += 1
        try:
            return self._run_check(name, check_id)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _run_check(self, name: str, check_id: str) -> RunOutcome:
        data = self.model(name).window.snapshot(now=self.clock())
        return self.run_check_on(name, check_id, data)

    def run_check_on(self, name: str, check_id: str, data: WindowData) -> RunOutcome:
        """Run one check on given data (a window snapshot, or a batch file) and record it."""
        mr = self.model(name)
        check = mr.checks[check_id]
        started = self.clock()
        error: str | None = None
        assessments: tuple[Assessment, ...] = ()
        verdict: Verdict = "insufficient_data"
        try:
            assessments = assess(check.run(data))
            verdict = overall(assessments)
        except Exception as exc:  # noqa: BLE001 - a failed run is evidence too
            log.exception("check %s/%s failed", name, check_id)
            error = f"{type(exc).__name__}: {exc}"
        run = CheckRun(
            run_id=uuid.uuid4().hex,
            model=name,
            check_id=check_id,
            kind=check.kind,
            started_at=started,
            finished_at=self.clock(),
            window=data.info,
            assessments=assessments,
            verdict=verdict,
            controls=mr.controls[check_id],
            error=error,
        )
        mon_id, nc_id, opened = self.store.submit(record_run(run, mr.contexts[check_id])).result()
        observe_run(self.metrics, run)
        if nc_id is not None:
            self.refresh_open_nonconformities()
        outcome = RunOutcome(
            run=run, monitoring_record_id=mon_id, nonconformity_id=nc_id, opened=opened
        )
        if opened and getattr(mr.cfg.checks_by_id[check_id], "report_on_breach", False):
            self.attach_report(name, data, mon_id)
        return outcome

    def attach_report(
        self, name: str, data: WindowData, monitoring_record_id: str
    ) -> Attachment | None:
        """Render Evidently's drift report for `data` (in a child process) and record it."""
        mr = self.model(name)
        try:
            att = render_report(
                data,
                mr.schema,
                mr.cfg.reference.path,
                self.cfg.agent.evidence_dir,
                name=monitoring_record_id,
            )
        except ReportError as exc:
            log.warning("no Evidently report for %s: %s", monitoring_record_id, exc)
            return None
        self.store.submit(save_attachment(att, monitoring_record_id, self.clock())).result()
        return att

    def refresh_open_nonconformities(self) -> None:
        query = (
            select(nonconformities.c.model, func.count())
            .where(nonconformities.c.open_key.is_not(None))
            .group_by(nonconformities.c.model)
        )
        counts: dict[str, int] = dict(
            self.store.read(lambda conn: [(str(m), int(n)) for m, n in conn.execute(query).all()])
        )
        for name in self.models:
            self.metrics.nc_open.labels(name).set(counts.get(name, 0))

    def close(self, timeout: float = 10.0) -> None:
        """Wait for running checks (up to the deadline), then drain and close storage."""
        deadline = time.monotonic() + timeout
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout)
        self.store.close(max(0.5, deadline - time.monotonic()))


def _both(
    first: Callable[[Connection], None], second: Callable[[Connection], None]
) -> Callable[[Connection], None]:
    def write(conn: Connection) -> None:
        first(conn)
        second(conn)

    return write
