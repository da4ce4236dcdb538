"""The real agent process over real HTTP on loopback."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import time

import numpy as np
import pytest
import yaml

from tests.conftest import TOKEN_ENV, as_records, base_config, make_rows
from tests.integration.conftest import READ_TOKEN, TOKEN, metric, run_agent_cli

pytestmark = pytest.mark.integration


def ndjson(records) -> bytes:
    return "\n".join(json.dumps(r) for r in records).encode()


def post(client, records, **params):
    return client.post(
        "/v1/models/m1/records",
        content=ndjson(records),
        params=params,
        headers={"Content-Type": "application/x-ndjson"},
    )


def test_ingest_round_trip_moves_metrics(write_config, agent_factory):
    agent = agent_factory(write_config())
    with agent.client() as c:
        assert metric(c, "aims_window_sampled_records", model="m1") == 0
        r = post(c, as_records(make_rows(np.random.default_rng(2), 120)))
        assert r.status_code == 200, r.text
        assert r.json() == {
            "accepted": 120,
            "sampled": 120,
            "duplicates": 0,
            "rejected": 0,
            "errors": [],
        }
        assert metric(c, "aims_records_received_total", model="m1") == 120
        assert metric(c, "aims_records_sampled_total", model="m1") == 120
        assert metric(c, "aims_window_sampled_records", model="m1") == 120
        # a JSON array works as well as NDJSON
        r = c.post(
            "/v1/models/m1/records",
            json=as_records(make_rows(np.random.default_rng(3), 5), start=500),
        )
        assert r.status_code == 200 and r.json()["accepted"] == 5
        assert metric(c, "aims_records_received_total", model="m1") == 125
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").status_code == 200
        spec = c.get("/openapi.json").json()
        assert "/v1/models/{model}/records" in spec["paths"]


def test_bad_input_gets_4xx_with_reasons_and_agent_carries_on(write_config, agent_factory):
    agent = agent_factory(write_config())
    good = as_records(make_rows(np.random.default_rng(4), 10))
    bad = [
        dict(good[0], id="bad-1", features={**good[0]["features"], "x2": "twelve"}),
        dict(good[1], id="bad-2", score="high"),
    ]
    with agent.client() as c:
        r = post(c, [*good[:5], *bad])
        assert r.status_code == 422
        body = r.json()
        assert body["accepted"] == 0 and "nothing was stored" in body["error"]
        assert [(e["index"], e["id"], e["field"]) for e in body["errors"]] == [
            (5, "bad-1", "features.x2"),
            (6, "bad-2", "score"),
        ]
        assert metric(c, "aims_records_received_total", model="m1") == 0
        assert metric(c, "aims_records_rejected_total", model="m1", reason="invalid_record") == 2

        r = post(c, [*good[:5], *bad], on_error="skip")
        assert r.status_code == 200 and r.json()["accepted"] == 5 and r.json()["rejected"] == 2

        assert c.post("/v1/models/m1/records", content=b"[{]").status_code == 400
        assert c.post("/v1/models/m1/records", content=b"").status_code == 400
        big = b"[" + b" " * 4_100_000 + b"]"
        r = c.post("/v1/models/m1/records", content=big)
        assert r.status_code == 413 and "limit" in r.json()["error"]
        r = post(c, good)  # good[:5] are stored already: the first record of an id wins
        assert r.status_code == 200 and r.json()["accepted"] == r.json()["duplicates"] == 5
        r = c.post("/v1/models/nope/records", content=ndjson(good))
        # the configured models are not listed to a client that guessed wrong
        assert r.status_code == 404 and r.json()["error"] == "no model named 'nope'"
        assert (
            c.post(
                "/v1/models/m1/records", params={"on_error": "maybe"}, content=ndjson(good)
            ).status_code
            == 422
        )
        assert metric(c, "aims_records_received_total", model="m1") == 10
        assert metric(c, "aims_records_rejected_total", model="m1", reason="duplicate_id") == 5
    assert agent.proc.poll() is None


def test_tokens_are_required_and_scoped(write_config, agent_factory):
    agent = agent_factory(write_config())
    records = ndjson(as_records(make_rows(np.random.default_rng(5), 3)))
    with agent.client(token=None) as c:
        r = c.post("/v1/models/m1/records", content=records)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.get("/v1/nonconformities").status_code == 401
        assert c.get("/metrics").status_code == 200  # Prometheus scrapes without a token
    with agent.client(token="wrong-" + TOKEN) as c:
        assert c.post("/v1/models/m1/records", content=records).status_code == 401
    with agent.client(token=READ_TOKEN) as c:
        r = c.post("/v1/models/m1/records", content=records)
        assert r.status_code == 403 and "ingest" in r.json()["error"]
        assert c.post("/v1/models/m1/checks/drift/run").status_code == 403
        assert c.get("/v1/models").status_code == 200
    # the token never reaches the logs
    agent.stop()
    assert TOKEN not in "".join(agent.stderr) and READ_TOKEN not in "".join(agent.stderr)


def test_repeated_breaches_leave_one_open_nonconformity(write_config, agent_factory):
    agent = agent_factory(write_config(threshold=0.3))
    rng = np.random.default_rng(6)
    with agent.client() as c:
        assert post(c, as_records(make_rows(rng, 600, shift=1.5))).status_code == 200
        verdicts = []
        for _ in range(3):
            r = c.post("/v1/models/m1/checks/drift/run")
            assert r.status_code == 200, r.text
            verdicts.append(r.json())
        assert [v["verdict"] for v in verdicts] == ["breach"] * 3
        assert len({v["nonconformity_id"] for v in verdicts}) == 1
        (nc,) = c.get("/v1/nonconformities", params={"status": "open"}).json()
        assert nc["recurrences"] == 2
        assert nc["requirement"]["controls"][0] == "A.6.2.6"
        assert set(nc["nature"]["affected"]) >= {"x1", "x2", "x3"}
        detail = c.get(f"/v1/nonconformities/{nc['nc_id']}").json()
        assert [e["event"] for e in detail["events"]] == ["opened", "recurred", "recurred"]
        assert metric(c, "aims_nonconformities_open", model="m1") == 1
        assert (
            metric(
                c,
                "aims_check_breached",
                model="m1",
                check="drift",
                metric="drift_share",
                feature="",
            )
            == 1
        )
        records = c.get("/v1/monitoring-records", params={"model": "m1"}).json()
        assert len(records) == 3
        assert all(r["nonconformity_id"] == nc["nc_id"] for r in records)
        first = records[-1]
        assert first["method"]["reference"]["sha256"] and first["method"]["config_sha256"]
        assert first["window"]["records_sampled"] == 600
        assert first["controls"]["iso42001"][0] == "A.6.2.6"


def test_checks_run_on_their_schedule(write_config, agent_factory):
    cfg = write_config(schedule_seconds=1)
    agent = agent_factory(cfg)
    with agent.client() as c:
        deadline = time.monotonic() + 20
        runs = 0.0
        while time.monotonic() < deadline:
            try:
                runs = metric(
                    c,
                    "aims_check_runs_total",
                    model="m1",
                    check="drift",
                    verdict="insufficient_data",
                    outcome="insufficient_data",
                )
            except AssertionError:  # no run yet
                runs = 0
            if runs >= 2:
                break
            time.sleep(0.5)
        assert runs >= 2
        last = metric(
            c,
            "aims_check_last_success_timestamp_seconds",
            model="m1",
            check="drift",
        )
        assert abs(last - time.time()) < 30


def test_acknowledged_records_survive_kill_9(write_config, agent_factory):
    cfg = write_config()
    agent = agent_factory(cfg)
    rng = np.random.default_rng(8)
    with agent.client() as c:
        for b in range(4):
            r = post(c, as_records(make_rows(rng, 250), start=b * 250))
            assert r.status_code == 200
    agent.proc.send_signal(signal.SIGKILL)
    agent.proc.wait()
    again = agent_factory(cfg)
    with again.client() as c:
        (model,) = c.get("/v1/models").json()
        assert model["window"]["seen"] == 1000 and model["window"]["sampled"] == 1000
        assert metric(c, "aims_window_sampled_records", model="m1") == 1000
        run = c.post("/v1/models/m1/checks/drift/run").json()
        rec = c.get("/v1/monitoring-records").json()[0]
        assert rec["record_id"] == run["monitoring_record_id"]
        assert rec["window"]["records_sampled"] == 1000


def test_sigterm_stops_within_the_deadline(write_config, agent_factory):
    agent = agent_factory(write_config())
    with agent.client() as c:
        assert post(c, as_records(make_rows(np.random.default_rng(9), 50))).status_code == 200
    t0 = time.monotonic()
    assert agent.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 10
    assert re.search(r"storage closed", "".join(agent.stderr))


def test_missing_token_variable_exits_2_naming_the_field(write_config):
    proc = run_agent_cli("run", "--config", str(write_config()), without=[TOKEN_ENV])
    assert proc.returncode == 2
    assert f"agent.tokens[0].env: environment variable {TOKEN_ENV} is not set" in proc.stderr


def test_evidently_report_is_attached_with_its_hash(write_config, agent_factory):
    agent = agent_factory(write_config(threshold=0.3, report_on_breach=True))
    with agent.client() as c:
        assert (
            post(c, as_records(make_rows(np.random.default_rng(12), 400, shift=1.5))).status_code
            == 200
        )
        # the run that opens the nonconformity attaches the report; recurrences do not
        first = c.post("/v1/models/m1/checks/drift/run").json()
        second = c.post("/v1/models/m1/checks/drift/run").json()
        records = {r["record_id"]: r for r in c.get("/v1/monitoring-records").json()}
        (att,) = records[first["monitoring_record_id"]]["attachments"]
        assert records[second["monitoring_record_id"]]["attachments"] == []
        assert att["kind"] == "evidently-data-drift-html"
        body = c.get(att["href"])
        assert body.status_code == 200 and b"<html" in body.content[:2000].lower()
        assert hashlib.sha256(body.content).hexdigest() == att["sha256"]
        assert (agent.config.parent / "evidence" / att["path"]).is_file()
        # on demand, for any drift check
        r = c.post("/v1/models/m1/checks/drift/report")
        assert r.status_code == 200, r.text
        assert r.json()["attachment"]["path"].startswith("attachments/")
        with agent.client(token=READ_TOKEN) as reader:
            assert reader.post("/v1/models/m1/checks/drift/report").status_code == 403
            assert reader.get(att["href"]).status_code == 200


def test_late_labels_feed_performance_and_survive_kill_9(tmp_path, reference_csv, agent_factory):
    cfg = base_config(reference_csv, tmp_path / "evidence")
    cfg["models"][0]["checks"].append(
        {
            "id": "perf",
            "kind": "performance",
            "schedule_seconds": 3600,
            "min_samples": 10,
            "metrics": {"accuracy": {"min": 0.5}},
        }
    )
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    agent = agent_factory(path)
    records = as_records(make_rows(np.random.default_rng(13), 200))
    truth = {r["id"]: r.pop("label") for r in records}
    with agent.client() as c:
        assert post(c, records).status_code == 200
        run = c.post("/v1/models/m1/checks/perf/run").json()
        assert run["verdict"] == "insufficient_data"  # no labels yet
        items = [{"id": rid, "label": y} for rid, y in list(truth.items())[:150]]
        items.append({"id": "never-sent", "label": 1})
        r = c.post("/v1/models/m1/labels", json=items)
        assert r.status_code == 200, r.text
        assert r.json() == {"joined": 150, "unknown": 1, "expired": 0}
        bad = c.post("/v1/models/m1/labels", json=[{"id": "r1", "label": [1]}])
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "label"
        assert metric(c, "aims_labels_total", model="m1", outcome="joined") == 150
    agent.proc.send_signal(signal.SIGKILL)
    agent.proc.wait()
    again = agent_factory(path)
    with again.client() as c:
        run = c.post("/v1/models/m1/checks/perf/run").json()
        (rec,) = [
            r
            for r in c.get("/v1/monitoring-records").json()
            if r["record_id"] == run["monitoring_record_id"]
        ]
        (acc,) = rec["result"]["measurements"]
        assert acc["n_current"] == 150 and run["verdict"] in ("pass", "breach")


def test_storage_lag_gives_429_with_retry_after(tmp_path, reference_csv):
    """In-process agent, real HTTP: a stalled writer makes ingest refuse instead of queueing."""
    import asyncio
    import threading

    import httpx
    import uvicorn

    from aims_agent.agent.api import create_app
    from aims_agent.agent.runtime import Runtime
    from aims_agent.config import parse_config

    cfg_data = base_config(reference_csv, tmp_path / "ev")
    cfg_data["agent"]["max_pending_writes"] = 2
    runtime = Runtime(parse_config(cfg_data, base_dir=tmp_path))
    tokens = {TOKEN.encode(): runtime.cfg.agent.tokens[0]}
    gate = threading.Event()
    runtime.store.submit(lambda conn: gate.wait(30))  # the writer is stuck on this
    runtime.store.submit(lambda conn: None)
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime, tokens), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            timeout=10,
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as c:
            r = post(c, as_records(make_rows(np.random.default_rng(14), 10)))
            assert r.status_code == 429 and r.headers["retry-after"] == "1"
            assert "nothing was stored" in r.json()["error"]
            gate.set()
            for _ in range(100):
                if runtime.store.pending == 0:
                    break
                threading.Event().wait(0.05)
            assert post(c, as_records(make_rows(np.random.default_rng(14), 10))).status_code == 200
            assert (
                metric(
                    c,
                    "aims_records_rejected_total",
                    model="m1",
                    reason="backpressure",
                )
                == 10
            )
    finally:
        gate.set()
        server.should_exit = True
        thread.join(10)
        runtime.close()
