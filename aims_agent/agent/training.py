"""Models that checks train on their reference (the loss model of direct loss estimation, the
label model of `estimate_from: inputs`), trained in one child process while the agent serves.

The child is spawned (no copy of the agent's threads or locks) and trains the checks' models
one after another; a check's runs report insufficient data until its model arrives, and record
the error if the training failed (a child that died: BrokenProcessPool). The child exits when
the queue is done, and is killed at shutdown, so that a long training never holds the agent
past its shutdown deadline.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from functools import partial
from typing import Any

log = logging.getLogger(__name__)


def _trained(model: str, check_id: str, future: Future[Any]) -> None:
    if future.cancelled():
        return
    if (exc := future.exception()) is not None:  # the check's runs record it as their error
        log.warning("training %s/%s failed: %s", model, check_id, exc)
    else:
        log.info("trained %s/%s in a child process", model, check_id)


class ChildTraining:
    """The child process training the checks' models: it exits once their queue is done;
    `stop()` drops what has not started and kills the child now."""

    def __init__(self, trainees: list[tuple[str, Any]]) -> None:
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        for model, check in trainees:
            check.train_in(pool).add_done_callback(partial(_trained, model, check.id))
        # the executor's own table of its (started) process; Python 3.14 has terminate_workers
        self._children = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False)  # the queued training still runs; then the child exits
        self._pool = pool

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for child in self._children:
            if child.is_alive():
                child.terminate()


def train_off_process(checks: Iterable[tuple[str, Any]]) -> ChildTraining | None:
    """Hand every (model, check) whose check `trains` to one child; None if none does."""
    trainees = [(model, check) for model, check in checks if getattr(check, "trains", False)]
    return ChildTraining(trainees) if trainees else None
