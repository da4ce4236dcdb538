"""The real agent tails a growing, rotating prediction log, is killed with -9 and restarted."""

from __future__ import annotations

import json
import signal
import time

import numpy as np
import pytest
import yaml

from tests.conftest import as_records, base_config, make_rows

pytestmark = pytest.mark.integration


def seen(agent) -> int:
    with agent.client() as c:
        return c.get("/v1/models").json()[0]["window"]["seen"]


def wait_for(agent, n: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = seen(agent)
        if got >= n:
            return got
        time.sleep(0.2)
    return seen(agent)


def test_every_line_counted_once_across_rotation_and_kill_9(tmp_path, reference_csv, agent_factory):
    log = tmp_path / "predictions.log"
    cfg = base_config(reference_csv, tmp_path / "ev")
    cfg["models"][0]["log_tail"] = {
        "path": str(log),
        "poll_seconds": 0.1,
        "fields": {"id": "request_id"},
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    records = as_records(make_rows(np.random.default_rng(21), 1200))
    for r in records:
        r["request_id"] = r.pop("id")
    lines = [json.dumps(r) + "\n" for r in records]

    def append(chunk):
        with log.open("a") as fh:
            fh.writelines(chunk)

    agent = agent_factory(path)
    append(lines[:300])
    append(["{not json\n"])  # malformed: counted and logged, never fatal
    assert wait_for(agent, 300) == 300
    with agent.client() as c:  # the malformed line is counted, and the tail carries on
        assert (
            'aims_records_rejected_total{model="m1",reason="invalid_record"} 1.0'
            in c.get("/metrics").text
        )
    append(lines[300:500])
    log.rename(tmp_path / "predictions.log.1")  # rotation by rename
    append(lines[500:700])
    time.sleep(0.05)
    agent.proc.send_signal(signal.SIGKILL)  # possibly in the middle of a read
    agent.proc.wait()
    append(lines[700:900])
    log.rename(tmp_path / "predictions.log.2")  # rotated again while the agent is down
    append(lines[900:1000])
    again = agent_factory(path)
    assert wait_for(again, 1000) == 1000
    # copy-and-truncate rotation
    (tmp_path / "predictions.log.3").write_bytes(log.read_bytes())
    log.write_bytes(b"")
    append(lines[1000:])
    assert wait_for(again, 1200) == 1200
    time.sleep(0.5)
    assert seen(again) == 1200  # nothing counted twice
