from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from aims_agent.agent.window import Window
from aims_agent.config import SchemaConfig
from aims_agent.schema import ModelSchema

SCHEMA = ModelSchema(SchemaConfig(numeric=("x",), categorical=("c",), prediction="p"))


def make_window(capacity: int, span: float = 100.0, seed: int = 0) -> Window:
    return Window(
        SCHEMA,
        capacity=capacity,
        span=span,
        reference_categories={"c": ("a", "b")},
        rng=np.random.default_rng(seed),
    )


def rows(start: int, n: int) -> tuple[list[tuple], list[str], list[float]]:
    return (
        [(float(i), "a" if i % 2 else "z", "1") for i in range(start, start + n)],
        [f"id{i}" for i in range(start, start + n)],
        [1000.0 + i for i in range(start, start + n)],
    )


def test_fills_then_stays_bounded():
    w = make_window(1000)
    for b in range(50):
        w.offer(*rows(b * 500, 500), now=10.0)
    snap = w.snapshot(now=10.0)
    assert snap.info.seen == 25_000 and snap.info.sampled == 1000
    assert len(snap.columns["x"]) == 1000
    assert w._alloc <= 1000  # memory never exceeds the cap
    assert len(set(snap.record_ids)) == 1000  # every slot holds a distinct record


def test_reservoir_is_uniform_over_the_stream():
    # each of 20k items should be kept with probability 1000/20000; KS on kept positions
    w = make_window(1000, seed=3)
    for b in range(40):
        w.offer(*rows(b * 500, 500), now=1.0)
    kept = w.snapshot(now=1.0).columns["x"]
    assert stats.kstest(kept / 20_000, "uniform").pvalue > 0.001
    assert abs(kept.mean() / 20_000 - 0.5) < 0.05


def test_within_batch_collision_keeps_the_later_row():
    w = make_window(1)
    w.offer(*rows(0, 1), now=1.0)
    sampled = w.offer(*rows(1, 10_000), now=1.0)
    # whatever survived in the batch, storage gets exactly the final content of each slot
    assert len(sampled.slots) == len(set(sampled.slots)) <= 1
    if sampled.slots:
        assert w.snapshot(now=1.0).record_ids[0] == f"id{1 + sampled.positions[0]}"


def test_categorical_codes_extend_the_reference_vocabulary():
    w = make_window(10)
    w.offer([(1.0, "b", "1"), (2, "new", 1), (None, None, True)], ["a", "b", "c"], [0.0] * 3, now=1)
    snap = w.snapshot(now=1)
    assert snap.vocabularies["c"][:3] == ("a", "b", "new")
    assert snap.columns["c"].tolist() == [1, 2, -1]
    assert snap.vocabularies["p"] == ("1", "True")  # ints and booleans become text labels
    assert math.isnan(snap.columns["x"][2])


def test_tumbling_window_rolls_over():
    w = make_window(100, span=60)
    w.offer(*rows(0, 10), now=30)
    assert w.snapshot(now=59).info.seen == 10
    snap = w.snapshot(now=61)
    assert snap.info.seen == 0 and snap.info.start == 60


def test_export_then_replay_gives_back_the_same_window():
    w = make_window(100)
    for b in range(5):
        w.offer(*rows(b * 50, 50), now=5)
    w2 = make_window(100)
    w2.restore(w.export())
    a, b = w.snapshot(now=5), w2.snapshot(now=5)
    assert a.record_ids == b.record_ids and a.info == b.info
    for name in a.columns:
        np.testing.assert_array_equal(a.columns[name], b.columns[name])


@pytest.mark.parametrize("capacity", [1, 7, 1000])
def test_sample_size_is_min_of_seen_and_capacity(capacity):
    w = make_window(capacity)
    w.offer(*rows(0, 5), now=1)
    assert w.snapshot(now=1).info.sampled == min(5, capacity)


LABELLED = ModelSchema(
    SchemaConfig(numeric=("x",), categorical=("c",), prediction="p", label="y", sensitive=("g",))
)


