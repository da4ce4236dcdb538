"""Persist and restore window reservoirs: the durable half of the window store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import Connection, select

from aims_agent.agent.window import Sampled
from aims_agent.schema import Row
from aims_agent.storage.schema import samples, windows

_encode = msgspec.json.Encoder().encode
_decode_row = msgspec.json.Decoder(list[float | str | None]).decode


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredWindow:
    start: float
    seen: int
    slots: list[int]
    rows: list[Row]
    ids: list[str]


def save_sampled(
    upsert: Any,
    model: str,
    sampled: Sampled,
    rows: Sequence[Row],
    ids: Sequence[str],
    timestamps: Sequence[float],
) -> Any:
    """A store write: the slots this batch filled, and the window's new count."""
    params = [
        {
            "model": model,
            "window_start": sampled.window_start,
            "slot": slot,
            "record_id": ids[p],
            "timestamp": timestamps[p],
            "row": _encode(rows[p]),
        }
        for slot, p in zip(sampled.slots, sampled.positions, strict=True)
    ]
    state = {"model": model, "window_start": sampled.window_start, "seen": sampled.seen}

    def write(conn: Connection) -> None:
        if params:
            ins = upsert(samples)
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=[samples.c.model, samples.c.window_start, samples.c.slot],
                    set_={
                        "record_id": ins.excluded.record_id,
                        "timestamp": ins.excluded.timestamp,
                        "row": ins.excluded.row,
                    },
                ),
                params,
            )
        ins = upsert(windows)
        conn.execute(
            ins.values(**state).on_conflict_do_update(
                index_elements=[windows.c.model],
                set_={"window_start": ins.excluded.window_start, "seen": ins.excluded.seen},
            )
        )

    return write


def load_window(conn: Connection, model: str) -> StoredWindow | None:
    state = conn.execute(select(windows).where(windows.c.model == model)).first()
    if state is None:
        return None
    result = conn.execute(
        select(samples.c.slot, samples.c.record_id, samples.c.row)
        .where(samples.c.model == model, samples.c.window_start == state.window_start)
        .order_by(samples.c.slot)
    ).all()
    return StoredWindow(
        start=float(state.window_start),
        seen=int(state.seen),
        slots=[int(r.slot) for r in result],
        rows=[tuple(_decode_row(r.row)) for r in result],
        ids=[str(r.record_id) for r in result],
    )
