"""A model's columns and the record type its ingest decodes into.

From the schema config we build, once per model, a msgspec Struct whose fields are the model's
features and attributes with their JSON types, so that decoding a record also validates it, in
C, with errors that name the field (`Expected 'float | bool | null', got 'str' - at
'$.features.age'`). A record then becomes a flat row in column order with no per-feature Python
work. Numeric cells are float, bool or None; categorical cells str, int, bool or None; the
window converts them (NaN for missing numbers, text labels for categories).

A missing or null feature is accepted: the data-quality checks measure missingness, so
refusing such records would hide it. Unknown features are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from aims_agent.config.model import SchemaConfig
from aims_agent.records import Cell, ColumnKind, Row

if TYPE_CHECKING:
    from aims_agent.privacy import Privacy

Source = Literal["feature", "prediction", "score", "class_score", "label", "attribute", "oversight"]

# what human review said of a decision (POST /v1/models/{model}/feedback), as window columns
# after the attributes, for models with an oversight check: 1 / 0 flags, and the seconds from
# the decision to its review
REVIEWED, OVERRIDDEN, ESCALATED, COMPLAINT, REVIEW_SECONDS = (
    "oversight.reviewed",
    "oversight.overridden",
    "oversight.escalated",
    "oversight.complaint",
    "oversight.review_seconds",
)
OVERSIGHT = (REVIEWED, OVERRIDDEN, ESCALATED, COMPLAINT, REVIEW_SECONDS)

# JSON types a value of each kind may take; null means missing.
_TYPES: dict[ColumnKind, Any] = {
    "numeric": float | bool | None,
    "categorical": str | int | bool | None,
}
_REQUIRED: dict[ColumnKind, Any] = {"numeric": float | bool, "categorical": str | int | bool}


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    name: str
    kind: ColumnKind
    source: Source


class FeedbackRecord(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What a reviewer's tool posts about one decision."""

    id: str | int
    reviewed: bool | None = None
    overridden: bool | None = None
    escalated: bool | None = None
    complaint: bool | None = None
    reviewed_at: datetime | float | None = None
    reviewer: str | None = None


def feedback_cells(item: FeedbackRecord, *, now: float) -> dict[str, Cell]:
    """The oversight columns a feedback item sets. An override or an escalation is a review;
    `reviewed_at` (default: now) is kept as an absolute time here and made relative to the
    record's own time where it is joined."""
    flags = {
        REVIEWED: item.reviewed,
        OVERRIDDEN: item.overridden,
        ESCALATED: item.escalated,
        COMPLAINT: item.complaint,
    }
    cells: dict[str, Cell] = {k: float(v) for k, v in flags.items() if v is not None}
    if item.overridden or item.escalated:
        cells[REVIEWED] = 1.0
    if cells.get(REVIEWED) == 1.0:
        cells[REVIEW_SECONDS] = epoch(item.reviewed_at, default=now)
    return cells


