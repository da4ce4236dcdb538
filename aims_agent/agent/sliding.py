"""A sliding time window: the last `span` seconds, advancing every `step` seconds.

It is made of `span / step` panes, each a tumbling `Window` of `step` seconds with its own
reservoir of `max_sample / panes` rows, so memory stays bounded as with a tumbling window. A
pane that has slid out of the window is dropped. A snapshot takes from every pane a number of
rows proportional to the records that pane saw (as many as the fullest-sampled pane allows),
so the rows a check sees are a uniform sample of the whole window even when traffic varies
from pane to pane. Panes are stored like tumbling windows, keyed by their start.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence

import numpy as np

from aims_agent.agent.window import Labelled, Sampled, Window
from aims_agent.records import Cell, Contents, Row, Snapshot, WindowData, WindowInfo
from aims_agent.schema import ModelSchema


class SlidingWindow:
    """The same interface as `Window`, over panes."""

    def __init__(
        self,
        schema: ModelSchema,
        *,
        capacity: int,
        span: float,
        step: float,
        reference_categories: Mapping[str, Sequence[str]],
        rng: np.random.Generator,
    ) -> None:
        self.schema = schema
        self.capacity, self.span, self.step = capacity, span, step
        self.horizon = span - step  # earlier panes kept besides the current one
        self.pane_capacity = max(1, capacity // round(span / step))
        self._categories = reference_categories
        self._rng = rng
        self._lock = threading.Lock()  # guards the pane dict; each pane locks itself
        self._panes: dict[float, Window] = {}

    def window_start(self, now: float) -> float:
        """The start of the pane `now` falls in."""
        return math.floor(now / self.step) * self.step

    def _pane(self, start: float) -> Window:
        pane = self._panes.get(start)
        if pane is None:
            pane = Window(
                self.schema,
                capacity=self.pane_capacity,
                span=self.step,
                reference_categories=self._categories,
                rng=np.random.default_rng(self._rng.integers(2**63)),
                rolls=False,
            )
            pane.start = start
            self._panes[start] = pane
        return pane

    def _live(self, now: float) -> list[Window]:
        """The panes inside the window at `now`, oldest first; older ones are dropped."""
        first = self.window_start(now) - self.horizon
        for start in [s for s in self._panes if s < first]:
            del self._panes[start]
        return [self._panes[s] for s in sorted(self._panes)]

    # what the runtime reads ---------------------------------------------------------------

    @property
    def start(self) -> float:
        """The start of the current (newest) pane."""
        with self._lock:
            return max(self._panes, default=0.0)

    @property
    def seen(self) -> int:
        with self._lock:
            return sum(p.seen for p in self._panes.values())

    @property
    def size(self) -> int:
        with self._lock:
            return sum(p.size for p in self._panes.values())

    def holds(self, record_id: str) -> bool:
        """Whether a sampled record of a pane has this id (or alias)."""
        with self._lock:
            panes = list(self._panes.values())
        return any(p.holds(record_id) for p in panes)

    # changes ------------------------------------------------------------------------------

    def offer(
        self,
        rows: Sequence[Row],
        ids: Sequence[str],
        timestamps: Sequence[float],
        *,
        now: float,
        aliases: Sequence[tuple[str, ...]] = (),
    ) -> Sampled:
        with self._lock:
            start = self.window_start(now)
            pane = self._pane(start)
            self._live(now)
        return pane.offer(rows, ids, timestamps, now=now, aliases=aliases)

    def label(
        self,
        ids: Sequence[str],
        cells: Sequence[Mapping[str, Cell]],
        *,
        now: float,
        ttl: float | None,
    ) -> Labelled:
        with self._lock:
            panes = self._live(now)[::-1]  # newest first: a reused id means the latest record
        groups: dict[int, tuple[list[str], list[Mapping[str, Cell]]]] = {}
        unknown = expired = 0
        for rid, values in zip(ids, cells, strict=True):
            at = next((i for i, p in enumerate(panes) if p.holds(rid)), None)
            if at is None:
                unknown += 1
                continue
            group = groups.setdefault(at, ([], []))
            group[0].append(rid)
            group[1].append(values)
        batches: list[Contents] = []
        for at, (pane_ids, pane_cells) in sorted(groups.items(), reverse=True):
            result = panes[at].label(pane_ids, pane_cells, now=now, ttl=ttl)
            batches += result.batches
            unknown += result.unknown
            expired += result.expired
        return Labelled(batches=tuple(batches), unknown=unknown, expired=expired)

    def reject(self, n: int, *, now: float) -> None:
        with self._lock:
            pane = self._pane(self.window_start(now))
        pane.reject(n, now=now)

    # storage ------------------------------------------------------------------------------

    def replay(self, entries: Sequence[Contents]) -> None:
        for e in entries:
            with self._lock:
                pane = self._pane(e.window_start)
            pane.replay([e])

    def restore(self, snap: Snapshot) -> None:
        with self._lock:
            pane = self._pane(snap.window_start)
        pane.restore(snap)

    def export(self) -> Snapshot:
        """The current pane: earlier panes no longer take records."""
        with self._lock:
            pane = self._panes[max(self._panes)]
        return pane.export()

    # reading ------------------------------------------------------------------------------

    def snapshot(self, *, now: float) -> WindowData:
        """A uniform sample of the whole window, merged from its panes."""
        with self._lock:
            panes = self._live(now)
            first = self.window_start(now) - self.horizon
        parts = [p.snapshot(now=now) for p in panes]
        rate = min((d.info.sampled / d.info.seen for d in parts if d.info.seen), default=1.0)
        names = [c.name for c in self.schema.columns]
        kinds = {c.name: c.kind for c in self.schema.columns}
        vocab = {n: list(self._categories.get(n, ())) for n in names if kinds[n] == "categorical"}
        index = {n: {label: i for i, label in enumerate(v)} for n, v in vocab.items()}
        chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}
        ids: list[str] = []
        for d in parts:
            take = min(d.info.sampled, round(d.info.seen * rate))
            rows = np.sort(self._rng.choice(d.info.sampled, size=take, replace=False))
            for name in names:
                values = d.columns[name][rows]
                if name in vocab:  # re-code through labels into the merged vocabulary
                    codes = index[name]
                    for label in d.vocabularies[name]:
                        if label not in codes:
                            codes[label] = len(vocab[name])
                            vocab[name].append(label)
                    remap = np.asarray(
                        [*(codes[label] for label in d.vocabularies[name]), -1], dtype=np.int32
                    )
                    values = remap[values]
                chunks[name].append(values)
            ids += [d.record_ids[i] for i in rows.tolist()]
        columns = {
            n: np.concatenate(c) if c else np.zeros(0, dtype=np.int32 if n in vocab else np.float64)
            for n, c in chunks.items()
        }
        info = WindowInfo(
            start=min((p.start for p in panes), default=first),
            end=now,
            seen=sum(d.info.seen for d in parts),
            sampled=len(ids),
            rejected=sum(d.info.rejected for d in parts),
        )
        return WindowData(
            info=info,
            columns=columns,
            vocabularies={n: tuple(v) for n, v in vocab.items()},
            record_ids=tuple(ids),
        )
