"""APScheduler 3.x wiring: one interval job per (model, check), run in a worker thread pool,
and the monthly period report (`agent.reports.monthly`) as a cron job in the same pool.

Coalescing, misfire grace time and max instances are set explicitly from config: a check that
falls behind runs once, late runs within the grace time still run, and a slow check never
overlaps itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from typing import TYPE_CHECKING

from apscheduler.events import EVENT_JOB_ERROR, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from aims_agent.config import Config

if TYPE_CHECKING:
    from aims_agent.storage.store import Store

log = logging.getLogger(__name__)
RunCheck = Callable[[str, str], object]
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
    cfg: Config, run_check: RunCheck, *, store: Store | None = None
) -> BackgroundScheduler:
    """Each check first runs one interval after start-up, once its window has had time to fill.
    With `store` (the runtime's), the monthly report job is added unless switched off."""
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

    def on_error(event: JobExecutionEvent) -> None:
        log.error("job %s raised %r", event.job_id, event.exception, extra={"event": "job_error"})

    scheduler.add_listener(on_error, EVENT_JOB_ERROR)
    return scheduler