def category(value: Cell) -> str | None:
    """The text label of a categorical cell: as given for strings, `True` / `1` otherwise."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


MAX_EPOCH = 253_402_300_800.0  # 10000-01-01T00:00:00Z: times in a record are years 1970 to 9999


def epoch(value: datetime | float | None, *, default: float) -> float:
    """Epoch seconds of a record time; naive times are taken as UTC."""
    if value is None:
        return default
    if isinstance(value, datetime):
        seconds = (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
        if not 0 <= seconds < MAX_EPOCH:
            raise ValueError(f"must be from 1970-01-01T00:00:00Z to 9999-12-31, got {value}")
        return seconds
    if not 0 <= value < MAX_EPOCH:  # also NaN and infinities
        raise ValueError(f"must be RFC 3339 or non-negative epoch seconds, got {value}")
    return float(value)


def _struct(name: str, columns: list[Column]) -> type[msgspec.Struct]:
    """A Struct with one optional field per column; internal names, JSON names via rename."""
    fields = [(f"c{i}", _TYPES[c.kind], None) for i, c in enumerate(columns)]
    rename = {f"c{i}": c.name for i, c in enumerate(columns)}
    return msgspec.defstruct(name, fields, rename=rename, frozen=True)


class ModelSchema:
    """The ordered columns of one model: features, then prediction, score, label, attributes."""

    def __init__(
        self, cfg: SchemaConfig, privacy: Privacy | None = None, *, oversight: bool = False
    ) -> None:
        cols = [Column(name=n, kind="numeric", source="feature") for n in cfg.numeric]
        cols += [Column(name=n, kind="categorical", source="feature") for n in cfg.categorical]
        outputs = [Column(name=cfg.prediction, kind=cfg.prediction_type, source="prediction")]
        if cfg.score:
            outputs.append(Column(name=cfg.score, kind="numeric", source="score"))
        # a multiclass model's probability per class (`scores: {class: column}`)
        outputs += [
            Column(name=n, kind="numeric", source="class_score") for n in cfg.scores.values()
        ]
        self.class_scores: dict[str, str] = dict(cfg.scores)
        if cfg.label:
            outputs.append(Column(name=cfg.label, kind=cfg.prediction_type, source="label"))
        attrs = [Column(name=n, kind="categorical", source="attribute") for n in cfg.sensitive]
        review = [Column(name=n, kind="numeric", source="oversight") for n in OVERSIGHT]
        self.columns: tuple[Column, ...] = (*cols, *outputs, *attrs, *(review if oversight else ()))
        self._blank_review: Row = (None,) * len(OVERSIGHT) if oversight else ()
        self.features = tuple(cols)
        self.index = {c.name: i for i, c in enumerate(self.columns)}
        self._has_score = cfg.score is not None
        self._has_scores = bool(cfg.scores)
        self._has_label = cfg.label is not None

        features = _struct("Features", cols)
        scores = msgspec.defstruct(
            "Scores",
            [(f"c{i}", float | None, None) for i in range(len(cfg.scores))],
            rename={f"c{i}": label for i, label in enumerate(cfg.scores)},
            forbid_unknown_fields=True,  # a class the model does not have is an error
            frozen=True,
        )
        attributes = _struct("Attributes", attrs)
        label_type = _TYPES[cfg.prediction_type]
        self.privacy = privacy
        dropped = [(f"drop{i}", Any, None) for i in range(len(privacy.cfg.drop if privacy else ()))]
        drop_names = {f"drop{i}": n for i, n in enumerate(privacy.cfg.drop if privacy else ())}
        self.record_type = msgspec.defstruct(
            "ModelRecord",
            [
                ("id", str | int),
                ("features", features),
                ("prediction", _REQUIRED[cfg.prediction_type]),
                ("timestamp", datetime | float | None, None),
                ("score", float | None, None),
                # only a multiclass model's records take `scores` (no cost to the others)
                *(
                    [("scores", scores, msgspec.field(default_factory=scores))]
                    if cfg.scores
                    else []
                ),
                ("label", label_type, None),
                ("attributes", attributes, msgspec.field(default_factory=attributes)),
                *dropped,  # accepted so that they can be discarded: never read
            ],
            rename=drop_names or None,
            forbid_unknown_fields=True,
            frozen=True,
        )
        self.decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(self.record_type)
        self.batch_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(list[self.record_type])  # type: ignore[name-defined]
        # late ground truth: {id, label?, attributes?}, joined to sampled records by id
        self.label_name = cfg.label
        self.label_record_type = msgspec.defstruct(
            "LabelRecord",
            [
                ("id", str | int),
                ("label", label_type, None),
                ("attributes", attributes, msgspec.field(default_factory=attributes)),
            ],
            forbid_unknown_fields=True,
            frozen=True,
        )
        self.label_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(self.label_record_type)
        # human review of a decision: {id, reviewed?, overridden?, escalated?, complaint?,
        # reviewed_at?, reviewer?}; the reviewer is accepted and never stored (personal data)
        self.feedback_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(FeedbackRecord)
        self._attr_names = [c.name for c in attrs]
        hashed = privacy.columns if privacy else frozenset()
        self._hashed = [i for i, c in enumerate(self.columns) if c.name in hashed]

    def record_id(self, value: str | int) -> str:
        """A record's id as stored: hashed when the privacy rules say so."""
        rid = str(value)
        return self.privacy.record_id(rid) if self.privacy is not None and rid else rid

    def _hash(self, row: Row) -> Row:
        cells = list(row)
        assert self.privacy is not None
        for i in self._hashed:
            v = cells[i]
            if v is not None:
                cells[i] = self.privacy.token(category(v) or "")
        return tuple(cells)

    def label_cells(self, item: Any) -> dict[str, Cell]:
        """The columns a label item sets: the label and any attribute it carries (not null)."""
        cells: dict[str, Cell] = {}
        if self.label_name is not None and item.label is not None:
            cells[self.label_name] = item.label
        for name, value in zip(
            self._attr_names, msgspec.structs.astuple(item.attributes), strict=True
        ):
            if value is not None:
                cells[name] = value
        if self._hashed and self.privacy is not None:
            for name, value in cells.items():
                if name in self.privacy.columns and value is not None:
                    cells[name] = self.privacy.token(category(value) or "")
        return cells

    def row(self, record: Any) -> Row:
        """A decoded record as one row in column order."""
        out = msgspec.structs.astuple(record.features) + (record.prediction,)
        if self._has_score:
            out += (record.score,)
        if self._has_scores:
            out += msgspec.structs.astuple(record.scores)
        if self._has_label:
            out += (record.label,)
        out += msgspec.structs.astuple(record.attributes) + self._blank_review
        return self._hash(out) if self._hashed else out
