"""A model's columns and the rules a record must follow to enter its window.

`ModelSchema.normalize` turns a decoded `Record` into one flat row, in column order: numeric
values as float (NaN when missing), categorical values as str (None when missing). It raises
`RecordError` naming the field when a value has the wrong type. A missing or null feature is
accepted: the data-quality checks measure missingness, so dropping such records would hide it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from aims_agent.agent.config import SchemaConfig
from aims_agent.errors import RecordError
from aims_agent.records import ColumnKind, Record, Scalar

Source = Literal["feature", "prediction", "score", "label", "attribute"]
Cell = float | str | None
Row = tuple[Cell, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    name: str
    kind: ColumnKind
    source: Source


def _numeric(value: Scalar) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    raise ValueError(f"must be a number or null, got {type(value).__name__} {value!r}"[:200])


def _categorical(value: Scalar) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise ValueError(f"must be a string, integer, boolean or null, got {value!r}")


_CONVERT: dict[ColumnKind, Callable[[Scalar], Cell]] = {
    "numeric": _numeric,
    "categorical": _categorical,
}


def parse_timestamp(value: float | str | None, *, default: float) -> float:
    """Epoch seconds from an RFC 3339 string or a number; naive times are taken as UTC."""
    if value is None:
        return default
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"must be a non-negative epoch time, got {value}")
        return float(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"must be RFC 3339 or epoch seconds, got {value!r}"[:200]) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


class ModelSchema:
    """The ordered columns of one model: features, then prediction, score, label, attributes."""

    def __init__(self, cfg: SchemaConfig) -> None:
        cols = [Column(name=n, kind="numeric", source="feature") for n in cfg.numeric]
        cols += [Column(name=n, kind="categorical", source="feature") for n in cfg.categorical]
        cols.append(Column(name=cfg.prediction, kind=cfg.prediction_type, source="prediction"))
        if cfg.score:
            cols.append(Column(name=cfg.score, kind="numeric", source="score"))
        if cfg.label:
            cols.append(Column(name=cfg.label, kind=cfg.prediction_type, source="label"))
        cols += [Column(name=n, kind="categorical", source="attribute") for n in cfg.sensitive]
        self.columns: tuple[Column, ...] = tuple(cols)
        self.features = tuple(c for c in cols if c.source == "feature")
        self.index = {c.name: i for i, c in enumerate(cols)}
        self._feature_plan = [(c.name, _CONVERT[c.kind]) for c in self.features]
        self._attr_plan = [(c.name, _CONVERT[c.kind]) for c in cols if c.source == "attribute"]
        self._predict = _CONVERT[cfg.prediction_type]
        self._has_score = cfg.score is not None
        self._has_label = cfg.label is not None

    def column(self, source: Source) -> Column | None:
        return next((c for c in self.columns if c.source == source), None)

    def normalize(self, record: Record, index: int) -> Row:
        """One record as a row in column order; `RecordError` names the first bad field."""
        field = "features"
        try:
            feats = record.features
            row: list[Cell] = []
            for name, conv in self._feature_plan:
                field = f"features.{name}"
                row.append(conv(feats.get(name)))
            field = "prediction"
            if record.prediction is None:
                raise ValueError("is required")
            row.append(self._predict(record.prediction))
            if self._has_score:
                field = "score"
                row.append(_numeric(record.score))
            if self._has_label:
                field = "label"
                row.append(self._predict(record.label))
            attrs = record.attributes
            for name, conv in self._attr_plan:
                field = f"attributes.{name}"
                row.append(conv(attrs.get(name)))
        except ValueError as exc:
            raise RecordError(
                index=index, record_id=str(record.id), field=field, reason=str(exc)
            ) from None
        return tuple(row)
