"""The nonconformity lifecycle on a real store: transitions, requirements, effectiveness."""

from __future__ import annotations

import itertools
import json

import pytest
from sqlalchemy import select

from aims_agent.exporters.ledger_verify import verify
from aims_agent.exporters.lifecycle import (
    TRANSITIONS,
    Change,
    LifecycleError,
    apply,
    decode_change,
    overdue,
)
from aims_agent.storage.schema import nonconformities, nonconformity_events
from aims_agent.storage.store import Store
from tests.conftest import NC_ALLOWED, NC_PATHS, person, recorded, worker
from tests.exporters.conftest import CTX, run

ACTION = (
    b'{"corrective_action": {"description": "retrain", "owner": "ml-team",'
    b' "due_date": "2026-12-10"}}'
)


def opened(store: Store, t: float = 10.0) -> str:
    _, nc_id, _ = store.submit(recorded(run("breach", 0.9, t), CTX)).result()
    assert nc_id is not None
    return nc_id


def change(store: Store, nc_id: str, body: bytes, now: float = 100.0, by: str | None = None):
    """A person's change: bob's if it reviews or closes, else alice's (unless `by` says)."""
    actor = person(by) if by else worker(json.loads(body))
    return store.submit(apply(nc_id, decode_change(body), actor=actor, now=now)).result()


def events(store: Store, nc_id: str) -> list[tuple[str, str]]:
    q = (
        select(nonconformity_events.c.event, nonconformity_events.c.actor)
        .where(nonconformity_events.c.nc_id == nc_id)
        .order_by(nonconformity_events.c.event_id)
    )
    return [tuple(r) for r in store.read(lambda c: c.execute(q).all())]


def test_the_full_path_with_what_each_step_needs(store):
    nc = opened(store)
    assert change(store, nc, b'{"status": "investigating"}').status == "investigating"
    with pytest.raises(LifecycleError, match="needs the action"):
        change(store, nc, b'{"status": "corrective_action"}')
    change(store, nc, ACTION[:-1] + b', "status": "corrective_action"}')
    with pytest.raises(LifecycleError, match="status done"):
        change(store, nc, b'{"status": "verifying"}')
    change(
        store,
        nc,
        b'{"status": "verifying", "corrective_action": {"description": "retrain", '
        b'"owner": "ml-team", "due_date": "2026-12-10", "status": "done"}}',
    )
    with pytest.raises(LifecycleError, match="effectiveness review"):
        change(store, nc, b'{"status": "closed"}')
    review = (
        b'"effectiveness_review": {"effective": true, "verified_by": "bob", "evidence": "MR-1"}'
    )
    done = change(store, nc, b'{"status": "closed", ' + review + b"}")
    assert done.status == "closed" and done.events == ("updated", "closed")
    row = store.read(lambda c: c.execute(select(nonconformities)).one())
    assert row.open_key is None and row.body["closed_at"]
    assert ("opened", "aims-agent") in events(store, nc)
    assert events(store, nc)[-1] == ("closed", "bob")
    with pytest.raises(LifecycleError, match="does not change"):
        change(store, nc, b'{"comment": "reopen?"}')
    assert opened(store, 20.0) != nc  # a new breach opens a new record
    report = store.read(lambda c: verify(c))  # every change went into the ledger
    assert report.ok, report.first_problem


def test_the_transition_table_is_the_lifecycle_the_tests_know():
    assert {k: set(v) for k, v in TRANSITIONS.items()} == NC_ALLOWED


@pytest.mark.parametrize("start", list(NC_ALLOWED))
def test_every_transition_not_in_the_table_is_refused(store, start):
    others = [s for s in NC_ALLOWED if s != start and s not in NC_ALLOWED[start]]
    nc = opened(store)
    path = NC_PATHS[start]
    done = (
        b'{"corrective_action": {"description": "d", "owner": "o", "due_date": "2026-12-10",'
        b' "status": "done"}}'
    )
    change(store, nc, done)  # alice does the action, bob reviews it
    change(
        store,
        nc,
        b'{"effectiveness_review": {"effective": true, "verified_by": "b", "evidence": "e"}}',
    )
    for step in path:
        change(store, nc, b'{"status": "%s", "justification": "false alarm"}' % step.encode())
    for target in others:
        with pytest.raises(LifecycleError):
            change(store, nc, b'{"status": "%s", "justification": "x"}' % target.encode())
    status = store.read(lambda c: c.execute(select(nonconformities.c.status)).scalar())
    assert status == start


