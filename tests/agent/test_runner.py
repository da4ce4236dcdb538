"""Check execution: evidence, gauges that survive a restart, and the log lines people act on."""

from __future__ import annotations

import asyncio
import json
import logging

import numpy as np
import pytest

from aims_agent.agent.runtime import Runtime
from aims_agent.collectors.push import decode_records
from aims_agent.config import parse_config
from tests.conftest import as_records, base_config, make_rows


def _push(runtime: Runtime, shift: float, n: int = 400, start: int = 0) -> None:
    schema = runtime.model("m1").schema
    rows = as_records(make_rows(np.random.default_rng(3), n, shift=shift), start=start)
    body = json.dumps(rows).encode()
    asyncio.run(
        runtime.ingest.ingest("m1", decode_records(body, "application/json", schema, now=0))
    )


def _check_gauges(runtime: Runtime) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every aims_check_* gauge sample (the per-run counters and histogram aside)."""
    out = {}
    for family in runtime.metrics.registry.collect():
        if family.type in ("gauge", "stateset") and family.name.startswith("aims_check_"):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_a_restart_publishes_the_latest_runs_again(
    tmp_path, reference_csv, storage_url, monkeypatch
):
    """A breach alert must not resolve, nor a check look stale, because the agent restarted:
    the check gauges come back from the latest stored runs as the runs had left them."""
    data = base_config(reference_csv, tmp_path / "ev", threshold=0.3, report_on_breach=False)
    data["agent"]["storage_url"] = storage_url
    cfg = parse_config(data, base_dir=tmp_path)
    runtime = Runtime(cfg)
    try:
        schema = runtime.model("m1").schema
        rows = as_records(make_rows(np.random.default_rng(3), 400, shift=2.0), start=0)
        asyncio.run(
            runtime.ingest.ingest(
                "m1", decode_records(json.dumps(rows).encode(), "application/json", schema, now=0)
            )
        )
        assert runtime.runner.run_check("m1", "drift").run.verdict == "breach"
        breached = _check_gauges(runtime)
        assert any(k[0] == "aims_check_breached" and v == 1 for k, v in breached.items())

        def boom(data: object) -> object:
            raise RuntimeError("the check itself failed")

        monkeypatch.setattr(runtime.model("m1").checks["drift"], "run", boom)
        assert runtime.runner.run_check("m1", "drift").run.error
        before = _check_gauges(runtime)  # verdict error; values and last success of the breach
        assert before != breached
    finally:
        runtime.close()
    again = Runtime(cfg)
    try:
        after = _check_gauges(again)  # times as evidence stores them: to the microsecond
        assert after == pytest.approx(before, rel=0, abs=1e-6, nan_ok=True)
    finally:
        again.close()


def test_a_breach_a_nonconformity_and_a_verdict_change_are_logged(tmp_path, reference_csv, caplog):
    data = base_config(reference_csv, tmp_path / "ev", threshold=0.3, report_on_breach=False)
    runtime = Runtime(parse_config(data, base_dir=tmp_path), clock=lambda: 1000.0)
    caplog.set_level(logging.INFO, logger="aims_agent")
    try:
        _push(runtime, 0.0)
        runtime.runner.run_check("m1", "drift")
        runtime.runner.run_check("m1", "drift")  # the same verdict again: no new line
        _push(runtime, 3.0, n=4000, start=400)
        outcome = runtime.runner.run_check("m1", "drift")
        runtime.runner.run_check("m1", "drift")  # breaches again: one line, the recurrence in it
    finally:
        runtime.close()
    events = [(r.event, r.levelname) for r in caplog.records if hasattr(r, "event")]
    assert events == [
        ("verdict_changed", "INFO"),
        ("check_breached", "WARNING"),
        ("nonconformity_opened", "WARNING"),
        ("check_breached", "WARNING"),
    ]
    assert caplog.records[-1].nc_event == "recurred"
    assert caplog.records[-1].nc_id == outcome.nonconformity_id
    opened = next(r for r in caplog.records if getattr(r, "event", "") == "nonconformity_opened")
    assert (opened.model, opened.check, opened.nc_id) == ("m1", "drift", outcome.nonconformity_id)
    assert opened.record_id == outcome.monitoring_record_id
