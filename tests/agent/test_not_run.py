"""Every scheduled run leaves a record: skipped (still running), missed (agent down) and failed
runs are monitoring records in the ledger, counted, and the period report shows the gaps."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import select

from aims_agent.agent.runtime import Runtime
from aims_agent.agent.scheduler import build_scheduler
from aims_agent.collectors.push import decode_records
from aims_agent.config import parse_config
from aims_agent.exporters.ledger_verify import verify
from aims_agent.exporters.not_run import coverage_gaps
from aims_agent.exporters.report import build
from aims_agent.storage import queries
from aims_agent.storage.schema import monitoring_records
from tests.conftest import as_records, base_config, make_rows


def _runtime(tmp_path, reference_csv, every: float = 0.2, **agent) -> Runtime:
    data = base_config(reference_csv, tmp_path / "ev", threshold=0.3, report_on_breach=False)
    data["models"][0]["checks"][0]["schedule_seconds"] = every
    data["agent"]["scheduler"] = {"max_instances": 1, "workers": 2, **agent}
    data["agent"]["reports"] = {"monthly": False}
    runtime = Runtime(parse_config(data, base_dir=tmp_path))
    schema = runtime.model("m1").schema
    rows = as_records(make_rows(np.random.default_rng(3), 300, shift=0.0), start=0)
    body = json.dumps(rows).encode()
    asyncio.run(
        runtime.ingest.ingest("m1", decode_records(body, "application/json", schema, now=0))
    )
    return runtime


def _records(runtime: Runtime) -> list[dict]:
    q = select(monitoring_records.c.outcome, monitoring_records.c.body).order_by(
        monitoring_records.c.executed_at
    )
    runtime.store.submit(lambda c: None).result()  # writes queued before this one are done
    return [
        {"outcome": o, **(b["result"].get("not_run") or {})}
        for o, b in runtime.store.read(lambda c: c.execute(q).all())
    ]


def _runs_counted(runtime: Runtime, outcome: str) -> float:
    value = runtime.metrics.registry.get_sample_value(
        "aims_check_runs_total",
        {"model": "m1", "check": "drift", "verdict": outcome, "outcome": outcome},
    )
    return value or 0.0


def test_a_run_skipped_while_the_last_one_runs_is_recorded_and_counted(tmp_path, reference_csv):
    runtime = _runtime(tmp_path, reference_csv)
    gate = threading.Event()

    def slow(name: str, check_id: str) -> object:
        gate.wait(5)  # like an Evidently report rendering: the next run times come and go
        return runtime.runner.run_check(name, check_id)

    scheduler = build_scheduler(runtime.cfg, slow, not_run=runtime.runner.note_not_run)
    try:
        scheduler.start()
        time.sleep(1.3)
        gate.set()
        time.sleep(0.3)
    finally:
        scheduler.shutdown(wait=True)
    try:
        records = _records(runtime)
        skipped = [r for r in records if r.get("reason") == "skipped"]
        assert len(skipped) >= 3, records
        assert all(r["outcome"] == "not_run" for r in skipped)
        assert "maximum number of running instances" in skipped[0]["detail"]
        assert any(r["outcome"] == "pass" for r in records)
        not_run = [r for r in records if r["outcome"] == "not_run"]
        assert _runs_counted(runtime, "not_run") == len(not_run)
        assert runtime.store.read(lambda c: verify(c)).ok  # each one is in the ledger
        # a skipped run neither changes the verdict gauge nor the last verdict
        latest = runtime.store.read(lambda c: queries.latest_records(c, "m1", "drift"))
        assert latest[0]["result"]["outcome"] == "pass"
    finally:
        runtime.close(5)


def test_run_times_folded_into_one_are_a_coalesced_record(tmp_path, reference_csv):
    runtime = _runtime(tmp_path, reference_csv, every=0.5)
    scheduler = build_scheduler(
        runtime.cfg, runtime.runner.run_check, not_run=runtime.runner.note_not_run
    )
    try:
        scheduler.start()
        time.sleep(1.2)  # two runs as scheduled
        scheduler.pause()  # the scheduler falls behind (a suspended process, a busy host)
        time.sleep(3.1)
        scheduler.resume()  # the run times due meanwhile are coalesced into one
        time.sleep(0.8)
    finally:
        scheduler.shutdown(wait=True)
    try:
        records = _records(runtime)
        folded = [r for r in records if r.get("reason") == "coalesced"]
        assert folded and all(r["outcome"] == "not_run" for r in folded), records
        # the pause folded about six run times into one (a loaded host may fold a few more)
        assert any(4 <= r["due_runs"] <= 9 for r in folded), folded
        assert "folded into one" in folded[0]["detail"]
        assert runtime.store.read(lambda c: verify(c)).ok
    finally:
        runtime.close(5)


def test_a_failing_job_is_an_error_record(tmp_path, reference_csv):
    runtime = _runtime(tmp_path, reference_csv)

    def failing(name: str, check_id: str) -> object:
        raise OSError("window snapshot could not be read")

    scheduler = build_scheduler(runtime.cfg, failing, not_run=runtime.runner.note_not_run)
    try:
        scheduler.start()
        time.sleep(0.5)
    finally:
        scheduler.shutdown(wait=True)
    try:
        failed = [r for r in _records(runtime) if r.get("reason") == "failed"]
        assert failed and all(r["outcome"] == "error" for r in failed)
        assert "OSError: window snapshot could not be read" in failed[0]["detail"]
        assert _runs_counted(runtime, "error") >= len(failed)
    finally:
        runtime.close(5)


def test_downtime_is_a_missed_record_and_a_gap_in_the_period_report(tmp_path, reference_csv):
    runtime = _runtime(tmp_path, reference_csv)
    try:
        assert runtime.runner.note_downtime(time.time()) == 0  # nothing ran yet: nothing owed
        first = runtime.runner.run_check("m1", "drift").run.started_at
        back = first + 60  # the agent was down a minute: 300 runs of 0.2 s were due
        assert runtime.runner.note_downtime(back) == 1
        assert runtime.runner.note_downtime(back) == 0  # noted once
        (missed,) = [r for r in _records(runtime) if r.get("reason") == "missed"]
        assert missed["outcome"] == "not_run" and missed["due_runs"] == 300
        assert "the agent was not running" in missed["detail"]
        day = datetime.fromtimestamp(first, UTC).date()
        period = f"{day}..{day + timedelta(days=1)}"
        data = runtime.store.read(lambda c: build(c, runtime.cfg, period, now=back + 0.1))
        (check,) = data["models"][0]["checks"]
        (gap,) = check["coverage"]["gaps"]
        assert gap["reasons"] == ["missed"] and 59.9 < gap["seconds"] < 60.2
        assert check["counts"]["not_run"] == 1 and check["last_outcome"] == "pass"
        assert runtime.store.read(lambda c: verify(c)).ok
    finally:
        runtime.close(5)


def test_coverage_gaps_are_the_stretches_without_a_valid_run():
    runs = [
        (10.0, "pass", None),
        (20.0, "not_run", "skipped"),
        (30.0, "insufficient_data", None),
        (40.0, "breach", None),
        (50.0, "warn", None),
    ]
    gaps = coverage_gaps(runs, check_id="c", every_seconds=10, start=0, end=100)
    assert [(g.start, g.end, g.reasons) for g in gaps] == [
        (10.0, 40.0, ("skipped", "insufficient_data")),
        (50.0, 100.0, ()),
    ]
    # no gap is owed before the check's first record, nor within 1.5 intervals
    assert coverage_gaps(runs, check_id="c", every_seconds=40, start=0, end=60, since=10) == []
