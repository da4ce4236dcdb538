"""What every protocol decoder shares: the mapping, the error, JSON locations, and the
`Decoder` wrapper.

Decoders work on parsed JSON (dicts, lists, scalars) and raise
`InvalidPayload(location, reason)`; the wrapper parses the bodies, names the protocol in the
error, and assigns record ids, so each protocol module only says where its rows and outputs
are (with the rules in `_values`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import msgspec

from aims_agent.errors import InvalidPayload, ProtocolError

Scalar = str | int | float | bool | None
Features = dict[str, Scalar]
# a score: the positive class's probability, or every class's by label (`Mapping.per_class`)
Score = float | dict[str, float] | None
Output = tuple[Scalar, Score]  # prediction, score (None: no score)
_JSON = msgspec.json.Decoder()
_ROOTS = ("request", "response")


@dataclass(frozen=True, slots=True, kw_only=True)
class Mapping:
    """Where a protocol's payloads hold the features, prediction and score of a model."""

    features: tuple[str, ...]  # feature names; column order for positional inputs
    prediction: str | None = None  # output tensor/field holding the prediction (default: first)
    score: str | None = None  # output tensor/field holding the score (probability)
    score_index: int | None = None  # column of a class-probability output taken as the score
    id_field: str = "id"  # body field (and, in plain JSON, row field) holding the request id
    classes: tuple[str | int, ...] = ()  # labels of class-probability columns; default: index
    # a class-probability output read as every class's score, by `classes` (multiclass models)
    per_class: bool = False
    input: str | None = None  # oip-v2: the input tensor holding positional features
    # plain JSON only: dot-separated paths; a non-numeric step into a list maps over its items
    records_path: str | None = None  # request: list of rows ("" = the body); None: body is a row
    features_path: str | None = None  # row: the features object or list; None: the row itself
    prediction_path: str | None = None  # response: predictions; None: the whole body
    score_path: str | None = None  # response: scores; None: from the prediction value

    def __post_init__(self) -> None:
        if self.score_index is not None and self.score_index < 0:
            raise ValueError(f"score_index must be >= 0, got {self.score_index}")
        if self.per_class and not self.classes:
            raise ValueError("per_class needs the classes of the probability columns")
        dupes = sorted({n for n in self.features if self.features.count(n) > 1})
        if dupes:
            raise ValueError(f"features must be unique, repeated: {', '.join(dupes)}")


@dataclass(frozen=True, slots=True)
class Row:
    """One decoded row: its features and outputs, and its own id if the payload gives one."""

    features: Features
    prediction: Scalar
    score: Score
    id: str | None = None


RowsFn = Callable[[Any, Any, Mapping], list[Row]]
# a body (and the length of its JSON part, when binary data follows it) -> plain JSON values
ReadFn = Callable[[bytes, str, int | None], Any]


def parse(body: bytes, where: str) -> Any:
    """A body as plain JSON values; every failure (also nesting too deep) is `InvalidPayload`."""
    try:
        return _JSON.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidPayload(where, f"not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidPayload(where, "JSON nested too deeply") from None


def read_json(body: bytes, where: str, header_length: int | None) -> Any:
    """A JSON body; binary data after it is only understood by protocols that read their own."""
    if header_length is not None:
        raise InvalidPayload(where, "binary data after the JSON (Inference-Header-Content-Length)")
    return parse(body, where)


@dataclass(frozen=True, slots=True, kw_only=True)
class Decoder:
    """One protocol: how to read its rows, and which URL paths are its inference calls.

    `route` matches the protocol's inference path (for `detect`); `family` matches the paths of
    its API, so that a health, metadata or explain call given for decoding is refused rather
    than misread. Paths outside the family (custom gateways) are accepted.
    """

    name: str
    rows: RowsFn
    route: re.Pattern[str] | None = None
    family: re.Pattern[str] | None = None
    read: ReadFn = read_json

    def __call__(
        self,
        request: bytes,
        response: bytes,
        *,
        path: str,
        mapping: Mapping,
        request_id: str | None,
        echoed_id: str | None = None,
        header_lengths: tuple[int | None, int | None] = (None, None),
    ) -> list[dict[str, object]]:
        try:
            if self._refuses(clean_path(path)):
                raise InvalidPayload("path", f"{path[:200]!r} is not an inference call")
            req = self.read(request, "request", header_lengths[0])
            resp = self.read(response, "response", header_lengths[1])
            rows = self.rows(req, resp, mapping)
        except InvalidPayload as exc:
            raise ProtocolError(self.name, exc.location, exc.reason) from None
        known = [request_id, body_id(req, mapping.id_field), body_id(resp, mapping.id_field)]
        ids = list(dict.fromkeys(i for i in [*known, echoed_id] if i))
        base, others = (ids[0], ids[1:]) if ids else (digest(request, response), [])
        return [_record(row, base, others, i, len(rows)) for i, row in enumerate(rows)]

    def _refuses(self, path: str) -> bool:
        """A path of this protocol's API that is not its inference route."""
        if self.family is None or not self.family.search(path):
            return False
        return self.route is None or not self.route.search(path)


def _record(row: Row, base: str, others: list[str], index: int, count: int) -> dict[str, object]:
    """A row as a push-shaped record; `aliases` are the exchange's other ids, per row alike."""
    suffix = "" if count == 1 else f"-{index}"
    record: dict[str, object] = {
        "id": row.id if row.id is not None else base + suffix,
        "features": row.features,
        "prediction": row.prediction,
    }
    if isinstance(row.score, dict):
        record["scores"] = row.score
    elif row.score is not None:
        record["score"] = row.score
    if others and row.id is None:
        record["aliases"] = [other + suffix for other in others]
    return record


def clean_path(path: str) -> str:
    """The URL path without query, percent-encoding or trailing slash."""
    return unquote(path.partition("?")[0]).rstrip("/")


def digest(request: bytes, response: bytes) -> str:
    """A stable id for an exchange without one, so a replayed exchange gets the same ids."""
    h = hashlib.blake2b(digest_size=8)
    h.update(len(request).to_bytes(8, "big"))
    h.update(request)
    h.update(response)
    return h.hexdigest()


def body_id(doc: object, field: str) -> str | None:
    """The id a JSON object carries in `field` (a non-empty string or an integer), if any."""
    if not isinstance(doc, dict):
        return None
    value = doc.get(field)
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def at(loc: str, key: str | int) -> str:
    """The location of `key` inside `loc`; keys of a body are named without the body."""
    if isinstance(key, int):
        return f"{loc}[{key}]"
    return key if loc in _ROOTS else f"{loc}.{key}"


def describe(value: object) -> str:
    """A short name of a JSON value's type for messages (never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return f"a list of {len(value)} values"
    return "an object"


def keys_of(obj: dict[Any, Any]) -> str:
    """The keys of an object for messages, shortened."""
    names = sorted(str(k)[:40] for k in obj)
    return ", ".join(names[:10]) + (", ..." if len(names) > 10 else "") if names else "none"
