"""Publish judged check runs into the agent's Prometheus series (`aims_agent.metrics`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aims_agent.metrics import Metrics
from aims_agent.records import CheckRun


def restore_run(
    metrics: Metrics,
    model: str,
    check_id: str,
    latest: Mapping[str, Any],
    succeeded: Mapping[str, Any] | None,
) -> None:
    """Publish the gauges of a check's latest stored runs (monitoring record bodies), as
    `observe_run` left them: at start-up, so a restart neither resolves a breach alert
    nor makes a check look stale until it runs again."""
    labels = (model, check_id)
    metrics.verdict.labels(*labels).state(latest["result"]["outcome"])
    if succeeded is None:
        return
    finished = datetime.fromisoformat(succeeded["created_at"]).timestamp()
    metrics.last_success.labels(*labels).set(finished)
    for m in succeeded["result"]["measurements"]:
        key = (*labels, m["metric"], m["feature"] or "")
        metrics.value.labels(*key).set(math.nan if m["value"] is None else m["value"])
        if m["threshold"] is not None:
            metrics.threshold.labels(*key).set(m["threshold"]["breach"])
        metrics.breached.labels(*key).set(1 if m["verdict"] == "breach" else 0)


def observe_run(metrics: Metrics, run: CheckRun) -> None:
    """Publish a judged check run."""
    labels = (run.model, run.check_id)
    outcome = "error" if run.error else run.verdict
    metrics.runs.labels(*labels, outcome, outcome).inc()
    metrics.verdict.labels(*labels).state("error" if run.error else run.verdict)
    metrics.duration.labels(*labels).observe(run.finished_at - run.started_at)
    if run.error:
        return
    metrics.last_success.labels(*labels).set(run.finished_at)
    for a in run.assessments:
        m = a.measurement
        key = (*labels, m.metric, m.feature or "")
        metrics.value.labels(*key).set(m.value)
        if m.threshold is not None:
            metrics.threshold.labels(*key).set(m.threshold.breach)
        metrics.breached.labels(*key).set(1 if a.verdict == "breach" else 0)


def observe_not_run(metrics: Metrics, model: str, check_id: str, outcome: str) -> None:
    """Count a scheduled run that did not happen (or failed outside the check)."""
    metrics.runs.labels(model, check_id, outcome, outcome).inc()
