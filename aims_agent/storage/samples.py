"""The durable half of the window store: a per-model log of reservoir changes.

Each acknowledged ingest batch appends one row holding the slots it filled. Now and then the
whole window is written as a snapshot and the entries before it are deleted, so the log stays
within a few window sizes. A restart replays the latest snapshot and the batches after it.

A snapshot is exported when the writer gets to it, so it may already contain batches queued
behind it; replaying those batches again on top rewrites the same slots with the same rows,
so the rebuilt window is the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
from sqlalchemy import Connection, delete, insert, select

from aims_agent.records import Contents, Snapshot
from aims_agent.storage.schema import sample_log, tail_checkpoints
from aims_agent.storage.store import UPSERT

_Cell = float | int | str | bool | None


class _Batch(msgspec.Struct, array_like=True, tag="b", omit_defaults=True):
    slots: list[int]
    ids: list[str]
    timestamps: list[float]
    rows: list[tuple[_Cell, ...]]
    aliases: list[tuple[str, ...]] = []  # a later field: entries written before lack it


class _Snap(msgspec.Struct, array_like=True, tag="s", omit_defaults=True):
    ids: list[str]
    timestamps: bytes  # float64
    columns: dict[str, bytes]  # float64 for numeric, int32 codes for categorical
    vocabularies: dict[str, list[str]]
    aliases: list[tuple[str, ...]] = []


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Batch | _Snap).decode


def append_batch(
    model: str, batch: Contents, *, drop_before: float | None = None
) -> Callable[[Connection], None]:
    """A store write: one log entry for one batch; with `drop_before` (a new window or pane
    began), the log of windows that started before it is deleted."""
    payload = _encode(
        _Batch(
            slots=batch.slots,
            ids=batch.ids,
            timestamps=batch.timestamps,
            rows=batch.rows,
            aliases=batch.aliases,
        )
    )
    values = {
        "model": model,
        "window_start": batch.window_start,
        "kind": "batch",
        "seen": batch.seen,
        "n_rows": len(batch.slots),
        "payload": payload,
    }

    def write(conn: Connection) -> None:
        if drop_before is not None:
            conn.execute(
                delete(sample_log).where(
                    sample_log.c.model == model, sample_log.c.window_start < drop_before
                )
            )
        conn.execute(insert(sample_log).values(**values))

    return write


def write_snapshot(model: str, export: Callable[[], Snapshot]) -> Callable[[Connection], int]:
    """A store write: the whole window (or pane) as one entry, replacing its entries before it."""

    def write(conn: Connection) -> int:
        snap = export()
        payload = _encode(
            _Snap(
                ids=snap.ids,
                timestamps=snap.timestamps.tobytes(),
                columns={k: v.tobytes() for k, v in snap.columns.items()},
                vocabularies={k: list(v) for k, v in snap.vocabularies.items()},
                aliases=snap.aliases,
            )
        )
        key = conn.execute(
            insert(sample_log).values(
                model=model,
                window_start=snap.window_start,
                kind="snapshot",
                seen=snap.seen,
                n_rows=len(snap.ids),
                payload=payload,
            )
        ).inserted_primary_key
        assert key is not None
        conn.execute(
            delete(sample_log).where(
                sample_log.c.model == model,
                sample_log.c.window_start == snap.window_start,
                sample_log.c.entry_id < key[0],
            )
        )
        return int(key[0])

    return write


def _contents(start: float, seen: int, p: _Batch | _Snap) -> Contents | Snapshot:
    if isinstance(p, _Batch):
        return Contents(
            window_start=start,
            seen=seen,
            slots=p.slots,
            rows=p.rows,
            ids=p.ids,
            timestamps=p.timestamps,
            aliases=p.aliases,
        )
    return Snapshot(
        window_start=start,
        seen=seen,
        ids=p.ids,
        timestamps=np.frombuffer(p.timestamps, dtype=np.float64),
        columns={
            k: np.frombuffer(v, dtype=np.int32 if k in p.vocabularies else np.float64)
            for k, v in p.columns.items()
        },
        vocabularies={k: tuple(v) for k, v in p.vocabularies.items()},
        aliases=p.aliases,
    )


def read_log(conn: Connection, model: str, since: float) -> list[Contents | Snapshot]:
    """The entries of the model's windows (or panes) that started at `since` or later, each
    from its latest snapshot on, in the order they were written."""
    starts = conn.execute(
        select(sample_log.c.window_start)
        .where(sample_log.c.model == model, sample_log.c.window_start >= since)
        .distinct()
    ).scalars()
    out: list[tuple[int, Contents | Snapshot]] = []
    for start in starts:
        pane = (sample_log.c.model == model) & (sample_log.c.window_start == start)
        first = (
            conn.execute(
                select(sample_log.c.entry_id)
                .where(pane, sample_log.c.kind == "snapshot")
                .order_by(sample_log.c.entry_id.desc())
                .limit(1)
            ).scalar()
            or 0
        )
        rows = conn.execute(
            select(
                sample_log.c.entry_id,
                sample_log.c.window_start,
                sample_log.c.seen,
                sample_log.c.payload,
            ).where(pane, sample_log.c.entry_id >= first)
        ).all()
        out += [
            (int(r.entry_id), _contents(float(r.window_start), int(r.seen), _decode(r.payload)))
            for r in rows
        ]
    return [entry for _, entry in sorted(out, key=lambda e: e[0])]


def save_tail_position(
    model: str, inode: int, offset: int, head: bytes
) -> Callable[[Connection], None]:
    """A store write: the log tail's checkpoint, committed with the records read up to it."""

    def write(conn: Connection) -> None:
        ins: Any = UPSERT[conn.dialect.name](tail_checkpoints)
        conn.execute(
            ins.values(model=model, inode=inode, offset=offset, head=head).on_conflict_do_update(
                index_elements=[tail_checkpoints.c.model],
                set_={
                    "inode": ins.excluded.inode,
                    "offset": ins.excluded.offset,
                    "head": ins.excluded.head,
                },
            )
        )

    return write


def load_tail_position(conn: Connection, model: str) -> tuple[int, int, bytes] | None:
    row = conn.execute(
        select(tail_checkpoints.c.inode, tail_checkpoints.c.offset, tail_checkpoints.c.head).where(
            tail_checkpoints.c.model == model
        )
    ).first()
    return None if row is None else (int(row.inode), int(row.offset), bytes(row.head))


def purge_samples(before: float) -> Callable[[Connection], int]:
    """A store write: delete sampled records of windows that started before `before` (the
    retention limit); returns how many log entries went."""

    def write(conn: Connection) -> int:
        gone = conn.execute(delete(sample_log).where(sample_log.c.window_start < before))
        return int(gone.rowcount or 0)

    return write
