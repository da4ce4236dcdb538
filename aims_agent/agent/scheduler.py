"""APScheduler 3.x wiring: one interval job per (model, check), run in a worker thread pool.

Coalescing, misfire grace time and max instances are set explicitly from config: a check that
falls behind runs once, late runs within the grace time still run, and a slow check never
overlaps itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC

from apscheduler.events import EVENT_JOB_ERROR, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from aims_agent.agent.config import Config

log = logging.getLogger(__name__)
RunCheck = Callable[[str, str], object]


def build_scheduler(cfg: Config, run_check: RunCheck) -> BackgroundScheduler:
    """Each check first runs one interval after start-up, once its window has had time to fill."""
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

    def on_error(event: JobExecutionEvent) -> None:
        log.error("job %s raised %r", event.job_id, event.exception)

    scheduler.add_listener(on_error, EVENT_JOB_ERROR)
    return scheduler
