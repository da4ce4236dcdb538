from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import stats

from aims_agent.agent.sliding import SlidingWindow
from aims_agent.config import SchemaConfig, WindowConfig
from aims_agent.records import Snapshot
from aims_agent.schema import ModelSchema
from aims_agent.storage.samples import read_log, write_snapshot
from aims_agent.storage.store import Store
from tests.conftest import persist

SCHEMA = ModelSchema(SchemaConfig(numeric=("x",), categorical=("c",), prediction="p"))


def sliding(capacity: int = 600, seed: int = 0) -> SlidingWindow:
    # span 60 s in 6 panes of 10 s, each pane keeps capacity / 6 rows
    return SlidingWindow(
        SCHEMA,
        capacity=capacity,
        span=60.0,
        step=10.0,
        reference_categories={"c": ("a", "b")},
        rng=np.random.default_rng(seed),
    )


def rows(start: int, n: int, label: str = "a") -> tuple[list[tuple], list[str], list[float]]:
    return (
        [(float(i), label, "1") for i in range(start, start + n)],
        [f"id{i}" for i in range(start, start + n)],
        [float(i) for i in range(start, start + n)],
    )


def test_records_slide_out_after_the_span():
    w = sliding()
    w.offer(*rows(0, 10), now=5.0)
    w.offer(*rows(10, 10), now=35.0)
    snap = w.snapshot(now=59.0)
    assert snap.info.seen == 20 and snap.info.start == 0.0
    snap = w.snapshot(now=65.0)  # the pane of [0, 10) has left the window [10, 70)
    assert snap.info.seen == 10 and snap.info.sampled == 10
    assert snap.record_ids == tuple(f"id{i}" for i in range(10, 20))
    assert snap.info.start == 30.0 and snap.info.end == 65.0


def test_memory_is_bounded_by_max_sample():
    w = sliding(capacity=600)
    for t in range(0, 120, 2):
        w.offer(*rows(t * 1000, 1000), now=float(t))
    assert w.size <= 600
    assert w.snapshot(now=119.0).info.sampled <= 600


def test_the_merged_sample_is_uniform_over_uneven_panes():
    # pane [0, 10) sees 10 000 records of category "a", pane [10, 20) 1 000 of "b": a uniform
    # sample of the window holds "b" in about 1 of 11 rows, although both reservoirs are full
    w = sliding(capacity=600)
    w.offer(*rows(0, 10_000, "a"), now=5.0)
    w.offer(*rows(10_000, 1_000, "b"), now=15.0)
    snap = w.snapshot(now=19.0)
    assert snap.info.seen == 11_000
    labels = [snap.vocabularies["c"][k] for k in snap.columns["c"]]
    assert labels.count("a") == 100 and labels.count("b") == 10  # 100 / 10 000 = 10 / 1 000
    x = snap.columns["x"][np.asarray(labels) == "a"]
    assert stats.kstest(x, stats.uniform(0, 10_000).cdf).pvalue > 0.01


def test_unseen_categories_of_different_panes_keep_their_labels():
    w = sliding()
    w.offer(*rows(0, 3, "new1"), now=5.0)
    w.offer(*rows(3, 3, "new2"), now=15.0)
    snap = w.snapshot(now=19.0)
    assert snap.vocabularies["c"][:2] == ("a", "b")
    assert [snap.vocabularies["c"][k] for k in snap.columns["c"]] == ["new1"] * 3 + ["new2"] * 3


def test_labels_join_in_whichever_pane_holds_the_record():
    w = sliding()
    w.offer(*rows(0, 5), now=5.0)
    w.offer(*rows(5, 5), now=25.0)
    out = w.label(["id1", "id7", "nope"], [{"p": "0"}, {"p": "0"}, {"p": "1"}], now=26.0, ttl=None)
    assert out.unknown == 1 and out.expired == 0
    assert sorted((b.window_start, b.ids[0]) for b in out.batches) == [
        (0.0, "id1"),
        (20.0, "id7"),
    ]
    snap = w.snapshot(now=26.0)
    p = dict(zip(snap.record_ids, snap.columns["p"], strict=True))
    assert snap.vocabularies["p"][p["id1"]] == "0" and snap.vocabularies["p"][p["id2"]] == "1"


def test_panes_are_stored_and_rebuilt(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'aims.db'}")
    try:
        w = sliding(capacity=60)  # 10 rows per pane
        persist(store, w, *rows(0, 8), now=5.0)  # will slide out
        persist(store, w, *rows(8, 8), now=25.0)
        store.submit(write_snapshot("m", w.export)).result()  # snapshots the [20, 30) pane only
        persist(store, w, *rows(16, 30), now=28.0)
        persist(store, w, *rows(46, 8), now=75.0)  # new pane: [0, 10) leaves the window and the log
        copy = sliding(capacity=60, seed=5)
        since = copy.window_start(75.0) - copy.horizon
        for e in store.read(lambda c: read_log(c, "m", since)):
            if isinstance(e, Snapshot):
                copy.restore(e)
            else:
                copy.replay([e])
        a, b = w.snapshot(now=75.0), copy.snapshot(now=75.0)
        assert a.info == b.info and a.info.seen == 46 and a.info.start == 20.0
        assert a.info.sampled == 10 + 2  # 10 of 38 in [20, 30), so 2 of the 8 in [70, 80)

        def panes(x: SlidingWindow) -> dict[float, list[str]]:
            return {s: sorted(p.export().ids) for s, p in x._panes.items()}

        assert panes(w) == panes(copy)
        starts = store.read(lambda c: {e.window_start for e in read_log(c, "m", 0.0)})
        assert starts == {20.0, 70.0}
    finally:
        store.close()


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"kind": "sliding", "span_seconds": 60, "step_seconds": 7}, "must divide"),
        ({"kind": "sliding", "span_seconds": 60, "step_seconds": 60}, "2 to"),
        ({"span_seconds": 60, "step_seconds": 10}, "only for kind: sliding"),
        ({"kind": "sliding", "span_seconds": 60, "step_seconds": 1, "max_sample": 10}, "steps"),
    ],
)
def test_window_config_is_checked(cfg, message):
    with pytest.raises(ValidationError, match=message):
        WindowConfig(**cfg)
    assert WindowConfig(kind="sliding", span_seconds=3600).step == 300
