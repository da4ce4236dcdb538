"""Check execution: run a check on a window, judge it, record the evidence, publish the gauges.

`run_check` blocks (it runs in a scheduler or request worker thread). A check that raises is
evidence too: its run is recorded with outcome `error`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from aims_agent.agent.judge import breach_rule
from aims_agent.agent.models import ModelRuntime, model_of, run_once
from aims_agent.config import DriftCheckConfig
from aims_agent.errors import ReportError
from aims_agent.exporters.canonical import iso
from aims_agent.exporters.evidence import record_run, save_attachment
from aims_agent.exporters.not_run import NotRun, NotRunOutcome, NotRunReason, record_not_run
from aims_agent.exporters.prometheus import observe_not_run, observe_run, restore_run
from aims_agent.exporters.trustyai import Target, TrustyAISeries
from aims_agent.metrics import Metrics
from aims_agent.records import Attachment, CheckRun, WindowData
from aims_agent.storage import queries
from aims_agent.storage.store import Store

log = logging.getLogger(__name__)
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOutcome:
    run: CheckRun
    monitoring_record_id: str
    nonconformity_id: str | None
    opened: bool = False  # this run opened the nonconformity (rather than recurring on it)


class Runner:
    """Runs checks and records their evidence; counts runs in flight so shutdown can wait."""

    def __init__(
        self,
        models: Mapping[str, ModelRuntime],
        store: Store,
        metrics: Metrics,
        *,
        snapshot: Callable[[str], WindowData],
        evidence_dir: Path,
        clock: Clock = time.time,
    ) -> None:
        self.models, self.store, self.metrics = models, store, metrics
        self.snapshot, self.evidence_dir, self.clock = snapshot, evidence_dir, clock
        self._idle = threading.Condition()
        self._in_flight = 0
        self._verdicts: dict[tuple[str, str], str] = {}
        # TrustyAI-compatible series of the models that opt in
        self.trustyai: dict[str, Target] = {
            name: Target(
                model=name,
                model_id=mr.cfg.trustyai.model_id or name,
                outcome=mr.cfg.schema_.prediction,
                batch_size=mr.cfg.window.max_sample,
            )
            for name, mr in models.items()
            if mr.cfg.trustyai is not None
        }
        self._series = TrustyAISeries(metrics.registry) if self.trustyai else None

    def run_check(self, name: str, check_id: str) -> RunOutcome:
        """Run one check on a snapshot of the model's window and record it. Blocking."""
        with self._idle:
            self._in_flight += 1
        try:
            return self.run_check_on(name, check_id, self.snapshot(name))
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def run_check_on(self, name: str, check_id: str, data: WindowData) -> RunOutcome:
        """Run one check on given data (a window snapshot, or a batch file) and record it."""
        mr = model_of(self.models, name)
        ctx = mr.contexts[check_id]
        run = run_once(mr, check_id, data, clock=self.clock)
        write = record_run(run, ctx, breach_rule(ctx.consecutive_breaches))
        mon_id, nc_id, opened = self.store.submit(write).result()
        observe_run(self.metrics, run)
        if self._series is not None and name in self.trustyai:
            self._series.observe(self.trustyai[name], run)
        outcome = RunOutcome(
            run=run, monitoring_record_id=mon_id, nonconformity_id=nc_id, opened=opened
        )
        self._log(outcome)
        if nc_id is not None:
            self.refresh_open_nonconformities()
        settings = mr.cfg.checks_by_id[check_id]
        if opened and isinstance(settings, DriftCheckConfig) and settings.report_on_breach:
            self.attach_report(name, data, mon_id)
        return outcome

    def note_not_run(
        self,
        name: str,
        check_id: str,
        *,
        outcome: NotRunOutcome,
        reason: NotRunReason,
        detail: str,
        scheduled_at: float,
        due_runs: int = 1,
        noted_at: float | None = None,
    ) -> Future[str]:
        """Record a scheduled run that did not happen (or failed outside the check): a
        monitoring record with the reason, counted; the write is not waited for (this is
        called from the scheduler's threads)."""
        mr = model_of(self.models, name)
        nr = NotRun(
            model=name,
            check_id=check_id,
            kind=mr.checks[check_id].kind,
            controls=mr.controls[check_id],
            outcome=outcome,
            reason=reason,
            detail=detail[:500],
            scheduled_at=scheduled_at,
            noted_at=self.clock() if noted_at is None else noted_at,
            due_runs=due_runs,
        )
        extra = {"event": "check_not_run", "model": name, "check": check_id, "reason": reason}
        log.warning("check %s/%s %s: %s", name, check_id, reason, nr.detail, extra=extra)
        observe_not_run(self.metrics, name, check_id, outcome)
        future = self.store.submit(record_not_run(nr, mr.contexts[check_id]))

        def done(f: object) -> None:
            exc = future.exception()
            if exc is not None:
                log.error("not-run record of %s/%s lost: %r", name, check_id, exc, extra=extra)

        future.add_done_callback(done)
        return future

    def note_downtime(self, now: float) -> int:
        """At start: a `missed` record for each check whose last record is older than 1.5 of
        its intervals (the agent was down); returns how many were noted."""
        pairs = [(name, c) for name, mr in self.models.items() for c in mr.checks]
        lasts = self.store.read(
            lambda conn: [queries.latest_scheduled(conn, *pair) for pair in pairs]
        )
        noted: list[Future[str]] = []
        for (name, check_id), last in zip(pairs, lasts, strict=True):
            every = self.models[name].contexts[check_id].schedule_seconds
            if last is None or now - last <= 1.5 * every:
                continue
            note = self.note_not_run(
                name,
                check_id,
                outcome="not_run",
                reason="missed",
                detail=f"the agent was not running: no run between {iso(last)} and {iso(now)}",
                scheduled_at=last + every,
                due_runs=max(1, int((now - last) / every + 1e-9)),
                noted_at=now,
            )
            noted.append(note)
        for note in noted:
            note.result()
        return len(noted)

    def _log(self, o: RunOutcome) -> None:
        """A line when a check's verdict changes and on every breach (saying when it recurred on
        an open nonconformity), and one when a breach opens a nonconformity."""
        run = o.run
        verdict = "error" if run.error else run.verdict
        key = (run.model, run.check_id)
        previous = self._verdicts.get(key)
        self._verdicts[key] = verdict
        ids = {"model": run.model, "check": run.check_id, "record_id": o.monitoring_record_id}
        head = run.headline
        value = head.measurement.value if head else None
        if verdict == "breach":
            recurred = o.nonconformity_id is not None and not o.opened
            log.warning(
                "check breached: %s = %s%s",
                head.measurement.metric if head else "-",
                value,
                f"; nonconformity {o.nonconformity_id} recurred" if recurred else "",
                extra={
                    "event": "check_breached",
                    **ids,
                    "nc_id": o.nonconformity_id,
                    "nc_event": "recurred" if recurred else None,
                },
            )
        elif verdict != previous:
            log.info(
                "check verdict %s (was %s)",
                verdict,
                previous or "unknown",
                extra={"event": "verdict_changed", **ids, "verdict": verdict},
            )
        if o.opened:
            log.warning(
                "nonconformity %s opened",
                o.nonconformity_id,
                extra={"event": "nonconformity_opened", **ids, "nc_id": o.nonconformity_id},
            )

    def attach_report(
        self, name: str, data: WindowData, monitoring_record_id: str
    ) -> Attachment | None:
        """Render Evidently's drift report for `data` (in a child process) and record it."""
        from aims_agent.exporters.evidently_report import render

        mr = model_of(self.models, name)
        try:
            att = render(
                data, mr.schema, mr.cfg.reference.path, self.evidence_dir, name=monitoring_record_id
            )
        except ReportError as exc:
            log.warning(
                "no Evidently report: %s",
                exc,
                extra={"event": "report_failed", "model": name, "record_id": monitoring_record_id},
            )
            return None
        self.store.submit(save_attachment(att, monitoring_record_id, self.clock())).result()
        return att

    def refresh_open_nonconformities(self) -> None:
        """Publish how many nonconformities each model has open."""
        counts = self.store.read(queries.open_counts)
        for name in self.models:
            self.metrics.nc_open.labels(name).set(counts.get(name, 0))

    def restore_gauges(self) -> None:
        """The check gauges as the latest stored runs left them (see `restore_run`), so a
        restart neither resolves a breach alert nor makes a check look stale."""
        pairs = [(name, c) for name, mr in self.models.items() for c in mr.checks]
        found = self.store.read(
            lambda conn: [queries.latest_records(conn, *pair) for pair in pairs]
        )
        for (name, check_id), (latest, succeeded) in zip(pairs, found, strict=True):
            if latest is None:
                continue
            self._verdicts[(name, check_id)] = latest["result"]["outcome"]
            try:
                restore_run(self.metrics, name, check_id, latest, succeeded)
                if self._series is not None and name in self.trustyai and succeeded is not None:
                    self._series.restore(self.trustyai[name], check_id, succeeded)
            except (KeyError, TypeError, ValueError) as exc:  # a record this version cannot read
                log.warning(
                    "gauges not restored: %r",
                    exc,
                    extra={"event": "gauges_not_restored", "model": name, "check": check_id},
                )

    def wait_idle(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for running checks to finish."""
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout)
