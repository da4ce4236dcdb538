"""The runtime without HTTP: what happens to the window when storage fails."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from sqlalchemy import Connection

from aims_agent.agent import runtime as runtime_module
from aims_agent.agent.config_loader import parse_config
from aims_agent.agent.runtime import Runtime
from aims_agent.collectors.push import decode_records
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
