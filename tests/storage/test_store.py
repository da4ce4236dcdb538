from __future__ import annotations

import pytest
from sqlalchemy import select, text

from aims_agent.errors import StorageError
from aims_agent.storage.schema import nonconformities as table
from aims_agent.storage.store import Store
from tests.conftest import free_port


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


def test_durability_settings_reach_the_database(storage_url):
    checks = {  # per backend: the query and what it answers for durability full, normal
        "sqlite": ("PRAGMA synchronous", 2, 1),
        "postgresql": ("SHOW synchronous_commit", "on", "off"),
    }
    for durability, column in (("full", 1), ("normal", 2)):
        s = Store(storage_url, durability=durability)
        query = checks[s.dialect]
        assert s.read(lambda c, q=query[0]: c.execute(text(q)).scalar()) == query[column]
        if s.dialect == "sqlite":
            assert s.read(lambda c: c.execute(text("PRAGMA journal_mode")).scalar()) == "wal"
        else:
            level = s.read(lambda c: c.execute(text("SHOW transaction_isolation")).scalar())
            assert level == "read committed"
        s.close()


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


def test_close_drains_queued_writes_then_refuses(storage_url):
    s = Store(storage_url)
    futures = [s.submit(insert_window(f"m{i}")) for i in range(200)]
    s.close()
    assert all(f.done() and f.exception() is None for f in futures)
    with pytest.raises(StorageError):
        s.submit(insert_window("late"))
    s2 = Store(storage_url)
    assert s2.read(lambda c: len(c.execute(select(table)).all())) == 200
    s2.close()


def test_unreachable_storage_is_a_storage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError):
        Store(f"sqlite:///{blocker / 'sub' / 'aims.db'}")
    with pytest.raises(StorageError, match="cannot open storage"):  # nothing listens there
        Store(f"postgresql+psycopg://aims@127.0.0.1:{free_port()}/aims")
    with pytest.raises(StorageError, match="supported: sqlite, postgresql"):
        Store("mysql://aims@127.0.0.1/aims")


def test_a_write_whose_awaiter_is_cancelled_still_commits(store):
    """Cancelling the task that awaits a write (a drain stopped at shutdown) neither drops
    the write nor stops the writer: later writes still commit."""
    import asyncio
    import threading

    started, release = threading.Event(), threading.Event()

    def slow(conn):
        started.set()
        release.wait(10)
        return insert_window("slow")(conn)

    async def main() -> None:
        waiting = asyncio.ensure_future(store.write(slow))
        await asyncio.to_thread(started.wait, 10)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        release.set()
        assert await asyncio.wait_for(store.write(insert_window("after")), 10) == "after"

    asyncio.run(main())
    rows = store.read(lambda c: c.execute(select(table.c.nc_id)).scalars().all())
    assert sorted(rows) == ["after", "slow"]
