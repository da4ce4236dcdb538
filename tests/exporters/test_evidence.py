from __future__ import annotations

import threading
from dataclasses import replace

from sqlalchemy import create_engine, select

from aims_agent.records import Assessment, Measurement, Threshold
from aims_agent.storage.schema import monitoring_records, nonconformities, nonconformity_events
from aims_agent.storage.store import Store
from tests.conftest import recorded
from tests.exporters.conftest import CTX, run


def test_breaches_open_one_record_then_recur(store):
    outcomes = [
        store.submit(recorded(run(v, x, t), CTX)).result()[:2]
        for t, (v, x) in enumerate(
            [("pass", 0.1), ("breach", 0.6), ("breach", 0.7), ("pass", 0.2), ("breach", 0.8)],
            start=1,
        )
    ]
    assert outcomes[0][1] is None and outcomes[3][1] is None
    nc_ids = {o[1] for o in outcomes if o[1]}
    assert len(nc_ids) == 1
    (nc,) = store.read(lambda c: c.execute(select(nonconformities)).all())
    assert nc.recurrences == 2 and nc.status == "open" and nc.open_key == "m/drift"
    body = nc.body
    assert body["detected_by"]["monitoring_record_id"] == outcomes[1][0]
    assert body["requirement"]["controls"] == ["A.6.2.6", "A.7.4"]
    assert body["severity"] == "major" and body["possible_serious_incident"] is False
    assert body["nature"]["affected"] == ["age"]
    assert "drift_share = 0.6" in body["nature"]["observed"]
    for field in (
        "reaction",
        "cause_analysis",
        "corrective_action",
        "effectiveness_review",
        "management_system_change",
    ):
        assert field in body
    events = store.read(lambda c: c.execute(select(nonconformity_events.c.event)).scalars().all())
    assert events == ["opened", "recurred", "recurred"]


def test_monitoring_record_carries_clause_9_1_fields(store):
    mon_id, _, opened = store.submit(recorded(run("pass", 0.1, 5.0), CTX)).result()
    assert not opened
    body = store.read(
        lambda c: c.execute(
            select(monitoring_records.c.body).where(monitoring_records.c.record_id == mon_id)
        ).scalar_one()
    )
    assert body["record_id"] == mon_id and body["schema_version"]
    assert body["system"] == {
        "ai_system_id": "AIS-1",
        "model": "m",
        "model_version": "2.0",
        "environment": "test",
    }
    assert body["check"]["kind"] == "drift" and body["check"]["definition"]
    assert body["method"]["reference"]["sha256"] == "f" * 64
    assert body["method"]["config_sha256"] == "c" * 64
    assert body["method"]["sample_sizes"] == {"reference": 1000, "current": 500}
    assert body["window"]["records_seen"] == 900
    assert body["criteria"]["threshold"]["breaches_when"] == "value >= breach"
    assert body["criteria"]["threshold_version"] == "c" * 64
    assert body["result"]["outcome"] == "pass" and body["result"]["value"] == 0.1
    assert body["controls"]["eu_ai_act"] == ["Art. 72(2)"]
    assert body["created_at"].endswith("Z") and body["nonconformity_id"] is None


def test_consecutive_breach_rule_delays_opening(store):
    ctx = replace(CTX, consecutive_breaches=3)
    seq = [
        ("breach", 0.6),
        ("breach", 0.6),
        ("pass", 0.1),
        ("breach", 0.7),
        ("breach", 0.7),
        ("breach", 0.8),
        ("breach", 0.9),
    ]
    opened = [
        store.submit(recorded(run(v, x, t), ctx)).result()[1]
        for t, (v, x) in enumerate(seq, start=1)
    ]
    # the pass resets the streak; the third breach in a row opens, the next recurs
    assert opened[:5] == [None] * 5
    assert opened[5] is not None and opened[6] == opened[5]
    bodies = store.read(
        lambda c: (
            c.execute(select(monitoring_records.c.body).order_by(monitoring_records.c.executed_at))
            .scalars()
            .all()
        )
    )
    assert [b["result"]["breach_streak"]["runs"] for b in bodies] == [1, 2, 0, 1, 2, 3, 3]


def test_nature_names_the_breaching_measurement_among_several_headlines(store):
    ok = Measurement(
        check_id="fair",
        kind="fairness",
        metric="demographic_parity_ratio",
        feature="gender",
        value=0.93,
        method="dp",
        headline=True,
        n_current=900,
        threshold=Threshold(breach=0.8, direction="below", inclusive=False),
    )
    bad = Measurement(
        check_id="fair",
        kind="fairness",
        metric="equalized_odds_difference",
        feature="gender",
        value=0.12,
        method="eo",
        headline=True,
        n_current=900,
        threshold=Threshold(breach=0.1, inclusive=False),
    )
    r = replace(
        run("breach", 0.0, 1.0),
        check_id="fair",
        kind="fairness",
        assessments=(
            Assessment(measurement=ok, verdict="pass"),
            Assessment(measurement=bad, verdict="breach"),
        ),
    )
    assert r.headline.measurement is bad
    mon_id, nc_id, opened = store.submit(recorded(r, CTX)).result()
    assert opened
    (nc,) = store.read(lambda c: c.execute(select(nonconformities.c.body)).scalars().all())
    assert nc["nature"]["observed"] == "equalized_odds_difference[gender] = 0.12"
    assert "value > breach" in nc["nature"]["expected"]


def test_a_writer_racing_to_open_the_same_record_recurs_on_it(postgres_url):
    """Two agents on one PostgreSQL both find no open record; the second insert waits for the
    first transaction and, once it commits, counts its breach on the first one's record."""
    Store(postgres_url).close()  # the schema
    engine = create_engine(postgres_url)
    first, second = recorded(run("breach", 0.6, 1), CTX), recorded(run("breach", 0.7, 2), CTX)
    out = {}
    with engine.connect() as a, engine.connect() as b:
        _, nc_id, opened = first(a)  # opened, not committed yet
        assert opened
        racer = threading.Thread(target=lambda: out.update(second=second(b)))
        racer.start()
        racer.join(0.5)
        assert racer.is_alive()  # blocked on the uncommitted record's open_key
        a.commit()
        racer.join(10)
        b.commit()
    assert out["second"][1:] == (nc_id, False)
    with engine.connect() as conn:
        rows = conn.execute(select(nonconformities.c.nc_id, nonconformities.c.recurrences)).all()
        events = conn.execute(select(nonconformity_events.c.event)).scalars().all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(nc_id, 1)]
    assert sorted(events) == ["opened", "recurred"]
