"""Seldon Core's own protocol (v1): `POST /api/v1.0/predictions` (or `/api/v0.1/...`).

Request and response are a SeldonMessage as JSON: `{"data": {"names"?: [...], "ndarray":
[rows]}}` or `{"data": {"names"?, "tensor": {"shape": [n, k], "values": [flat]}}}`, plus `meta`
(`puid`, tags, routing) and, on errors, `status`. `names` names the columns: the features of a
request row when they match, the outputs of a response row (a scikit-learn `predict_proba`
answers `["t:0", "t:1"]`: a class-score list). `jsonData`, `strData` and `binData` carry no
table to read.
"""

from __future__ import annotations

import math
import re
from typing import Any

from aims_agent.collectors.protocols._core import (
    Decoder,
    Features,
    Mapping,
    Output,
    Row,
    at,
    describe,
)
from aims_agent.collectors.protocols._values import output, pair, row_features, server_error
from aims_agent.errors import InvalidPayload

_OTHER = ("jsonData", "strData", "binData", "customData")


def _table(doc: object, where: str) -> tuple[list[str] | None, list[Any], str]:
    """(column names, rows, location) of a SeldonMessage's `data`."""
    if not isinstance(doc, dict) or "data" not in doc:
        for key in _OTHER:
            if isinstance(doc, dict) and key in doc:
                raise InvalidPayload(key, "a SeldonMessage without tabular data cannot be decoded")
        status = doc.get("status") if isinstance(doc, dict) else None
        if isinstance(status, dict) and isinstance(status.get("info"), str):
            reason = f"the model server returned an error: {status['info'][:300]}"
            raise InvalidPayload(where, reason)
        raise server_error(doc, where, "expected an object with 'data'")
    data = doc["data"]
    if not isinstance(data, dict):
        raise InvalidPayload("data", f"expected an object, got {describe(data)}")
    names = data.get("names")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) for n in names)
    ):
        raise InvalidPayload("data.names", "expected a list of strings")
    if "ndarray" in data:
        rows = data["ndarray"]
        if not isinstance(rows, list):
            raise InvalidPayload("data.ndarray", f"expected a list of rows, got {describe(rows)}")
        return names or None, rows, "data.ndarray"
    if "tensor" in data:
        return names or None, _tensor_rows(data["tensor"]), "data.tensor.values"
    raise InvalidPayload("data", "expected 'ndarray' or 'tensor'")


def _tensor_rows(tensor: object) -> list[Any]:
    loc = "data.tensor"
    if not isinstance(tensor, dict):
        raise InvalidPayload(loc, f"expected an object, got {describe(tensor)}")
    shape, values = tensor.get("shape"), tensor.get("values")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape)
    ):
        raise InvalidPayload(at(loc, "shape"), "expected a non-empty list of non-negative int32")
    if not isinstance(values, list) or len(values) != math.prod(shape):
        got = len(values) if isinstance(values, list) else describe(values)
        raise InvalidPayload(at(loc, "values"), f"{got} values do not fit shape {shape[:8]}")
    if len(shape) == 1:
        return values
    width = math.prod(shape[1:])
    return [values[i * width : (i + 1) * width] for i in range(shape[0])]


def _named(names: list[str] | None, row: object) -> object:
    """A row as an object of its named columns, when the names fit it."""
    if names is not None and isinstance(row, list) and len(row) == len(names):
        return dict(zip(names, row, strict=True))
    return row


def rows(request: object, response: object, mapping: Mapping) -> list[Row]:
    names, req_rows, loc = _table(request, "request")
    by_name = names is not None and (not mapping.features or set(mapping.features) & set(names))
    features: list[Features] = [
        row_features(_named(names, r) if by_name else r, mapping, at(loc, i))
        for i, r in enumerate(req_rows)
    ]
    out_names, resp_rows, out_loc = _table(response, "response")
    named = out_names is not None and any(
        n in out_names for n in (mapping.prediction, mapping.score) if n
    )
    outs: list[Output] = [
        output(_named(out_names, r) if named else r, mapping, at(out_loc, i))
        for i, r in enumerate(resp_rows)
    ]
    return pair(features, outs, out_loc)


_API = r"(?:^|/)api/v(?:0\.1|1\.0)"
DECODER = Decoder(
    name="seldon",
    rows=rows,
    route=re.compile(rf"{_API}/predictions$"),
    family=re.compile(rf"{_API}/\w+(?:/[^/]+)?$"),  # status, metadata, feedback: not predictions
)
