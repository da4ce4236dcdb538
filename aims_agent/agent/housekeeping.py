"""The agent's periodic chores: corrective actions past their due date, and sample retention."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from aims_agent.errors import StorageError
from aims_agent.exporters.lifecycle import overdue
from aims_agent.metrics import Metrics
from aims_agent.storage.samples import purge_samples
from aims_agent.storage.store import Store

log = logging.getLogger(__name__)


async def housekeeping(
    store: Store,
    metrics: Metrics,
    models: Iterable[str],
    *,
    samples_days: float,
    clock: Callable[[], float],
    every: float = 60.0,
) -> None:
    """Until cancelled: note corrective actions past their due date (a `past_due` event, once
    per due date) and publish how many each model has; delete sampled records older than the
    retention limit."""
    keep = samples_days * 86400
    names = list(models)
    while True:
        now = clock()
        try:
            late = await store.write(overdue(now))
            purged = await store.write(purge_samples(now - keep))
        except StorageError as exc:
            log.warning("housekeeping failed: %s", exc, extra={"event": "storage_problem"})
        else:
            for name in names:
                metrics.nc_overdue.labels(name).set(sum(m == name for _, m in late))
            for nc_id, model in late:
                log.info(
                    "corrective action past due",
                    extra={"event": "nonconformity_past_due", "model": model, "nc_id": nc_id},
                )
            if purged:
                log.info(
                    "retention: %d sample log entries older than %g days deleted",
                    purged,
                    samples_days,
                    extra={"event": "retention"},
                )
        await asyncio.sleep(every)
