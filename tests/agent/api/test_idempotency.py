"""A batch sent twice is stored once: an `Idempotency-Key` replay answers the first outcome
(also after a restart), and records whose id the window holds are dropped, first wins."""

from __future__ import annotations

import json
import time

import numpy as np
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from aims_agent.storage.schema import ingest_keys, sample_log
from tests import logger_events
from tests.conftest import as_records, make_rows

RECORDS = "/v1/models/m1/records"


def _metric(api, name: str, **labels: str) -> float:
    text = generate_latest(api.runtime.metrics.registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return sample.value
    return 0.0


def _stored(api) -> tuple[int, int]:
    """(sample log rows, records seen) as storage and the window hold them."""
    rows = api.runtime.store.read(
        lambda c: c.execute(select(func.count()).select_from(sample_log)).scalar_one()
    )
    return rows, api.runtime.ingest.windows["m1"].seen


def _batch(n: int = 50, start: int = 0) -> list[dict]:
    return as_records(make_rows(np.random.default_rng(start), n), start=start)


def test_a_replayed_key_answers_the_first_outcome_and_stores_nothing(api):
    batch = _batch()
    first = api.post(RECORDS, json=batch, headers={"Idempotency-Key": "batch-1"})
    assert first.status_code == 200 and first.json()["accepted"] == 50
    before = _stored(api)
    again = api.post(RECORDS, json=batch, headers={"Idempotency-Key": "batch-1"})
    assert again.status_code == 200 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert _stored(api) == before
    assert _metric(api, "aims_records_received_total", model="m1") == 50


def test_the_key_is_durable_across_a_restart(make_api):
    api = make_api()
    batch = _batch()
    first = api.post(RECORDS, json=batch, headers={"Idempotency-Key": "k-durable"})
    assert first.status_code == 200
    api.close()
    api.runtime.close()
    again = make_api()  # same evidence store, a new process's runtime
    before = _stored(again)
    r = again.post(RECORDS, json=batch, headers={"Idempotency-Key": "k-durable"})
    assert r.content == first.content and _stored(again) == before == (before[0], 50)


def test_a_key_is_refused_when_malformed_and_other_keys_store(api):
    r = api.post(RECORDS, json=_batch(), headers={"Idempotency-Key": "x" * 257})
    assert r.status_code == 400 and "Idempotency-Key" in r.json()["error"]
    assert api.post(RECORDS, json=_batch(10), headers={"Idempotency-Key": "a"}).status_code == 200
    r = api.post(RECORDS, json=_batch(10, start=10), headers={"Idempotency-Key": "b"})
    assert r.json()["accepted"] == 10 and _stored(api)[1] == 20
    keys = api.runtime.store.read(
        lambda c: c.execute(select(func.count()).select_from(ingest_keys)).scalar_one()
    )
    assert keys == 2


def test_duplicate_ids_in_a_batch_first_wins_and_a_label_joins_one_record(api):
    batch = _batch(5)
    copy = {**batch[0], "prediction": 1 - batch[0]["prediction"]}
    r = api.post(RECORDS, json=[*batch, copy])
    assert r.status_code == 200
    assert r.json()["accepted"] == 5 and r.json()["duplicates"] == 1
    window = api.runtime.ingest.windows["m1"]
    assert window.seen == 5
    data = window.snapshot(now=time.time())
    assert sorted(data.record_ids) == sorted(b["id"] for b in batch)
    labels = api.post("/v1/models/m1/labels", json=[{"id": batch[0]["id"], "label": 1}])
    assert labels.json()["joined"] == 1
    assert _metric(api, "aims_records_rejected_total", model="m1", reason="duplicate_id") == 1


def test_a_batch_sent_again_without_a_key_keeps_the_records_it_stored(api):
    batch = _batch(30)
    assert api.post(RECORDS, json=batch).json()["duplicates"] == 0
    before = _stored(api)
    r = api.post(RECORDS, json=batch)
    assert r.json() == {
        "accepted": 0,
        "sampled": 0,
        "duplicates": 30,
        "rejected": 0,
        "errors": [],
    }
    assert _stored(api)[1] == before[1] == 30
    assert _metric(api, "aims_records_rejected_total", model="m1", reason="duplicate_id") == 30


def _kserve(data: dict) -> None:
    data["models"][0]["kserve_logger"] = {"prediction": "predict", "score": "proba"}


def test_a_replayed_kserve_event_with_the_same_ce_id_stores_nothing(make_api):
    api = make_api(_kserve)
    rows = [[0.1, 2.0, 3.0, 1], [0.5, 1.0, 4.0, 2]]
    request = {
        "inputs": [{"name": "i", "shape": [2, 4], "datatype": "FP64", "data": sum(rows, [])}]
    }
    response = {
        "outputs": [
            {"name": "predict", "shape": [2], "datatype": "INT64", "data": [1, 0]},
            {"name": "proba", "shape": [2], "datatype": "FP64", "data": [0.7, 0.2]},
        ]
    }
    for _ in range(2):  # the logger sends the pair, then (after a lost ack) the same pair again
        for half, body in (("request", request), ("response", response)):
            hdrs = logger_events.kserve(half, "ce-42", at=time.time())
            r = api.post("/v1/models/m1/kserve-logger", content=json.dumps(body), headers=hdrs)
            assert r.status_code == 200, r.text
    assert api.runtime.ingest.windows["m1"].seen == 2
    assert _metric(api, "aims_records_rejected_total", model="m1", reason="duplicate_id") == 2
