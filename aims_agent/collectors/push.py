"""The push collector: decode an ingest body (JSON array or NDJSON) into schema-checked rows.

Every record is decoded and validated on its own, so one bad record is reported by position,
id and field instead of failing the batch at the first error. What happens to the valid rest of
a batch is the caller's policy (`reject` the batch or `skip` the invalid records).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from aims_agent.errors import PayloadError, RecordError
from aims_agent.records import Cell, Row
from aims_agent.schema import ModelSchema, epoch, feedback_cells

OnError = Literal["reject", "skip"]
_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])
_ID_ONLY = msgspec.json.Decoder(dict[str, object])
MAX_ERRORS = 100  # errors reported per response; all are counted
# msgspec refuses JSON nested deeper than the interpreter's recursion limit (a RecursionError,
# caught wherever a body is decoded); a record is flat, so nothing valid comes near it
TOO_DEEP = "JSON nested too deeply"
DECODE_CHUNK = 250  # records per decoder call: a few milliseconds each


@dataclass(frozen=True, slots=True, kw_only=True)
class Decoded:
    """The valid rows of a body, with their ids and times, and every record error found."""

    rows: list[Row]
    ids: list[str]
    timestamps: list[float]
    errors: list[RecordError]
    aliases: list[tuple[str, ...]] = field(default_factory=list)  # per row; empty: none at all


# How a collector hands rows to the agent: `Deliver` samples decoded rows into the model's window
# and returns once they are durable (the count sampled), raising StorageError or
# BackpressureError; `Reject` counts records that failed validation.
Deliver = Callable[[Decoded], Awaitable[int]]
Reject = Callable[[int], None]


def split_body(body: bytes, content_type: str) -> list[bytes]:
    """One raw JSON document per record. NDJSON by content type, or by not starting with `[`."""
    stripped = body.lstrip()
    if not stripped:
        raise PayloadError("body is empty; send a JSON array or NDJSON of records")
    if "ndjson" in content_type or "jsonl" in content_type or not stripped.startswith(b"["):
        return [line for line in stripped.splitlines() if line.strip()]
    try:
        return [bytes(raw) for raw in _ARRAY.decode(stripped)]
    except msgspec.DecodeError as exc:
        raise PayloadError(f"body is not a JSON array: {exc}") from None
    except RecursionError:
        raise PayloadError(f"body is not a JSON array: {TOO_DEEP}") from None


def field_of(message: str) -> tuple[str, str]:
    """msgspec says 'Expected `str`, got `int` - at `$.features.x`'; split reason and field."""
    reason, sep, where = message.rpartition(" - at `$")
    if not sep:
        reason, where = message, ""
    field = where.rstrip("`").lstrip(".")
    if reason.startswith("Object contains unknown field `"):
        name = reason.split("`")[1]
        return (f"{field}.{name}" if field else name), "is not a known field"
    return field or "record", reason


def problem_of(message: str) -> tuple[str, str]:
    """`field_of`, with a missing required field named as the field itself ("is required")."""
    field, reason = field_of(message)
    if reason.startswith("Object missing required field `"):
        name = reason.split("`")[1]
        return (name if field == "record" else f"{field}.{name}"), "is required"
    return field, reason


def _id_of(raw: bytes) -> str | None:
    try:
        doc = _ID_ONLY.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    rid = doc.get("id")
    return None if rid is None else str(rid)


def decode_records(body: bytes, content_type: str, schema: ModelSchema, *, now: float) -> Decoded:
    """Decode and validate every record; raise PayloadError only when the body is unreadable.

    The batch is decoded DECODE_CHUNK records per call (a thread decoding a large body hands
    the interpreter back between calls); only a chunk with a bad record is decoded again record
    by record, to name each bad one.
    """
    parts = split_body(body, content_type)
    if len(parts) <= DECODE_CHUNK:
        fast = _decode_valid_batch(parts, schema, now=now)
        return fast if fast is not None else _decode_each(parts, schema, now=now)
    out = Decoded(rows=[], ids=[], timestamps=[], errors=[])
    for start in range(0, len(parts), DECODE_CHUNK):
        chunk = parts[start : start + DECODE_CHUNK]
        part = _decode_valid_batch(chunk, schema, now=now)
        if part is None:
            part = _decode_each(chunk, schema, now=now, offset=start)
        out.rows.extend(part.rows)
        out.ids.extend(part.ids)
        out.timestamps.extend(part.timestamps)
        out.errors.extend(part.errors)
    return out


def _decode_valid_batch(parts: list[bytes], schema: ModelSchema, *, now: float) -> Decoded | None:
    """The batch as rows if every record is valid, else None."""
    try:
        records = schema.batch_decoder.decode(b"[" + b",".join(parts) + b"]")
    except (msgspec.DecodeError, RecursionError):  # ValidationError included
        return None
    if len(records) != len(parts):  # e.g. two JSON objects on one NDJSON line
        return None
    raw = [str(r.id) for r in records]
    if any(not rid or len(rid) > 256 for rid in raw):
        return None
    ids = [schema.record_id(rid) for rid in raw]
    try:
        stamps = [now if r.timestamp is None else epoch(r.timestamp, default=now) for r in records]
    except ValueError:
        return None
    row_of = schema.row
    return Decoded(rows=[row_of(r) for r in records], ids=ids, timestamps=stamps, errors=[])


def _decode_one(decoder: msgspec.json.Decoder[Any], raw: bytes, index: int) -> Any:
    """One item, or a RecordError naming its position, id and field."""
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        field, reason = field_of(str(exc))
        raise RecordError(index=index, record_id=_id_of(raw), field=field, reason=reason) from None
    except msgspec.DecodeError as exc:
        raise RecordError(
            index=index, record_id=None, field="record", reason=f"not valid JSON: {exc}"
        ) from None
    except RecursionError:
        raise RecordError(
            index=index, record_id=_id_of(raw), field="record", reason=TOO_DEEP
        ) from None


def _decode_each(
    parts: list[bytes], schema: ModelSchema, *, now: float, offset: int = 0
) -> Decoded:
    rows: list[Row] = []
    ids: list[str] = []
    stamps: list[float] = []
    errors: list[RecordError] = []
    for index, raw in enumerate(parts, start=offset):
        try:
            record = _decode_one(schema.decoder, raw, index)
            rid = str(record.id)
            if not rid or len(rid) > 256:
                raise RecordError(
                    index=index,
                    record_id=rid[:64],
                    field="id",
                    reason="must be 1 to 256 characters",
                )
            try:
                stamp = epoch(record.timestamp, default=now)
            except ValueError as exc:
                raise RecordError(
                    index=index, record_id=rid, field="timestamp", reason=str(exc)
                ) from None
        except RecordError as err:
            errors.append(err)
            continue
        rows.append(schema.row(record))
        ids.append(schema.record_id(rid))
        stamps.append(stamp)
    return Decoded(rows=rows, ids=ids, timestamps=stamps, errors=errors)


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodedLabels:
    """Valid label items (record id and the columns they set) and every item error."""

    ids: list[str]
    cells: list[dict[str, Cell]]
    errors: list[RecordError]


def _decode_joins(
    body: bytes,
    content_type: str,
    schema: ModelSchema,
    decoder: msgspec.json.Decoder[Any],
    cells_of: Callable[[Any, int], dict[str, Cell]],
    nothing: tuple[str, str],
) -> DecodedLabels:
    """Items joined to records by id (labels, feedback), one at a time: each item's cells, or
    a RecordError naming its field; an item that sets nothing is the error `nothing` (field,
    reason)."""
    ids: list[str] = []
    cells: list[dict[str, Cell]] = []
    errors: list[RecordError] = []
    for index, raw in enumerate(split_body(body, content_type)):
        try:
            item = _decode_one(decoder, raw, index)
            values = cells_of(item, index)
        except RecordError as err:
            errors.append(err)
            continue
        if not values:
            field, reason = nothing
            errors.append(
                RecordError(index=index, record_id=str(item.id), field=field, reason=reason)
            )
            continue
        ids.append(schema.record_id(item.id))
        cells.append(values)
    return DecodedLabels(ids=ids, cells=cells, errors=errors)


def decode_labels(body: bytes, content_type: str, schema: ModelSchema) -> DecodedLabels:
    """Decode `[{id, label?, attributes?}]` (or NDJSON of them), one item at a time."""
    return _decode_joins(
        body,
        content_type,
        schema,
        schema.label_decoder,
        lambda item, _: schema.label_cells(item),
        ("label", "neither a label nor a sensitive attribute given"),
    )


def decode_feedback(
    body: bytes, content_type: str, schema: ModelSchema, *, now: float
) -> DecodedLabels:
    """Decode human-review feedback `[{id, reviewed?, overridden?, escalated?, complaint?,
    reviewed_at?, reviewer?}]` (or NDJSON of them), one item at a time, into the oversight
    columns it sets; the reviewer's name is read and dropped."""

    def cells_of(item: Any, index: int) -> dict[str, Cell]:
        try:
            return feedback_cells(item, now=now)
        except ValueError as exc:  # reviewed_at out of range
            raise RecordError(
                index=index, record_id=str(item.id), field="reviewed_at", reason=str(exc)
            ) from None

    return _decode_joins(
        body,
        content_type,
        schema,
        schema.feedback_decoder,
        cells_of,
        ("reviewed", "none of reviewed, overridden, escalated, complaint given"),
    )


_LINE = msgspec.json.Decoder(dict[str, Any])


def rename_fields(line: bytes, fields: dict[str, str]) -> bytes:
    """A log line with its keys renamed to record fields (`{"id": "request_id"}` maps the log's
    `request_id` to `id`); a line that is not a JSON object is left for the decoder to report."""
    try:
        doc = _LINE.decode(line)
    except (msgspec.DecodeError, RecursionError):
        return line
    for name, key in fields.items():
        if key in doc:
            doc[name] = doc.pop(key)
    return msgspec.json.encode(doc)
