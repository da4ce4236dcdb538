"""Human-review feedback through the HTTP app: joined by id like late labels, kept across a
restart, bad items refused naming the field, and what the oversight check then measures."""

from __future__ import annotations

import json

import numpy as np

from tests.conftest import as_records, make_rows

RECORDS, FEEDBACK = "/v1/models/m1/records", "/v1/models/m1/feedback"


def with_oversight(data):
    data["models"][0]["checks"].append(
        {
            "id": "review",
            "kind": "oversight",
            "schedule_seconds": 3600,
            "min_samples": 5,
            "metrics": {"review_rate": {"min": 0.5}, "override_rate": {"min": 0.01, "max": 0.5}},
        }
    )


def _run(api) -> dict[str, float]:
    r = api.post("/v1/models/m1/checks/review/run", scope="write")
    assert r.status_code == 200, r.text
    records = api.get("/v1/monitoring-records", params={"model": "m1", "check": "review"}).json()
    return {m["metric"]: m["value"] for m in records[0]["result"]["measurements"]}


def test_feedback_joins_survives_a_restart_and_is_measured(make_api):
    api = make_api(with_oversight)
    rows = as_records(make_rows(np.random.default_rng(3), 40))
    assert api.post(RECORDS, json=rows).status_code == 200
    items = [{"id": f"r{i}", "reviewed": True, "reviewer": "Ana Ruiz"} for i in range(20)]
    items += [{"id": f"r{i}", "overridden": True} for i in range(20, 25)]
    items += [{"id": "never-sent", "reviewed": True}]
    body = "\n".join(json.dumps(i) for i in items)
    r = api.post(FEEDBACK, content=body, headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    assert r.json() == {"joined": 25, "unknown": 1, "expired": 0}
    got = _run(api)
    assert got["review_rate"] == 25 / 40 and got["override_rate"] == 5 / 25
    api.close()
    api.runtime.close()
    again = make_api(with_oversight)  # same store: a new process
    assert _run(again) == got
    stored = again.runtime.store.read(lambda c: c.exec_driver_sql("select payload from sample_log"))
    assert not any(b"Ana Ruiz" in bytes(row[0]) for row in stored)  # the reviewer is not kept


def test_bad_feedback_is_refused_naming_the_field(make_api):
    api = make_api(with_oversight)
    for item, field in (
        ({"id": "r1", "reviewed": "yes"}, "reviewed"),
        ({"id": "r1", "reviewed": True, "mood": "ok"}, "mood"),
        ({"id": "r1"}, "reviewed"),
        ({"id": "r1", "reviewed": True, "reviewed_at": -5}, "reviewed_at"),
    ):
        r = api.post(FEEDBACK, json=[item])
        assert r.status_code == 422, (item, r.text)
        assert r.json()["errors"][0]["field"] == field, r.json()
    assert (
        api.post(FEEDBACK, json=[{"id": "r1", "reviewed": True}], scope="read").status_code == 403
    )
    assert api.post(FEEDBACK, json=[{"id": "r1", "reviewed": True}], scope=None).status_code == 401


def test_a_model_without_an_oversight_check_keeps_no_feedback(make_api):
    api = make_api()
    r = api.post(FEEDBACK, json=[{"id": "r1", "reviewed": True}])
    assert r.status_code == 409 and "no oversight check" in r.json()["error"]
