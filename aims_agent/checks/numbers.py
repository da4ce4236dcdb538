"""Drift numbers for notebooks and pipelines: no config, no window, no evidence.

`drift(reference, current)` compares two tables column by column with the same statistical
tests and thresholds the drift check uses (Evidently's choice per column unless `test` names
one) and answers each column's value, verdict and sample sizes, and the share of drifted
columns. The agent's check adds what evidence needs around the same numbers: the schema,
windows, corrections for multiple testing and thresholds from the config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aims_agent.checks import frames, stattests
from aims_agent.errors import ReferenceDataError
from aims_agent.records import ColumnKind


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnDrift:
    """One column's comparison."""

    column: str
    kind: ColumnKind
    test: str  # the stattest's alias
    value: float  # p-value for p-value tests, distance otherwise; the verdict is made on it
    p_value: float | None
    threshold: float
    drifted: bool
    n_reference: int  # values compared, missing dropped
    n_current: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftResult:
    """Every column's comparison and the share of columns that drifted."""

    columns: tuple[ColumnDrift, ...]
    share: float  # drifted / compared; NaN when no column could be compared

    def __getitem__(self, column: str) -> ColumnDrift:
        for c in self.columns:
            if c.column == column:
                return c
        raise KeyError(column)

    @property
    def drifted(self) -> tuple[str, ...]:
        """Names of the drifted columns."""
        return tuple(c.column for c in self.columns if c.drifted)


def drift(
    reference: Any,
    current: Any,
    *,
    columns: Sequence[str] | None = None,
    kinds: Mapping[str, ColumnKind] | None = None,
    test: str | Mapping[str, str] | None = None,
    threshold: float | Mapping[str, float] | None = None,
) -> DriftResult:
    """Compare `current` with `reference` (pandas DataFrames, pyarrow Tables or mappings of
    column name to array) column by column.

    `columns`: which to compare (default: every column of the reference). `kinds`: a
    column's kind where the type would mislead (integer codes of a category, say);
    otherwise integer and floating columns are numeric, anything else categorical.
    `test` / `threshold`: one for every column or a mapping per column; by default
    Evidently's choice for the column's kind and sizes with that test's own threshold.
    A column missing from `current` counts as all missing.
    """
    ref = frames.as_table(reference, "reference")
    cur = frames.as_table(current, "current")
    names = list(columns) if columns is not None else list(ref.column_names)
    absent = [c for c in names if c not in ref.column_names]
    if absent:
        raise ReferenceDataError(f"reference: missing columns {', '.join(absent)}")
    results = tuple(
        _column(
            name,
            ref.column(name),
            cur.column(name) if name in cur.column_names else None,
            cur.num_rows,
            kind=(kinds or {}).get(name) or frames.infer_kind(ref.column(name)),
            alias=test.get(name) if isinstance(test, Mapping) else test,
            threshold=threshold.get(name) if isinstance(threshold, Mapping) else threshold,
        )
        for name in names
    )
    compared = [r for r in results if r.n_current > 0]
    share = sum(r.drifted for r in compared) / len(compared) if compared else float("nan")
    return DriftResult(columns=results, share=share)


def _column(
    name: str,
    reference: Any,
    current: Any | None,
    n_current: int,
    *,
    kind: ColumnKind,
    alias: str | None,
    threshold: float | None,
) -> ColumnDrift:
    labels: tuple[str, ...] | None = None
    if kind == "numeric":
        ref_values = frames.numeric(reference, name)
        cur_values = (
            frames.numeric(current, name)
            if current is not None
            else frames.numeric(reference.slice(0, 0), name)
        )
        n_categories = None
    else:
        ref_values, vocab = frames.reference_codes(reference)
        cur_values, labels = frames.window_codes(current, n_current, vocab)
        n_categories = len(vocab)
    try:
        stats = stattests.prepare_reference(ref_values, kind=kind, n_categories=n_categories)
    except ReferenceDataError as exc:
        raise ReferenceDataError(f"reference column {name!r}: {exc}") from exc
    chosen = (
        stattests.get_stattest(alias, kind)
        if alias
        else stattests.default_stattest(stats, cur_values)
    )
    result = chosen.compute(stats, cur_values, threshold=threshold, labels=labels)
    return ColumnDrift(
        column=name,
        kind=kind,
        test=chosen.alias,
        value=result.value,
        p_value=result.p_value,
        threshold=result.threshold,
        drifted=result.drifted,
        n_reference=result.n_reference,
        n_current=result.n_current,
    )
