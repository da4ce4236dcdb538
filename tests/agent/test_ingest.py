"""The runtime without HTTP: what happens to the window when storage fails."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from sqlalchemy import Connection

from aims_agent.agent import ingest as ingest_module
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

        asyncio.run(runtime.ingest.ingest("m1", body(0)))
        assert runtime.ingest.windows["m1"].seen == 20

        def failing(*args, **kwargs):
            def write(conn: Connection) -> None:
                conn.exec_driver_sql("INSERT INTO no_such_table VALUES (1)")

            return write

        monkeypatch.setattr(ingest_module, "append_batch", failing)
        with pytest.raises(StorageError):
            asyncio.run(runtime.ingest.ingest("m1", body(20)))
        assert runtime.ingest.windows["m1"].seen == 20  # not 40: memory is what storage holds
        monkeypatch.undo()
        asyncio.run(runtime.ingest.ingest("m1", body(20)))  # the client sends the batch again
        data = runtime.ingest.windows["m1"].snapshot(now=runtime.clock())
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

    real, calls = ingest_module.append_batch, []

    def first_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            return real(*args, **kwargs)

        def write(conn: Connection) -> None:
            conn.exec_driver_sql("INSERT INTO no_such_table VALUES (1)")

        return write

    async def both() -> list[object]:
        return await asyncio.gather(
            runtime.ingest.ingest("m1", body(0)),
            runtime.ingest.ingest("m1", body(20)),
            return_exceptions=True,
        )

    try:
        monkeypatch.setattr(ingest_module, "append_batch", first_fails)
        rebuilds = []
        restore = runtime.ingest._restore
        monkeypatch.setattr(
            runtime.ingest, "_restore", lambda *a: rebuilds.append(a) or restore(*a)
        )
        first, second = asyncio.run(both())
        assert isinstance(first, StorageError) and isinstance(second, StorageError)
        assert runtime.ingest.windows["m1"].seen == 0
        assert len(rebuilds) == 1  # both refused writes waited for the one rebuild
        monkeypatch.undo()
        asyncio.run(both())  # the clients send both again
        data = runtime.ingest.windows["m1"].snapshot(now=runtime.clock())
        assert data.info.seen == 40 and sorted(data.record_ids) == sorted(
            rid for b in (body(0), body(20)) for rid in b.ids
        )
    finally:
        runtime.close()
    again = Runtime(cfg, clock=lambda: 1000.0)
    try:
        data = again.ingest.windows["m1"].snapshot(now=again.clock())
        assert data.info.seen == 40 and len(set(data.record_ids)) == 40 and all(data.record_ids)
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
        asyncio.run(runtime.ingest.ingest("m1", _pushed(runtime, 1, 20)))
        now[0] = 1100.0
        runtime.ingest.windows["m1"].reject(1, now=now[0])  # rolls the window in memory
        asyncio.run(runtime.ingest.ingest("m1", _pushed(runtime, 2, 20)))
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
            asyncio.run(runtime.ingest.ingest("m1", _pushed(runtime, seed, 50)))
        entries = _log_entries(runtime)
        # a 100-row snapshot, then at most 200 rows of batches: 560 or so without compaction
        assert sum(rows for _, _, rows in entries) <= 300 + 50, entries
        assert entries[0][1] == "snapshot"
        data = runtime.ingest.windows["m1"].snapshot(now=1000.0)
    finally:
        runtime.close()
    again = Runtime(cfg, clock=lambda: 1000.0)
    try:  # and the compacted log rebuilds the same pane
        rebuilt = again.ingest.windows["m1"].snapshot(now=1000.0)
        assert rebuilt.info.seen == data.info.seen == 10_000
        assert sorted(rebuilt.record_ids) == sorted(data.record_ids)
    finally:
        again.close()
