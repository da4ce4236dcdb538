"""The evidence store: one writer thread with group commit, readers on their own connections.

Every write is a function of a SQLAlchemy `Connection`, queued to the single writer. The writer
takes everything that is waiting, runs it in one transaction and commits once (one fsync for
many HTTP requests), then resolves each caller's future. If the group fails, each write is
retried alone so that one bad write cannot sink the others. A caller is acknowledged only after
its transaction has committed: that is what makes an acknowledged record durable.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from importlib import import_module
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import URL, Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from aims_agent.canonical import canonical
from aims_agent.errors import AimsError, StorageError
from aims_agent.storage.migrate import upgrade

log = logging.getLogger(__name__)
T = TypeVar("T")
Write = Callable[[Connection], Any]


class _Upserts(Mapping[str, Callable[..., Any]]):
    """Dialect name -> INSERT construct with ON CONFLICT support, the dialect's module imported
    when first asked for: a SQLite store never loads the PostgreSQL dialect (22 ms of a
    one-shot `aims-agent check`)."""

    _modules = {
        "sqlite": "sqlalchemy.dialects.sqlite",
        "postgresql": "sqlalchemy.dialects.postgresql",
    }

    def __getitem__(self, dialect: str) -> Callable[..., Any]:
        return import_module(self._modules[dialect]).insert  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)


UPSERT = _Upserts()

_STOP = object()
# PostgreSQL's "serialization failure" and "deadlock detected": the write lost a race with
# another agent's transaction and is tried again (after a rollback it sees what that one did)
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})
_RETRIES = 3


def _sqlite_pragmas(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()


def _json_text(value: Any) -> str:
    """JSON columns are written as canonical JSON (RFC 8785): the text of a record's body is
    then the very bytes the evidence ledger hashed, which verify can hash without parsing."""
    return canonical(value).decode()


def _sqlite_engine(url: URL, durability: str) -> Engine:
    if url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True, json_serializer=_json_text)
    _sqlite_pragmas(engine, "FULL" if durability == "full" else "NORMAL")
    return engine


def _postgresql_engine(url: URL, durability: str) -> Engine:
    # READ COMMITTED: each statement sees what other agents committed before it, which the
    # nonconformity insert (ON CONFLICT on open_key, then read the winner) relies on.
    # durability "normal" is synchronous_commit off: survives the agent, not the server's host.
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    sync = "on" if durability == "full" else "off"
    return create_engine(
        url,
        json_serializer=_json_text,
        pool_pre_ping=True,
        pool_size=8,
        max_overflow=8,
        pool_recycle=3600,
        isolation_level="READ COMMITTED",
        connect_args={
            "connect_timeout": 10,
            "application_name": "aims-agent",
            "options": f"-c synchronous_commit={sync}",
        },
    )


ENGINES: dict[str, Callable[[URL, str], Engine]] = {
    "sqlite": _sqlite_engine,
    "postgresql": _postgresql_engine,
}


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES


class Store:
    """Owns the engine and the writer thread; `close` drains pending writes first."""

    def __init__(self, url: str, *, durability: str = "full", max_group: int = 256) -> None:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend not in ENGINES:
            raise StorageError(
                f"storage {backend!r} is not supported; supported: {', '.join(ENGINES)}"
            )
        try:
            self.engine = ENGINES[backend](parsed, durability)
            try:
                upgrade(self.engine)
            except Exception:
                self.engine.dispose()  # close the pool's connections: nothing else will
                raise
        except (SQLAlchemyError, OSError, ImportError) as exc:
            raise StorageError(f"cannot open storage {parsed.render_as_string()}: {exc}") from exc
        self.dialect = self.engine.dialect.name
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        # when the last write failed for storage's own reasons (a full disk, a lost database),
        # until one succeeds: what /readyz reports
        self.failing_since: float | None = None
        self._max_group = max_group
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="aims-store-writer", daemon=True)
        self._thread.start()

    def submit(self, write: Callable[[Connection], T]) -> Future[T]:
        """Queue a write; the future resolves once it has committed."""
        if self._closed:
            raise StorageError("storage is closed")
        fut: Future[T] = Future()
        # running from now: a submitted write is always carried out, also when whoever awaits
        # it is cancelled (the window it came from already holds its rows)
        fut.set_running_or_notify_cancel()
        with self._pending_lock:
            self._pending += 1
        fut.add_done_callback(self._done)
        self._queue.put((write, fut))
        return fut

    def _done(self, _: Future[Any]) -> None:
        with self._pending_lock:
            self._pending -= 1

    @property
    def pending(self) -> int:
        """Writes queued or running: how far storage is behind."""
        return self._pending

    async def write(self, write: Callable[[Connection], T]) -> T:
        """Await a committed write from the event loop."""
        return await asyncio.wrap_future(self.submit(write))

    def read(self, query: Callable[[Connection], T]) -> T:
        try:
            with self.engine.connect() as conn:
                return query(conn)
        except SQLAlchemyError as exc:
            raise StorageError(f"read failed: {exc}") from exc

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            group = [] if item is _STOP else [item]
            while item is not _STOP and len(group) < self._max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    group.append(item)
            if group:
                self._commit(group)  # type: ignore[arg-type]
            if item is _STOP:
                return

    def _commit(self, group: list[tuple[Write, Future[Any]]], attempt: int = 1) -> None:
        try:
            with self.engine.begin() as conn:
                results = [write(conn) for write, _ in group]
        except Exception as exc:  # noqa: BLE001 - retried one by one, each failure reported
            if len(group) > 1:
                for item in group:
                    self._commit([item])
                return
            if attempt < _RETRIES and _transient(exc):
                self._commit(group, attempt + 1)
                return
            if isinstance(exc, AimsError):  # a write that refused its change: rolled back
                group[0][1].set_exception(exc)
                return
            log.exception("storage write failed", extra={"event": "storage_problem"})
            if self.failing_since is None:
                self.failing_since = time.time()
            group[0][1].set_exception(StorageError(f"write failed: {exc}"))
            return
        self.failing_since = None
        for (_, fut), result in zip(group, results, strict=True):
            fut.set_result(result)

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new writes, wait for queued ones to commit, close the connection pool."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error(
                "storage writer did not drain within %.1fs",
                timeout,
                extra={"event": "storage_problem"},
            )
        self.engine.dispose()
