"""Scheduled runs that did not happen are evidence too (clause 9.1: monitoring as planned).

A run the scheduler skipped (the check was still running: APScheduler's maximum number of
running instances), missed (it was due while the agent was down, or ran later than the misfire
grace time allows), coalesced (folded into a later run when the scheduler fell behind) or that
failed outside the check itself leaves a monitoring record like any
run, ledgered, with outcome `not_run` or `error` and the reason. Such records never decide a
verdict: gauges, breach streaks and "last verdict" skip `not_run`; the period report lists the
time each check went without a valid run (`coverage_gaps`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, insert

from aims_agent.exporters import ledger
from aims_agent.exporters.canonical import iso, json_safe
from aims_agent.exporters.evidence import EvidenceContext, monitoring_record
from aims_agent.records import CheckRun, ControlTags, WindowInfo
from aims_agent.storage.schema import monitoring_records

NotRunOutcome = Literal["not_run", "error"]
NotRunReason = Literal["skipped", "missed", "coalesced", "failed"]
VALID = frozenset(("pass", "warn", "breach"))  # outcomes that judged the model


@dataclass(frozen=True, slots=True, kw_only=True)
class NotRun:
    """A scheduled run that did not produce a verdict, and why."""

    model: str
    check_id: str
    kind: str
    controls: ControlTags
    outcome: NotRunOutcome
    reason: NotRunReason
    detail: str
    scheduled_at: float  # the (first) run time it was due
    noted_at: float
    due_runs: int = 1  # scheduled run times it stands for (agent down: every one missed)


def record_not_run(nr: NotRun, ctx: EvidenceContext) -> Callable[[Connection], str]:
    """A store write: the monitoring record of a run that did not happen; returns its id."""
    record_id = f"MR-{uuid.uuid4().hex}"
    run = CheckRun(
        run_id=uuid.uuid4().hex,
        model=nr.model,
        check_id=nr.check_id,
        kind=nr.kind,
        started_at=nr.noted_at,
        finished_at=nr.noted_at,
        window=WindowInfo(start=nr.scheduled_at, end=nr.noted_at, seen=0, sampled=0),
        assessments=(),
        verdict="insufficient_data",
        controls=nr.controls,
        error=nr.detail,
    )
    body = monitoring_record(run, ctx, record_id=record_id, nc_id=None)
    body["result"].update(
        {"outcome": nr.outcome, "error": nr.detail if nr.outcome == "error" else None}
    )
    body["result"]["not_run"] = {
        "reason": nr.reason,
        "detail": nr.detail,
        "scheduled_at": iso(nr.scheduled_at),
        "due_runs": nr.due_runs,
    }
    body = json_safe(body)

    def write(conn: Connection) -> str:
        conn.execute(
            insert(monitoring_records).values(
                record_id=record_id,
                model=nr.model,
                check_id=nr.check_id,
                executed_at=nr.noted_at,
                outcome=nr.outcome,
                nonconformity_id=None,
                body=body,
            )
        )
        ledger.append_record(conn, body, at=nr.noted_at)
        return record_id

    return write


@dataclass(frozen=True, slots=True, kw_only=True)
class Gap:
    """A stretch of time in which a check had no valid run."""

    check_id: str
    start: float
    end: float
    reasons: tuple[str, ...]  # what the not-run records in it say

    @property
    def seconds(self) -> float:
        return self.end - self.start


def coverage_gaps(
    runs: Iterable[tuple[float, str, str | None]],
    *,
    check_id: str,
    every_seconds: float,
    start: float,
    end: float,
    since: float | None = None,
) -> list[Gap]:
    """Gaps in a check's coverage between `start` and `end`: the stretches longer than 1.5
    schedule intervals between valid runs (pass, warn, breach). `runs` are (executed_at,
    outcome, not-run reason) in the period; `since` is the check's first record ever (coverage
    is not owed before the check existed: no gap is counted before it)."""
    begin = start if since is None else max(start, since)
    if begin >= end:
        return []
    allowed = 1.5 * every_seconds
    gaps: list[Gap] = []
    last, reasons = begin, []
    for at, outcome, reason in sorted(runs, key=lambda r: r[0]):
        if at < begin or at > end:
            continue
        if outcome not in VALID:
            reasons.append(reason or outcome)
            continue
        if at - last > allowed:
            gaps.append(Gap(check_id=check_id, start=last, end=at, reasons=tuple(reasons)))
        last, reasons = at, []
    if end - last > allowed:
        gaps.append(Gap(check_id=check_id, start=last, end=end, reasons=tuple(reasons)))
    return gaps


def gap_dict(g: Gap) -> dict[str, Any]:
    return {
        "check_id": g.check_id,
        "start": iso(g.start),
        "end": iso(g.end),
        "seconds": round(g.seconds, 3),
        "reasons": sorted(set(g.reasons)),
    }
