from __future__ import annotations

import pytest
from sqlalchemy import select, text

from aims_agent.errors import StorageError
from aims_agent.storage.schema import nonconformities as table
from aims_agent.storage.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'db' / 'aims.db'}")
    yield s
    s.close()


def insert_window(key):
    def write(conn):  # nc_id is the primary key: inserting a key twice fails
        conn.execute(
            table.insert().values(
                nc_id=key,
                model="m",
                check_id="c",
                status="open",
                opened_at=0,
                last_seen_at=0,
                recurrences=0,
                body={},
            )
        )
        return key

    return write


def test_wal_and_full_sync_are_on(store):
    assert store.read(lambda c: c.execute(text("PRAGMA journal_mode")).scalar()) == "wal"


def test_one_failing_write_does_not_sink_its_group(store):
    futures = [store.submit(insert_window(m)) for m in ("a", "b", "a", "c")]  # 2nd "a" collides
    results = []
    for f in futures:
        try:
            results.append(f.result(10))
        except StorageError:
            results.append("failed")
    assert results == ["a", "b", "failed", "c"]
    rows = store.read(lambda c: c.execute(select(table.c.nc_id)).scalars().all())
    assert sorted(rows) == ["a", "b", "c"]


def test_close_drains_queued_writes_then_refuses(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'aims.db'}")
    futures = [s.submit(insert_window(f"m{i}")) for i in range(200)]
    s.close()
    assert all(f.done() and f.exception() is None for f in futures)
    with pytest.raises(StorageError):
        s.submit(insert_window("late"))
    s2 = Store(f"sqlite:///{tmp_path / 'aims.db'}")
    assert s2.read(lambda c: len(c.execute(select(table)).all())) == 200
    s2.close()


def test_unreachable_storage_is_a_storage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError):
        Store(f"sqlite:///{blocker / 'sub' / 'aims.db'}")
