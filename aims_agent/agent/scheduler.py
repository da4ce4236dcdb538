"""APScheduler 3.x wiring: one interval job per (model, check), run in a worker thread pool,
and the monthly period report (`agent.reports.monthly`) as a cron job in the same pool.

Coalescing, misfire grace time and max instances are set explicitly from config: a check that
falls behind runs once, late runs within the grace time still run, and a slow check never
overlaps itself. A run that is skipped for that (EVENT_JOB_MAX_INSTANCES), missed
(EVENT_JOB_MISSED) or whose job raised (EVENT_JOB_ERROR) is handed to `not_run`, which
records it as evidence (`Runner.note_not_run`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC
from typing import TYPE_CHECKING, Literal, Protocol

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from aims_agent.config import Config
from aims_agent.exporters.canonical import iso

if TYPE_CHECKING:
    from aims_agent.storage.store import Store

log = logging.getLogger(__name__)
RunCheck = Callable[[str, str], object]


class NotRunSink(Protocol):
    """Where a run that did not happen goes (`Runner.note_not_run`)."""

    def __call__(
        self,
        name: str,
        check_id: str,
        *,
        outcome: Literal["not_run", "error"],
        reason: Literal["skipped", "missed", "coalesced", "failed"],
        detail: str,
        scheduled_at: float,
        due_runs: int = 1,
    ) -> object: ...


MONTHLY_REPORTS = "reports/monthly"
# a report job that waits behind busy check workers still runs (not missed after 30 s)
_REPORT_GRACE_SECONDS = 6 * 3600


def monthly_reports(store: Store, cfg: Config) -> None:
    """The monthly job: last month's report of all models, in each configured format."""
    from aims_agent.exporters.report import write_monthly

    for written in write_monthly(store, cfg):
        log.info(
            "period report %s written: %s (sha256 %s)",
            written.report_id,
            written.path,
            written.sha256,
        )


def build_scheduler(
    cfg: Config,
    run_check: RunCheck,
    *,
    store: Store | None = None,
    not_run: NotRunSink | None = None,
) -> BackgroundScheduler:
    """Each check first runs one interval after start-up, once its window has had time to fill.
    With `store` (the runtime's), the monthly report job is added unless switched off; with
    `not_run`, check runs that are skipped, missed or fail are handed to it."""
    s = cfg.agent.scheduler
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=s.workers)},
        job_defaults={
            "coalesce": s.coalesce,
            "misfire_grace_time": int(s.misfire_grace_seconds),
            "max_instances": s.max_instances,
        },
        timezone=UTC,
    )
    for model in cfg.models:
        for check in model.checks:
            scheduler.add_job(
                run_check,
                "interval",
                args=(model.name, check.id),
                seconds=check.schedule_seconds,
                id=f"{model.name}/{check.id}",
                name=f"check {model.name}/{check.id}",
            )

    if store is not None and cfg.agent.reports.monthly:
        scheduler.add_job(
            monthly_reports,
            CronTrigger(day=1, hour=0, minute=5, timezone=UTC),
            args=(store, cfg),
            id=MONTHLY_REPORTS,
            name="monthly period reports",
            misfire_grace_time=_REPORT_GRACE_SECONDS,
        )

    checks = {f"{m.name}/{c.id}": (m.name, c.id) for m in cfg.models for c in m.checks}

    def on_event(event: JobEvent) -> None:
        if isinstance(event, JobExecutionEvent) and event.code == EVENT_JOB_ERROR:
            log.error(
                "job %s raised %r", event.job_id, event.exception, extra={"event": "job_error"}
            )
        pair = checks.get(event.job_id)
        if not_run is None or pair is None:
            return
        try:
            coalesced(event, pair, not_run)
            if event.code != EVENT_JOB_SUBMITTED:
                _hand_over(event, pair, not_run, s.max_instances, s.misfire_grace_seconds)
        except Exception:  # noqa: BLE001 - a listener that raises stops nothing, but say so
            log.exception("run not recorded", extra={"event": "not_run_lost"})

    every = {f"{m.name}/{c.id}": c.schedule_seconds for m in cfg.models for c in m.checks}
    coalesced = _Coalesced(every)
    codes = EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED | EVENT_JOB_SUBMITTED
    scheduler.add_listener(on_event, codes)
    return scheduler


class _Coalesced:
    """Run times the scheduler folded into one (`coalesce`: a check that fell behind runs once)
    leave no event of their own: each check's latest run time seen (submitted, skipped or
    missed) is kept, and a run time more than 1.5 intervals after it stands for the ones
    between, recorded as one `coalesced` not-run."""

    def __init__(self, every: dict[str, float]) -> None:
        self.every = every
        self.last: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, event: JobEvent, pair: tuple[str, str], sink: NotRunSink) -> None:
        if isinstance(event, JobSubmissionEvent):
            times = [t.timestamp() for t in event.scheduled_run_times]
        elif isinstance(event, JobExecutionEvent) and event.code == EVENT_JOB_MISSED:
            times = [event.scheduled_run_time.timestamp()]
        else:
            return
        if not times:
            return
        every = self.every[event.job_id]
        with self._lock:
            last = self.last.get(event.job_id)
            self.last[event.job_id] = max(times[-1], last or times[-1])
        if last is None or times[0] - last <= 1.5 * every:
            return
        folded = max(1, round((times[0] - last) / every) - 1)
        sink(
            *pair,
            outcome="not_run",
            reason="coalesced",
            detail=f"{folded} run time{'s' if folded != 1 else ''} between {iso(last)} and "
            f"{iso(times[0])} folded into one (the scheduler fell behind or was paused)",
            scheduled_at=last + every,
            due_runs=folded,
        )


def _hand_over(
    event: JobEvent, pair: tuple[str, str], sink: NotRunSink, max_instances: int, grace: float
) -> None:
    name, check_id = pair
    if isinstance(event, JobSubmissionEvent):  # EVENT_JOB_MAX_INSTANCES
        times = [t.timestamp() for t in event.scheduled_run_times] or [0.0]
        sink(
            name,
            check_id,
            outcome="not_run",
            reason="skipped",
            detail="the previous run was still running (maximum number of running instances "
            f"reached: max_instances {max_instances})",
            scheduled_at=times[0],
            due_runs=len(times),
        )
    elif isinstance(event, JobExecutionEvent):
        at = event.scheduled_run_time.timestamp()
        if event.code == EVENT_JOB_MISSED:
            sink(
                name,
                check_id,
                outcome="not_run",
                reason="missed",
                detail=f"run time missed by more than the misfire grace time ({grace:g} s)",
                scheduled_at=at,
            )
        else:
            exc = event.exception
            sink(
                name,
                check_id,
                outcome="error",
                reason="failed",
                detail=f"the run failed before its record was written: {type(exc).__name__}: {exc}",
                scheduled_at=at,
            )