def test_late_labels_join_by_id_with_ttl():
    w = Window(
        LABELLED, capacity=100, span=1000, reference_categories={}, rng=np.random.default_rng(0)
    )
    rows = [(float(i), "a", "1", None, None) for i in range(3)]
    w.offer(rows, ["r0", "r1", "r2"], [10.0, 10.0, 500.0], now=600)
    out = w.label(
        ["r0", "nope", "r2", "r1"],
        [{"y": "1", "g": "F"}, {"y": "0"}, {"y": "0"}, {"y": "1"}],
        now=600,
        ttl=300,
    )
    assert (out.unknown, out.expired) == (1, 2)  # r0 and r1 are 590 s old
    assert out.batches[0].slots == [2]
    assert out.batches[0].rows == [(2.0, "a", "1", "0", None)]
    snap = w.snapshot(now=600)
    labels = [snap.vocabularies["y"][k] if k >= 0 else None for k in snap.columns["y"]]
    assert labels == [None, None, "0"]
    out = w.label(["r0"], [{"y": "1", "g": "F"}], now=600, ttl=None)
    assert out.batches[0].rows == [(0.0, "a", "1", "1", "F")]


def test_a_label_joins_by_any_id_the_record_is_known_by():
    w = Window(
        LABELLED, capacity=2, span=1000, reference_categories={}, rng=np.random.default_rng(0)
    )
    rows = [(float(i), "a", "1", None, None) for i in range(2)]
    w.offer(rows, ["hdr-0", "hdr-1"], [10.0, 10.0], now=20, aliases=[("body-0",), ()])
    out = w.label(["body-0", "hdr-1", "nope"], [{"y": "1"}] * 3, now=20, ttl=None)
    assert (out.batches[0].slots, out.unknown) == ([0, 1], 1)
    # the join is stored with the record's ids, so a replay keeps every one of them
    assert out.batches[0].ids == ["hdr-0", "hdr-1"]
    assert out.batches[0].aliases == [("body-0",), ()]
    again = Window(
        LABELLED, capacity=2, span=1000, reference_categories={}, rng=np.random.default_rng(0)
    )
    again.replay(list(out.batches))
    assert again.holds("body-0") and again.holds("hdr-0")
    restored = Window(
        LABELLED, capacity=2, span=1000, reference_categories={}, rng=np.random.default_rng(0)
    )
    restored.restore(w.export())
    assert restored.holds("body-0") and restored.export().aliases == [("body-0",), ()]
    # a record that replaces another in its slot takes the old one's ids off the index
    one = Window(
        LABELLED, capacity=1, span=1000, reference_categories={}, rng=np.random.default_rng(0)
    )
    one.offer(rows[:1], ["hdr-0"], [10.0], now=20, aliases=[("body-0",)])
    n = 10_000  # the first record survives them all with probability 1 / (n + 1)
    one.offer(rows[:1] * n, [f"n{i}" for i in range(n)], [10.0] * n, now=20)
    assert not one.holds("hdr-0") and not one.holds("body-0")
    assert one.export().aliases == []


def test_an_oversight_check_added_later_restores_what_was_stored_before():
    """Rows and snapshots stored before the model had an oversight check (fewer columns) load
    into the wider window with the new columns missing; a review then joins and is kept."""
    from aims_agent.records import Contents
    from aims_agent.schema import REVIEW_SECONDS, REVIEWED

    old = make_window(100)
    old.offer(*rows(0, 10), now=1.0)
    snap = old.export()
    wide = ModelSchema(
        SchemaConfig(numeric=("x",), categorical=("c",), prediction="p"), oversight=True
    )

    def new() -> Window:
        return Window(
            wide, capacity=100, span=100.0, reference_categories={"c": ("a", "b")},
            rng=np.random.default_rng(0),
        )  # fmt: skip

    restored = new()
    restored.restore(snap)
    replayed = new()
    r, ids, ts = rows(0, 10)
    replayed.replay(
        [Contents(window_start=snap.window_start, seen=10, slots=list(range(10)), rows=r,
                  ids=ids, timestamps=ts)]
    )  # fmt: skip
    for w in (restored, replayed):
        data = w.snapshot(now=1.0)
        assert np.isnan(data.columns[REVIEWED]).all() and data.info.sampled == 10
        assert data.columns["x"].tolist() == [float(i) for i in range(10)]
        joined = w.label(["id3"], [{REVIEWED: 1.0, REVIEW_SECONDS: 1063.0}], now=1.0, ttl=None)
        assert len(joined.batches[0].slots) == 1
        data = w.snapshot(now=1.0)
        assert data.columns[REVIEWED][3] == 1.0
        assert data.columns[REVIEW_SECONDS][3] == 60.0  # 1063 - the record's time, 1003
