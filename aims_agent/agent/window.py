"""Per-model windows: a tumbling time window holding a uniform reservoir sample, stored as columns.

Memory is bounded by `max_sample` rows whatever the traffic: numeric columns are float64 arrays,
categorical columns int32 codes into a vocabulary that starts with the reference's categories
(so codes < k are known categories, codes >= k unseen ones, -1 missing). Arrays grow by doubling
up to the cap, so an idle agent holds little.

The window is touched only from the event loop (`offer`); check runs take a `snapshot`, a copy
made under a lock, so a running check never sees a half-written batch.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from aims_agent.records import Cell, Contents, Row, Snapshot, WindowData, WindowInfo
from aims_agent.schema import REVIEW_SECONDS, ModelSchema, category

_MAX_CATEGORIES = 100_000  # beyond this, new labels share one overflow code


@dataclass(frozen=True, slots=True, kw_only=True)
class Sampled:
    """What one `offer` changed: rows placed into reservoir slots, for the store to persist."""

    window_start: float
    seen: int
    slots: tuple[int, ...]
    positions: tuple[int, ...]  # index of each sampled row in the offered batch


@dataclass(frozen=True, slots=True, kw_only=True)
class Labelled:
    """What a label join changed (full rows of the slots, per window or pane, for the store) and
    what it could not."""

    batches: tuple[Contents, ...]
    unknown: int
    expired: int


class _Codes:
    """A growing label -> code vocabulary."""

    def __init__(self, initial: Sequence[str]) -> None:
        self.labels: list[str] = list(initial)
        self.codes: dict[str, int] = {v: i for i, v in enumerate(self.labels)}
        # codes of non-text cells (ints, booleans) by type and value, so True and 1 stay apart
        self._typed: dict[tuple[type, Cell], int] = {(type(None), None): -1}

    def encode(self, values: Sequence[Cell]) -> list[int]:
        """Codes of many cells: one dict lookup each, Python work only for misses."""
        get = self.codes.get
        out = [get(v) for v in values]  # type: ignore[arg-type]
        typed = self._typed
        for i, c in enumerate(out):
            if c is None:
                v = values[i]
                key = (type(v), v)
                c = typed.get(key)
                if c is None:
                    c = self.code(category(v))
                    if type(v) is not str:
                        typed[key] = c
                out[i] = c
        return out  # type: ignore[return-value]

    def code(self, label: str | None) -> int:
        if label is None:
            return -1
        code = self.codes.get(label)
        if code is None:
            if len(self.labels) >= _MAX_CATEGORIES:
                label = "__overflow__"
                if label in self.codes:
                    return self.codes[label]
            code = len(self.labels)
            self.labels.append(label)
            self.codes[label] = code
        return code


class Window:
    """A tumbling window of `span` seconds keeping a uniform sample of at most `capacity` rows."""

    def __init__(
        self,
        schema: ModelSchema,
        *,
        capacity: int,
        span: float,
        reference_categories: Mapping[str, Sequence[str]],
        rng: np.random.Generator,
        rolls: bool = True,
    ) -> None:
        self.schema = schema
        self.capacity = capacity
        self.pane_capacity = capacity  # what one stored snapshot holds: the whole window
        self.span = span
        self.horizon = 0.0  # seconds of earlier windows kept besides the current one
        self._rolls = rolls  # False: a pane of a sliding window, started and ended by it
        self._rng = rng
        self._lock = threading.Lock()
        self._vocab = {
            c.name: _Codes(reference_categories.get(c.name, ()))
            for c in schema.columns
            if c.kind == "categorical"
        }
        self.start = 0.0
        self.seen = 0
        self.size = 0
        self.rejected = 0  # records refused by ingest in this window; not persisted
        self._alloc = 0
        self._cols: list[np.ndarray] = []
        self._ts = np.zeros(0)
        self._ids: list[str] = []
        self._aliases: dict[int, tuple[str, ...]] = {}  # slot -> the record's other ids
        self._slot_of: dict[str, int] = {}  # record id or alias -> slot, to join late labels
        self._grow(0)

    def window_start(self, now: float) -> float:
        return math.floor(now / self.span) * self.span

    def _grow(self, need: int) -> None:
        size = min(self.capacity, max(1024, self._alloc * 2, need)) if need else 0
        if size <= self._alloc and self._cols:
            return
        cols = []
        for i, c in enumerate(self.schema.columns):
            dtype = np.float64 if c.kind == "numeric" else np.int32
            arr = np.full(size, np.nan if c.kind == "numeric" else -1, dtype=dtype)
            if self._cols:
                arr[: self._alloc] = self._cols[i][: self._alloc]
            cols.append(arr)
        ts = np.zeros(size)
        ts[: self._alloc] = self._ts[: self._alloc]
        self._cols, self._ts = cols, ts
        self._ids.extend([""] * (size - len(self._ids)))
        self._alloc = size

    def _roll(self, now: float) -> None:
        if not self._rolls:
            return
        start = self.window_start(now)
        if start != self.start:
            self.start, self.seen, self.size, self.rejected = start, 0, 0, 0
            self._slot_of.clear()
            self._aliases.clear()

    def offer(
        self,
        rows: Sequence[Row],
        ids: Sequence[str],
        timestamps: Sequence[float],
        *,
        now: float,
        aliases: Sequence[tuple[str, ...]] = (),
    ) -> Sampled:
        """Algorithm R over a batch: row i is kept with probability capacity / (seen + i + 1).

        `aliases` (empty, or one tuple per row) are other ids a row's record is known by; a
        label joins under any of them."""
        with self._lock:
            self._roll(now)
            m = len(rows)
            pos = np.arange(m)
            ordinal = self.seen + pos
            slot = np.where(
                ordinal < self.capacity,
                ordinal,
                self._rng.integers(0, ordinal + 1) if m else ordinal,
            )
            keep = slot < self.capacity
            # when two rows of one batch hit the same slot, the later one wins, as in sequential R
            kept_pos = pos[keep]
            kept_slot = slot[keep]
            _, last = np.unique(kept_slot[::-1], return_index=True)
            final = np.sort(len(kept_slot) - 1 - last)
            kept_pos, kept_slot = kept_pos[final], kept_slot[final]
            self.seen += m
            self.size = min(self.capacity, self.seen)
            if len(kept_slot):
                self._grow(int(kept_slot.max()) + 1)
            self._write(
                [rows[p] for p in kept_pos],
                [ids[p] for p in kept_pos],
                [timestamps[p] for p in kept_pos],
                kept_slot,
                [aliases[p] for p in kept_pos] if aliases else (),
            )
            return Sampled(
                window_start=self.start,
                seen=self.seen,
                slots=tuple(int(s) for s in kept_slot),
                positions=tuple(int(p) for p in kept_pos),
            )

    def _write(
        self,
        rows: Sequence[Row],
        ids: Sequence[str],
        timestamps: Sequence[float],
        slots: np.ndarray,
        aliases: Sequence[tuple[str, ...]] = (),
    ) -> None:
        if not rows:
            return
        width = len(self.schema.columns)
        if len(rows[0]) < width:  # stored before columns were added (an oversight check): blank
            rows = [(*r, *(None,) * (width - len(r))) for r in rows]
        for i, (c, values) in enumerate(
            zip(self.schema.columns, zip(*rows, strict=True), strict=True)
        ):
            if c.kind == "numeric":  # None -> NaN, bool -> 0 / 1
                self._cols[i][slots] = np.asarray(values, dtype=np.float64)
            else:
                self._cols[i][slots] = self._vocab[c.name].encode(values)
        self._ts[slots] = timestamps
        slot_of, known = self._slot_of, self._aliases
        for i, (s, rid) in enumerate(zip(slots.tolist(), ids, strict=True)):
            for old in (self._ids[s], *known.pop(s, ())):  # the record this one replaces
                if slot_of.get(old) == s:
                    del slot_of[old]
            self._ids[s] = rid
            if aliases and aliases[i]:
                known[s] = aliases[i]
                for alias in aliases[i]:
                    slot_of[alias] = s
            slot_of[rid] = s

    def label(
        self,
        ids: Sequence[str],
        cells: Sequence[Mapping[str, Cell]],
        *,
        now: float,
        ttl: float | None,
    ) -> Labelled:
        """Join late ground truth (and attributes) to sampled records by id.

        `cells` maps column names (the label, sensitive attributes) to values. A record the
        reservoir did not keep, or from a past window, is unknown; a label arriving more than
        `ttl` seconds after the record's time is expired. Both are counted, not joined.
        """
        with self._lock:
            self._roll(now)
            slots: list[int] = []
            unknown = expired = 0
            index = self.schema.index
            for rid, values in zip(ids, cells, strict=True):
                s = self._slot_of.get(rid)
                if s is None:
                    unknown += 1
                    continue
                if ttl is not None and now - self._ts[s] > ttl:
                    expired += 1
                    continue
                for name, value in values.items():
                    i = index[name]
                    if name == REVIEW_SECONDS and value is not None:  # given as a time
                        value = float(value) - float(self._ts[s])  # seconds after the record's
                    if self.schema.columns[i].kind == "numeric":
                        self._cols[i][s] = np.nan if value is None else float(value)
                    else:
                        self._cols[i][s] = self._vocab[name].code(category(value))
                slots.append(s)
            contents = Contents(
                window_start=self.start,
                seen=self.seen,
                slots=slots,
                rows=self._rows_of(slots),
                ids=[self._ids[s] for s in slots],
                timestamps=[float(self._ts[s]) for s in slots],
                aliases=self._aliases_of(slots),
            )
            return Labelled(batches=(contents,) if slots else (), unknown=unknown, expired=expired)

    def holds(self, record_id: str) -> bool:
        """Whether a sampled record has this id (or alias)."""
        return record_id in self._slot_of

    def _aliases_of(self, slots: Sequence[int]) -> list[tuple[str, ...]]:
        """The aliases of these slots' records; [] when none has any (the common case)."""
        if not any(s in self._aliases for s in slots):
            return []
        return [self._aliases.get(s, ()) for s in slots]

    def _rows_of(self, slots: Sequence[int]) -> list[Row]:
        """Rows of the given slots as cells (numbers, text labels, None for missing)."""
        columns: list[list[Cell]] = []
        for i, c in enumerate(self.schema.columns):
            values = self._cols[i][list(slots)].tolist()
            if c.kind == "numeric":
                columns.append([None if v != v else v for v in values])
            else:
                labels = self._vocab[c.name].labels
                columns.append([labels[k] if k >= 0 else None for k in values])
        return list(zip(*columns, strict=True)) if slots else []

    def reject(self, n: int, *, now: float) -> None:
        """Count records that ingest refused, for the data-quality check."""
        with self._lock:
            self._roll(now)
            self.rejected += n

    def replay(self, entries: Sequence[Contents]) -> None:
        """Apply stored batches, in order, on top of what the window holds."""
        with self._lock:
            for e in entries:
                self.start, self.seen = e.window_start, e.seen
                self.size = min(self.capacity, e.seen)
                if e.slots:
                    self._grow(max(e.slots) + 1)
                    slots = np.asarray(e.slots, dtype=np.int64)
                    self._write(e.rows, e.ids, e.timestamps, slots, e.aliases)

    def export(self) -> Snapshot:
        """A copy of the whole window as arrays, for a snapshot in storage."""
        with self._lock:
            n = self.size
            return Snapshot(
                window_start=self.start,
                seen=self.seen,
                ids=self._ids[:n],
                timestamps=self._ts[:n].copy(),
                columns={
                    c.name: self._cols[i][:n].copy() for i, c in enumerate(self.schema.columns)
                },
                vocabularies={name: tuple(v.labels) for name, v in self._vocab.items()},
                aliases=self._aliases_of(range(n)),
            )

    def restore(self, snap: Snapshot) -> None:
        """Load a snapshot; categorical codes are mapped through labels, so a changed reference
        vocabulary still restores the right categories."""
        with self._lock:
            self.start, self.seen = snap.window_start, snap.seen
            n = self.size = len(snap.ids)
            self._grow(n)
            for i, c in enumerate(self.schema.columns):
                if c.name not in snap.columns:  # a column added since: missing in every row
                    self._cols[i][:n] = np.nan if c.kind == "numeric" else -1
                    continue
                values = snap.columns[c.name]
                if c.kind == "categorical" and len(values):
                    labels = snap.vocabularies[c.name]
                    remap = np.asarray([*self._vocab[c.name].encode(labels), -1], dtype=np.int32)
                    values = remap[values]  # -1 indexes the trailing -1: missing stays missing
                self._cols[i][:n] = values
            self._ts[:n] = snap.timestamps
            self._ids[:n] = snap.ids
            self._aliases = {s: a for s, a in enumerate(snap.aliases) if a}
            self._slot_of = {a: s for s, names in self._aliases.items() for a in names}
            self._slot_of.update({rid: s for s, rid in enumerate(snap.ids)})

    def snapshot(self, *, now: float) -> WindowData:
        """A copy of the current window, safe to read from a worker thread."""
        with self._lock:
            self._roll(now)
            n = self.size
            columns = {c.name: self._cols[i][:n].copy() for i, c in enumerate(self.schema.columns)}
            vocab = {name: tuple(v.labels) for name, v in self._vocab.items()}
            info = WindowInfo(
                start=self.start, end=now, seen=self.seen, sampled=n, rejected=self.rejected
            )
            return WindowData(
                info=info, columns=columns, vocabularies=vocab, record_ids=tuple(self._ids[:n])
            )
