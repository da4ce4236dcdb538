"""A check's per-column work on a few threads, when its caller asks for them.

The drift tests of one column do not touch another's, and their time goes to numpy's sorts,
cumulative sums and products, which release the GIL: a one-shot run with a core to spare
judges two columns at a time. A caller opts in for a block (`aims-agent check` does); without
that, and in the sidecar, whose checks already run beside ingest, columns go one by one.

    >>> with columns_in_threads(2):
    ...     column_map(len, ["ab", "c"])
    [2, 1]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_POOL: ContextVar[Executor | None] = ContextVar("aims_column_pool", default=None)


def column_map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`[fn(x) for x in items]`, on the block's threads if it has some; results in order."""
    pool = _POOL.get()
    if pool is None or len(items) < 2:
        return [fn(x) for x in items]
    return list(pool.map(fn, items))


@contextmanager
def columns_in_threads(n: int) -> Iterator[None]:
    """Within the block, `column_map` spreads its items over `n` threads (none below 2)."""
    if n < 2:
        yield
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n, thread_name_prefix="aims-columns") as pool:
        token = _POOL.set(pool)
        try:
            yield
        finally:
            _POOL.reset(token)
