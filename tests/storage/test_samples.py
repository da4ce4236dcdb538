from __future__ import annotations

import numpy as np
from sqlalchemy import func, select

from aims_agent.agent.window import Window
from aims_agent.config import SchemaConfig
from aims_agent.records import Snapshot
from aims_agent.schema import ModelSchema
from aims_agent.storage.samples import read_log, write_snapshot
from aims_agent.storage.schema import sample_log
from tests.conftest import persist

SCHEMA = ModelSchema(SchemaConfig(numeric=("x",), categorical=("c",), prediction="p"))


def window(seed=0, vocab=("a", "b")):
    return Window(
        SCHEMA,
        capacity=50,
        span=100,
        reference_categories={"c": vocab},
        rng=np.random.default_rng(seed),
    )


def batch(i, n=40):
    rows = [
        (float(k) if k % 7 else None, f"v{k % 5}" if k % 3 else None, k % 2)
        for k in range(i * n, (i + 1) * n)
    ]
    return rows, [f"id{k}" for k in range(i * n, (i + 1) * n)], [float(k) for k in range(n)]


def rebuild(store, vocab=("a", "b")):
    w = window(seed=99, vocab=vocab)
    for e in store.read(lambda c: read_log(c, "m", w.window_start(10.0))):
        if isinstance(e, Snapshot):
            w.restore(e)
        else:
            w.replay([e])
    return w


def same(a, b):
    sa, sb = a.snapshot(now=10), b.snapshot(now=10)
    assert sa.record_ids == sb.record_ids and sa.info == sb.info
    for name in sa.columns:
        la, lb = sa.vocabularies.get(name), sb.vocabularies.get(name)
        if la is None:
            np.testing.assert_array_equal(sa.columns[name], sb.columns[name])
        else:  # compare labels: codes may differ between vocabularies
            assert [la[k] if k >= 0 else None for k in sa.columns[name]] == [
                lb[k] if k >= 0 else None for k in sb.columns[name]
            ]


def test_log_of_batches_rebuilds_the_window(store):
    w = window()
    for i in range(6):
        persist(store, w, *batch(i), now=10.0)
    same(w, rebuild(store))


def test_snapshot_compacts_the_log_and_later_batches_replay_on_top(store):
    w = window()
    for i in range(4):
        persist(store, w, *batch(i), now=10.0)
    store.submit(write_snapshot("m", w.export)).result()
    for i in range(4, 7):
        persist(store, w, *batch(i), now=10.0)
    kinds = store.read(
        lambda c: (
            c.execute(select(sample_log.c.kind).order_by(sample_log.c.entry_id)).scalars().all()
        )
    )
    assert kinds == ["snapshot", "batch", "batch", "batch"]
    same(w, rebuild(store))


def test_restore_maps_categories_through_labels(store):
    w = window()
    for i in range(3):
        persist(store, w, *batch(i), now=10.0)
    store.submit(write_snapshot("m", w.export)).result()
    # the reference changed between runs: its vocabulary now starts differently
    same(w, rebuild(store, vocab=("zz", "v3", "b")))


def test_new_window_drops_the_old_windows_log(store):
    w = window()
    persist(store, w, *batch(0), now=10.0)
    persist(store, w, *batch(1), now=150.0)  # next window
    starts = store.read(
        lambda c: c.execute(
            select(sample_log.c.window_start, func.count()).group_by(sample_log.c.window_start)
        ).all()
    )
    assert [tuple(r) for r in starts] == [(100.0, 1)]


def test_retention_purges_old_windows_only(store):
    from aims_agent.storage.samples import purge_samples

    w = window()
    persist(store, w, *batch(0), now=10.0)  # window [0, 100)
    # window [100, 200): drops the first from the log anyway
    persist(store, w, *batch(1), now=150.0)
    assert store.submit(purge_samples(100.0)).result() == 0
    assert store.submit(purge_samples(101.0)).result() == 1
    assert (
        store.read(lambda c: c.execute(select(func.count()).select_from(sample_log)).scalar()) == 0
    )


def test_aliases_survive_the_log_and_snapshots(store):
    w = window()
    rows, ids, stamps = batch(0, n=10)
    aliases = [(f"body{k}", f"echo{k}") if k % 2 else () for k in range(10)]
    persist(store, w, rows, ids, stamps, now=10.0, aliases=aliases)
    rebuilt = rebuild(store)
    same(w, rebuilt)
    assert rebuilt.holds("body1") and rebuilt.holds("echo9") and not rebuilt.holds("body0")
    store.submit(write_snapshot("m", w.export)).result()
    assert rebuild(store).holds("echo7")
