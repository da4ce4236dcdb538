from __future__ import annotations

import pytest

from aims_agent.collectors.kserve import Event, PairBuffer, parse_event
from aims_agent.errors import PayloadError


def ev(ce_id: str, half: str) -> Event:
    return Event(ce_id=ce_id, half=half, body=f"{half}-{ce_id}".encode())  # type: ignore[arg-type]


def test_pairs_in_either_order():
    b = PairBuffer(timeout=10, capacity=10)
    assert b.add(ev("a", "response"), now=0) == (None, 0)
    assert b.add(ev("a", "request"), now=1) == ((b"request-a", b"response-a"), 0)
    assert len(b) == 0


def test_halves_time_out_and_the_oldest_are_evicted_when_full():
    b = PairBuffer(timeout=10, capacity=2)
    b.add(ev("a", "request"), now=0)
    b.add(ev("b", "request"), now=5)
    assert b.add(ev("c", "request"), now=6) == (None, 1)  # full: "a" goes
    assert b.add(ev("a", "response"), now=7) == (None, 1)  # "a" is gone; "b" evicted for it
    assert b.add(ev("c", "response"), now=17) == (None, 1)  # "c" timed out (11 s), "a" kept
    assert len(b) == 2


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"ce-type": "org.kubeflow.serving.inference.request"}, "missing ce-id"),
        ({"ce-id": "x", "ce-type": "dev.knative.other"}, "is not one of"),
    ],
)
def test_events_without_cloudevent_headers_are_refused(headers, message):
    with pytest.raises(PayloadError, match=message):
        parse_event(headers, b"{}")
