"""Idempotent ingest: the first answer to a batch sent with an `Idempotency-Key`, by model.

The key's row is written in the transaction that stores the batch, so a key is on record
exactly when its rows are; a key whose window has passed is deleted by the next keyed write.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, delete, insert, select

from aims_agent.storage.schema import ingest_keys


def first_answer(conn: Connection, model: str, key: str, *, since: float) -> bytes | None:
    """The answer stored for `key`, if its batch went into a window that starts at or after
    `since` (the window still held)."""
    k = ingest_keys.c
    query = select(k.answer).where(k.model == model, k.key == key, k.window_start >= since)
    answer = conn.execute(query).scalar_one_or_none()
    return None if answer is None else bytes(answer)


def save_answer(
    model: str, key: str, window_start: float, answer: bytes, *, drop_before: float
) -> Callable[[Connection], None]:
    """A store write: the key's answer, and the keys of windows before `drop_before` gone."""

    def write(conn: Connection) -> None:
        k = ingest_keys.c
        conn.execute(delete(ingest_keys).where(k.model == model, k.window_start < drop_before))
        conn.execute(delete(ingest_keys).where(k.model == model, k.key == key))  # a past window's
        conn.execute(
            insert(ingest_keys).values(
                model=model, key=key, window_start=window_start, answer=answer
            )
        )

    return write
