"""Bad input is a 4xx in the documented shape `{"error": ...}`, never a 500; storage failures
are a 503 with Retry-After that says nothing of the driver's message."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import event

from tests.conftest import as_records, make_rows

RECORDS, LABELS = "/v1/models/m1/records", "/v1/models/m1/labels"
DEEP = "[" * 1000 + "]" * 1000


def _drifting(data: dict) -> None:
    check = data["models"][0]["checks"][0]
    check.update(threshold=0.3, report_on_breach=False)


def _record(**over: object) -> dict:
    (rec,) = as_records(make_rows(np.random.default_rng(1), 1))
    return {**rec, **over}


@pytest.mark.parametrize("path", [RECORDS, LABELS])
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (DEEP, "application/json"),
        (f"[{DEEP}]", "application/json"),
        (f'{{"id": "a", "x": {DEEP}}}', "application/x-ndjson"),
        (f'{{"id": {DEEP}}}', "application/x-ndjson"),
        (DEEP, "application/x-ndjson"),
    ],
)
def test_json_nested_1000_deep_is_refused_not_a_500(api, path, body, content_type):
    r = api.post(path, content=body, headers={"content-type": content_type})
    assert r.status_code in (400, 422), r.text
    assert isinstance(r.json()["error"], str)


def test_a_deep_record_is_named_with_skip(api):
    body = "\n".join([json.dumps(_record(id="ok")), f'{{"id": "bad", "features": {DEEP}}}'])
    r = api.post(RECORDS + "?on_error=skip", content=body)
    assert r.status_code == 200 and r.json()["accepted"] == 1
    assert r.json()["errors"][0]["index"] == 1


def test_patch_with_aware_at_far_in_the_future_is_a_422(make_api):
    api = make_api(_drifting)
    rows = as_records(make_rows(np.random.default_rng(3), 400, shift=2.0))
    assert api.post(RECORDS, json=rows).status_code == 200
    nc = api.post("/v1/models/m1/checks/drift/run", scope="write").json()["nonconformity_id"]
    assert nc
    for aware in ("9999-12-31T23:00:00Z", "0001-01-01T00:00:00+14:00"):
        change = {"serious_incident": {"possible": True, "aware_at": aware}}
        r = api.request("PATCH", f"/v1/nonconformities/{nc}", json=change)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "serious_incident.aware_at"
    ok = {"serious_incident": {"possible": True, "aware_at": "2026-01-02T03:04:05Z"}}
    assert api.request("PATCH", f"/v1/nonconformities/{nc}", json=ok).status_code == 200


def _disk_full(api) -> None:
    """SQLite's own 'database or disk is full': no page may be added to the file."""
    engine = api.runtime.store.engine

    @event.listens_for(engine, "connect")
    def full(dbapi_conn, _):
        dbapi_conn.execute("PRAGMA max_page_count = 1")

    engine.dispose()


def test_a_full_disk_is_a_503_with_retry_after_and_no_driver_text(api):
    assert (
        api.post(RECORDS, json=as_records(make_rows(np.random.default_rng(2), 60))).status_code
        == 200
    )
    _disk_full(api)
    for method, path, scope, body in (
        ("POST", "/v1/models/m1/checks/drift/run", "write", None),
        (
            "POST",
            RECORDS,
            "ingest",
            as_records(make_rows(np.random.default_rng(4), 3000), start=99),
        ),
    ):
        r = api.request(method, path, scope, json=body)
        assert r.status_code == 503, r.text
        assert int(r.headers["retry-after"]) >= 1
        assert "storage unavailable" in r.json()["error"]
        assert "INSERT" not in r.text and "sqlite" not in r.text.lower()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/no/such/path", 404),
        ("DELETE", "/healthz", 405),
        ("GET", "/v1/monitoring-records?limit=many", 422),
        ("POST", "/v1/models/m1/records?on_error=maybe", 422),
    ],
)
def test_framework_answers_have_the_documented_shape(api, method, path, status):
    r = api.request(method, path, "ingest" if method == "POST" else "read", content=b"[]")
    assert r.status_code == status
    body = r.json()
    assert "detail" not in body and isinstance(body["error"], str)


def test_an_unknown_model_is_a_404_that_names_no_model(make_api):
    def modelmesh(data: dict) -> None:
        data["models"][0]["trustyai"] = {"model_id": "secret-model-name"}

    api = make_api(modelmesh)
    partial = {"id": "1", "kind": "request", "modelid": "nope", "data": ""}
    r = api.post("/consumer/kserve/v2", json=partial)
    assert r.status_code == 404 and "secret-model-name" not in r.text and "m1" not in r.text
    r = api.post("/v1/models/nope/records", json=[])
    assert r.status_code == 404 and "m1" not in r.text


@pytest.mark.parametrize(
    "stamp", ["0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59Z", -1, "inf", 1e300]
)
def test_times_before_1970_or_past_9999_are_refused_alike(api, stamp):
    rec = _record(timestamp=float(stamp) if stamp == "inf" else stamp)
    r = api.post(RECORDS, content=json.dumps([rec]).replace("Infinity", "1e999"))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "timestamp"
