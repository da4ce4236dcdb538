from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aims_agent.collectors.push import decode_records, split_body
from aims_agent.config import SchemaConfig
from aims_agent.errors import PayloadError
from aims_agent.schema import ModelSchema

SCHEMA = ModelSchema(
    SchemaConfig(
        numeric=("age", "income"),
        categorical=("region",),
        prediction="p",
        score="s",
        label="y",
        sensitive=("g",),
    )
)


def rec(i: int, **over):
    base = {
        "id": f"r{i}",
        "timestamp": 1_700_000_000 + i,
        "features": {"age": 30 + i, "income": 1000.5, "region": "north"},
        "prediction": 1,
        "score": 0.7,
        "label": 0,
        "attributes": {"g": "F"},
    }
    base.update(over)
    return base


def decode(records, ndjson=True):
    body = ("\n".join(json.dumps(r) for r in records) if ndjson else json.dumps(records)).encode()
    ctype = "application/x-ndjson" if ndjson else "application/json"
    return decode_records(body, ctype, SCHEMA, now=5.0)


@pytest.mark.parametrize("ndjson", [True, False])
def test_valid_batch_becomes_rows_in_column_order(ndjson):
    d = decode([rec(0), rec(1)], ndjson=ndjson)
    assert not d.errors
    assert d.ids == ["r0", "r1"]
    assert d.rows[0] == (30.0, 1000.5, "north", 1, 0.7, 0, "F")
    assert d.timestamps == [1_700_000_000.0, 1_700_000_001.0]


def test_missing_features_are_accepted_as_missing():
    d = decode([rec(0, features={"region": None})])
    assert not d.errors
    assert d.rows[0][:3] == (None, None, None)


@pytest.mark.parametrize(
    ("override", "field", "reason"),
    [
        ({"features": {"age": "old"}}, "features.age", "Expected `bool | float | null`, got `str`"),
        ({"features": {"region": 1.5}}, "features.region", "Expected `bool | int | str | null`"),
        ({"prediction": None}, "prediction", "Expected `bool | int | str`, got `null`"),
        ({"score": "high"}, "score", "Expected `float | null`"),
        ({"timestamp": "yesterday"}, "timestamp", "Invalid RFC3339 encoded datetime"),
        ({"timestamp": -5}, "timestamp", "must be RFC 3339 or non-negative epoch seconds"),
        ({"id": ""}, "id", "must be 1 to 256 characters"),
        ({"id": None}, "id", "Expected `int | str`"),
        ({"features": [1, 2]}, "features", "Expected `object`"),
        ({"extra": 1}, "extra", "is not a known field"),
    ],
)
def test_bad_record_is_named_by_index_id_and_field(override, field, reason):
    d = decode([rec(0), rec(1, **override), rec(2)])
    assert d.ids == ["r0", "r2"]
    (err,) = d.errors
    assert err.index == 1 and err.field == field and reason in err.reason
    if "id" not in override:
        assert err.record_id == "r1"


def test_rfc3339_and_naive_timestamps_are_utc():
    d = decode([rec(0, timestamp="2026-11-23T10:00:00Z"), rec(1, timestamp="2026-11-23T10:00:00")])
    assert d.timestamps[0] == d.timestamps[1] == 1795428000.0


def test_line_that_is_not_json_is_a_record_error():
    body = json.dumps(rec(0)).encode() + b"\n{not json\n"
    d = decode_records(body, "application/x-ndjson", SCHEMA, now=0)
    assert d.ids == ["r0"] and d.errors[0].index == 1 and "not valid JSON" in d.errors[0].reason


@pytest.mark.parametrize("body", [b"", b"   ", b"[1, 2", b"[{]"])
def test_unreadable_bodies_raise_payload_error(body):
    with pytest.raises(PayloadError):
        decode_records(body, "application/json", SCHEMA, now=0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(body):
    try:
        d = decode_records(body, "application/x-ndjson", SCHEMA, now=0)
    except PayloadError:
        return
    assert len(d.rows) + len(d.errors) == len(split_body(body, "application/x-ndjson"))


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=5)
        | st.integers(),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
        max_leaves=8,
    )
)
def test_arbitrary_json_values_are_rows_or_errors(value):
    body = json.dumps([value, rec(0)]).encode()
    d = decode_records(body, "application/json", SCHEMA, now=0)
    assert len(d.rows) + len(d.errors) == 2
    assert "r0" in d.ids


def test_two_objects_on_one_ndjson_line_are_one_bad_record():
    line = (json.dumps(rec(0)) + "," + json.dumps(rec(1))).encode()
    d = decode_records(
        line + b"\n" + json.dumps(rec(2)).encode(), "application/x-ndjson", SCHEMA, now=0
    )
    assert d.ids == ["r2"] and [e.index for e in d.errors] == [0]


def test_fast_and_per_record_paths_agree():
    good = [rec(i) for i in range(5)]
    fast = decode(good)
    slow = decode([*good, rec(9, score="x")])  # one bad record: decoded one by one
    assert slow.rows[:5] == fast.rows and slow.ids[:5] == fast.ids
    assert slow.timestamps[:5] == fast.timestamps
