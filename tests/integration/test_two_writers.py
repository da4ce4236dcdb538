"""Two agents on one PostgreSQL database, checking the same drifted model at the same moments:
one nonconformity for the model and check at all times, every breach counted on it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import yaml
from sqlalchemy import create_engine, func, select

from aims_agent.storage.schema import monitoring_records, nonconformities, nonconformity_events
from tests.conftest import READ_TOKEN_ENV, TOKEN_ENV, as_records, base_config, make_rows
from tests.integration.conftest import READ_TOKEN, TOKEN

pytestmark = pytest.mark.integration
ROUNDS = 20


def test_two_agents_open_one_nonconformity_and_count_every_recurrence(
    tmp_path, reference_csv, agent_factory, postgres_url
):
    paths = []
    for name in ("a", "b"):
        # one evidence directory, as agents sharing a database must have: the Evidently report
        # of the breach that opens the record is a file there, and verify checks its hash
        cfg = base_config(reference_csv, tmp_path / "evidence")
        cfg["agent"]["storage_url"] = postgres_url
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        paths.append(path)
    with ThreadPoolExecutor(2) as pool:  # both migrate the empty database at once
        agents = list(pool.map(agent_factory, paths))
    clients = [a.client() for a in agents]
    drifted = as_records(make_rows(np.random.default_rng(1), 300, shift=2.0))
    for c in clients:
        assert c.post("/v1/models/m1/records", json=drifted).status_code == 200

    engine = create_engine(postgres_url)
    unresolved = (
        select(func.count())
        .select_from(nonconformities)
        .where(
            nonconformities.c.model == "m1",
            nonconformities.c.check_id == "drift",
            nonconformities.c.status.not_in(("closed", "rejected")),
        )
    )
    seen: list[int] = []  # unresolved records for (m1, drift), polled while the agents run
    done = threading.Event()

    def watch() -> None:
        with engine.connect() as conn:
            while not done.is_set():
                seen.append(int(conn.execute(unresolved).scalar_one()))
                conn.rollback()

    watcher = threading.Thread(target=watch)
    watcher.start()
    barrier = threading.Barrier(2)

    def run(c):
        barrier.wait()
        return c.post("/v1/models/m1/checks/drift/run")

    answers = []
    try:
        with ThreadPoolExecutor(2) as pool:
            for _ in range(ROUNDS):
                answers += list(pool.map(run, clients))
    finally:
        done.set()
        watcher.join()
        for c in clients:
            c.close()

    assert [r.status_code for r in answers] == [200] * 2 * ROUNDS, [r.text for r in answers]
    assert {r.json()["verdict"] for r in answers} == {"breach"}
    assert len({r.json()["nonconformity_id"] for r in answers}) == 1
    assert seen and max(seen) == 1 and seen[-1] == 1
    with engine.connect() as conn:
        ncs = conn.execute(select(nonconformities)).all()
        assert len(ncs) == 1 and ncs[0].status == "open"
        assert ncs[0].recurrences == 2 * ROUNDS - 1  # every breach after the first
        events = conn.execute(
            select(nonconformity_events.c.event, func.count()).group_by(
                nonconformity_events.c.event
            )
        ).all()
        assert dict(events) == {"opened": 1, "recurred": 2 * ROUNDS - 1}
        linked = conn.execute(select(monitoring_records.c.nonconformity_id)).scalars().all()
        assert linked == [ncs[0].nc_id] * 2 * ROUNDS
    engine.dispose()
    # the two agents appended to one hash chain at the same moments: it still verifies
    verified = subprocess.run(
        [sys.executable, "-m", "aims_agent.agent.cli", "evidence", "verify"]
        + ["--config", str(paths[0])],
        capture_output=True,
        text=True,
        env={**os.environ, TOKEN_ENV: TOKEN, READ_TOKEN_ENV: READ_TOKEN},
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ledger intact" in verified.stdout
    for agent in agents:
        assert agent.stop() == 0