def test_rejecting_needs_a_justification(store):
    nc = opened(store)
    with pytest.raises(LifecycleError, match="justification"):
        change(store, nc, b'{"status": "rejected"}')
    change(store, nc, b'{"status": "rejected", "justification": "sensor outage, not drift"}')


def test_serious_incident_carries_the_art_73_deadline(store):
    nc = opened(store)
    done = change(
        store,
        nc,
        b'{"serious_incident": {"possible": true, "kind": "death",'
        b' "aware_at": "2026-12-01T08:00:00Z"}, "severity": "major"}',
    )
    assert "escalated" in done.events
    body = store.read(lambda c: c.execute(select(nonconformities.c.body)).scalar())
    assert body["possible_serious_incident"]["art73_reporting_deadline"] == "2026-12-11T08:00:00Z"


def test_past_due_is_recorded_once_per_due_date(store):
    nc = opened(store)
    change(store, nc, ACTION)
    day = 86400.0
    dec_11 = 1796947200.0  # 2026-12-11T00:00:00Z
    assert store.submit(overdue(dec_11 - 2 * day)).result() == []
    assert store.submit(overdue(dec_11)).result() == [(nc, "m")]
    store.submit(overdue(dec_11 + day)).result()
    assert [e for e, _ in events(store, nc)].count("past_due") == 1


def test_effectiveness_evidence_after_n_passing_runs(store):
    nc = opened(store)
    t = itertools.count(20)
    for _ in range(2):
        store.submit(recorded(run("pass", 0.1, next(t)), CTX)).result()
    assert "effectiveness_evidence" not in [e for e, _ in events(store, nc)]
    store.submit(recorded(run("pass", 0.1, next(t)), CTX)).result()  # the 3rd (CTX default)
    store.submit(recorded(run("pass", 0.1, next(t)), CTX)).result()  # noted once only
    names = [e for e, _ in events(store, nc)]
    assert names.count("effectiveness_evidence") == 1
    assert store.read(lambda c: verify(c)).ok
    row = store.read(lambda c: c.execute(select(nonconformities)).one())
    assert (
        row.status == "open" and len(row.body["effectiveness_evidence"]["monitoring_records"]) == 3
    )


def test_unknown_fields_and_bad_values_are_refused():
    import msgspec

    with pytest.raises(msgspec.ValidationError, match="status"):
        decode_change(b'{"status": "done"}')
    with pytest.raises(msgspec.ValidationError, match="colour"):
        decode_change(b'{"colour": "red"}')
    assert decode_change(b"{}") == Change()


def test_segregation_of_duties_is_on_by_default_and_configurable(store):
    from aims_agent.config import SegregationConfig
    from aims_agent.errors import SegregationOfDutiesError
    from aims_agent.records import Actor

    machine = Actor(kind="machine", subject="pipeline", name="pipeline", client="pipeline")
    done = (
        b'{"status": "verifying", "corrective_action": {"description": "retrain", '
        b'"owner": "ml-team", "due_date": "2026-12-10", "status": "done"}}'
    )
    review = b'{"effectiveness_review": {"effective": true, "verified_by": "x", "evidence": "e"}}'
    nc = opened(store)
    change(store, nc, b'{"status": "investigating"}', by="alice")
    change(store, nc, ACTION[:-1] + b', "status": "corrective_action"}', by="alice")
    change(store, nc, done, by="alice")
    with pytest.raises(SegregationOfDutiesError, match="'alice' recorded the corrective action"):
        change(store, nc, review, by="alice")
    with pytest.raises(SegregationOfDutiesError, match="only a person can make it closed"):
        store.submit(
            apply(nc, decode_change(b'{"status": "closed"}' [:-1] + b", " + review[1:]),
                  actor=machine, now=200.0)
        ).result()  # fmt: skip
    # the same person may do both where the organisation switches the rule off
    off = SegregationConfig(reviewer_not_doer=False)
    store.submit(
        apply(nc, decode_change(review), actor=person("alice"), now=201.0, duties=off)
    ).result()
    status = store.read(lambda c: c.execute(select(nonconformities.c.status)).scalar())
    assert status == "verifying"
    change(store, nc, b'{"status": "closed"}', by="bob")  # a second person closes it
    # a machine closes the agent's record only where that rule is off
    nc2 = opened(store, t=500.0)
    free = SegregationConfig(person_closes_agent_records=False)
    reject = decode_change(b'{"status": "rejected", "justification": "sensor outage"}')
    store.submit(apply(nc2, reject, actor=machine, now=600.0, duties=free)).result()
    assert store.read(lambda c: verify(c)).ok
