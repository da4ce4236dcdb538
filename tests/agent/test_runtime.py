"""The runtime without HTTP: what happens to the window when storage fails."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from sqlalchemy import Connection

from aims_agent.agent import runtime as runtime_module
from aims_agent.agent.runtime import Runtime
from aims_agent.collectors.push import decode_records
from aims_agent.config import parse_config
from aims_agent.errors import StorageError
from tests.conftest import as_records, base_config, make_rows


def test_a_failed_write_leaves_the_window_as_stored(tmp_path, reference_csv, monkeypatch):
    cfg = parse_config(base_config(reference_csv, tmp_path / "ev"), base_dir=tmp_path)
    runtime = Runtime(cfg, clock=lambda: 1000.0)  # one window, whatever the time of day
    try:
        schema = runtime.model("m1").schema

        def body(start: int):
            rows = as_records(make_rows(np.random.default_rng(start), 20), start=start)
            return decode_records(json.dumps(rows).encode(), "application/json", schema, now=0)

        asyncio.run(runtime.ingest("m1", body(0)))
        assert runtime.model("m1").window.seen == 20

        def failing(*args, **kwargs):
            def write(conn: Connection) -> None:
                conn.exec_driver_sql("INSERT INTO no_such_table VALUES (1)")

            return write

        monkeypatch.setattr(runtime_module, "append_batch", failing)
        with pytest.raises(StorageError):
            asyncio.run(runtime.ingest("m1", body(20)))
        assert runtime.model("m1").window.seen == 20  # not 40: memory is what storage holds
        monkeypatch.undo()
        asyncio.run(runtime.ingest("m1", body(20)))  # the client sends the batch again
        data = runtime.model("m1").window.snapshot(now=runtime.clock())
        assert data.info.seen == 40 and len(set(data.record_ids)) == 40
    finally:
        runtime.close()


def test_writes_behind_a_failed_one_are_refused_so_no_slot_is_left_empty(
    tmp_path, reference_csv, monkeypatch
):
    """Two batches in flight; the first one's write fails. The second was sampled on top of
    rows storage never got: stored, it would leave their slots empty (phantom rows on the next
    rebuild). It is refused too, the window is rebuilt once, and both batches sent again land
    whole, in memory and after a restart."""
    cfg = parse_config(base_config(reference_csv, tmp_path / "ev"), base_dir=tmp_path)
    runtime = Runtime(cfg, clock=lambda: 1000.0)
    schema = runtime.model("m1").schema

    def body(start: int):
        rows = as_records(make_rows(np.random.default_rng(start), 20), start=start)
        return decode_records(json.dumps(rows).encode(), "application/json", schema, now=0)

    real, calls = runtime_module.append_batch, []

    def first_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            return real(*args, **kwargs)

        def write(conn: Connection) -> None:
            conn.exec_driver_sql("INSERT INTO no_such_table VALUES (1)")

        return write

    async def both() -> list[object]:
        return await asyncio.gather(
            runtime.ingest("m1", body(0)), runtime.ingest("m1", body(20)), return_exceptions=True
        )

    try:
        monkeypatch.setattr(runtime_module, "append_batch", first_fails)
        rebuilds = []
        restore = runtime._restore
        monkeypatch.setattr(runtime, "_restore", lambda *a: rebuilds.append(a) or restore(*a))
        first, second = asyncio.run(both())
        assert isinstance(first, StorageError) and isinstance(second, StorageError)
        assert runtime.model("m1").window.seen == 0
        assert len(rebuilds) == 1  # both refused writes waited for the one rebuild
        monkeypatch.undo()
        asyncio.run(both())  # the clients send both again
        data = runtime.model("m1").window.snapshot(now=runtime.clock())
        assert data.info.seen == 40 and sorted(data.record_ids) == sorted(
            rid for b in (body(0), body(20)) for rid in b.ids
        )
    finally:
        runtime.close()
    again = Runtime(cfg, clock=lambda: 1000.0)
    try:
        data = again.model("m1").window.snapshot(now=again.clock())
        assert data.info.seen == 40 and len(set(data.record_ids)) == 40 and all(data.record_ids)
    finally:
        again.close()


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
            runtime.ingest(
                "m1", decode_records(json.dumps(rows).encode(), "application/json", schema, now=0)
            )
        )
        assert runtime.run_check("m1", "drift").run.verdict == "breach"
        breached = _check_gauges(runtime)
        assert any(k[0] == "aims_check_breached" and v == 1 for k, v in breached.items())

        def boom(data: object) -> object:
            raise RuntimeError("the check itself failed")

        monkeypatch.setattr(runtime.model("m1").checks["drift"], "run", boom)
        assert runtime.run_check("m1", "drift").run.error
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


def _log_entries(runtime: Runtime) -> list[tuple[float, str, int]]:
    """(window_start, kind, rows) of every sample-log entry of model m1."""
    from sqlalchemy import select

    from aims_agent.storage.schema import sample_log as t

    query = (
        select(t.c.window_start, t.c.kind, t.c.n_rows)
        .where(t.c.model == "m1")
        .order_by(t.c.entry_id)
    )
    return [tuple(r) for r in runtime.store.read(lambda c: c.execute(query).all())]


def _pushed(runtime: Runtime, seed: int, n: int):
    rows = as_records(make_rows(np.random.default_rng(seed), n), start=seed * 1000)
    schema = runtime.model("m1").schema
    return decode_records(json.dumps(rows).encode(), "application/json", schema, now=0)


def test_a_window_rolled_by_a_reject_still_drops_the_old_windows_log(tmp_path, reference_csv):
    """The roll is judged against what storage was last sent, not against the window in
    memory, which a reject (or a label join) may already have rolled."""
    data = base_config(reference_csv, tmp_path / "ev")
    data["models"][0]["window"] = {"span_seconds": 100, "max_sample": 1000}
    cfg = parse_config(data, base_dir=tmp_path)
    now = [1000.0]
    runtime = Runtime(cfg, clock=lambda: now[0])
    try:
        asyncio.run(runtime.ingest("m1", _pushed(runtime, 1, 20)))
        now[0] = 1100.0
        runtime.model("m1").window.reject(1, now=now[0])  # rolls the window in memory
        asyncio.run(runtime.ingest("m1", _pushed(runtime, 2, 20)))
        assert {start for start, _, _ in _log_entries(runtime)} == {1100.0}
    finally:
        runtime.close()


def test_a_sliding_windows_log_is_compacted_per_pane(tmp_path, reference_csv):
    """A pane holds max_sample / panes rows, so its log is snapshotted at twice that, not at
    twice the whole window's capacity, which a pane's log reaches only after a long time."""
    data = base_config(reference_csv, tmp_path / "ev")
    window = {"kind": "sliding", "span_seconds": 1200, "step_seconds": 100, "max_sample": 1200}
    data["models"][0]["window"] = window  # 12 panes of 100 rows
    cfg = parse_config(data, base_dir=tmp_path)
    runtime = Runtime(cfg, clock=lambda: 1000.0)
    try:
        for seed in range(200):
            asyncio.run(runtime.ingest("m1", _pushed(runtime, seed, 50)))
        entries = _log_entries(runtime)
        # a 100-row snapshot, then at most 200 rows of batches: 560 or so without compaction
        assert sum(rows for _, _, rows in entries) <= 300 + 50, entries
        assert entries[0][1] == "snapshot"
        data = runtime.model("m1").window.snapshot(now=1000.0)
    finally:
        runtime.close()
    again = Runtime(cfg, clock=lambda: 1000.0)
    try:  # and the compacted log rebuilds the same pane
        rebuilt = again.model("m1").window.snapshot(now=1000.0)
        assert rebuilt.info.seen == data.info.seen == 10_000
        assert sorted(rebuilt.record_ids) == sorted(data.record_ids)
    finally:
        again.close()
