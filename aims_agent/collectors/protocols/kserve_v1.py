"""KServe / TF-Serving v1 REST protocol: `POST /v1/models/{name}:predict`.

Request: row format `{"instances": [...]}`, each instance a list (positional), a scalar (one
feature) or an object {feature: value}; or columnar format `{"inputs": ...}`, an object of
feature -> list of row values, or a list of rows. Response: `{"predictions": [...]}` (row
format) or `{"outputs": ...}` (columnar), one output per row: a scalar, a list of class scores
or an object of named outputs. The helpers are shared with the MLflow decoder.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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
from aims_agent.collectors.protocols._values import (
    feature_value,
    is_scalar,
    output,
    pair,
    row_features,
    server_error,
    transpose,
    unwrap,
)
from aims_agent.errors import InvalidPayload

RequestFormat = Callable[[object, Mapping, str], list[Features]]


def instances(value: object, mapping: Mapping, loc: str) -> list[Features]:
    """Row format: one instance per row."""
    if not isinstance(value, list):
        raise InvalidPayload(loc, f"expected a list of instances, got {describe(value)}")
    return [row_features(v, mapping, at(loc, i)) for i, v in enumerate(value)]


def _column_value(value: object, auto: bool, loc: str) -> tuple[bool, Any]:
    """(keep, value) of one named input's row value; without named features, skip non-scalars."""
    if auto:
        value = unwrap(value)
        return is_scalar(value), value
    return True, feature_value(value, loc)


def columnar(value: object, mapping: Mapping, loc: str) -> list[Features]:
    """Columnar format: `{feature: [row values]}` (all scalars: one row), `{input: [rows]}`
    (a single unnamed input read by position), or a list of rows."""
    if isinstance(value, list):
        return instances(value, mapping, loc)
    if not isinstance(value, dict):
        raise InvalidPayload(
            loc, f"expected an object of named inputs or a list, got {describe(value)}"
        )
    names = mapping.features
    if names and len(value) == 1 and not any(n in value for n in names):
        key, inner = next(iter(value.items()))
        if isinstance(inner, list):
            return instances(inner, mapping, at(loc, key))
        return [row_features(inner, mapping, at(loc, key))]
    wanted = names or [k for k in value if k != mapping.id_field]
    cols = {n: value[n] for n in wanted if n in value}
    out: list[Features] = []
    for i, row in enumerate(transpose(cols, loc)):
        features: Features = {}
        for name, raw in row.items():
            keep, v = _column_value(raw, not names, at(at(loc, name), i))
            if keep:
                features[name] = v
        out.append(features)
    return out


def per_row(value: object, loc: str) -> list[Any]:
    """Row outputs: a list as is, columnar `{output: [row values]}` transposed, a scalar as one."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return transpose(value, loc)
    return [value]


def outputs(
    response: object, mapping: Mapping, keys: tuple[str, ...], *, bare: bool
) -> tuple[list[Output], str]:
    """(outputs per row, location) from the first of `keys` in the response, or a bare list."""
    if bare and isinstance(response, list):
        return [output(v, mapping, at("response", i)) for i, v in enumerate(response)], "response"
    if isinstance(response, dict):
        for key in keys:
            if key in response:
                values = per_row(response[key], key)
                return [output(v, mapping, at(key, i)) for i, v in enumerate(values)], key
    wanted = " or ".join(repr(k) for k in keys)
    raise server_error(response, "response", f"expected an object with {wanted}")


def request_rows(
    request: object, mapping: Mapping, formats: dict[str, RequestFormat]
) -> list[Features]:
    """Rows from the request's one format key (`instances`, `inputs`, ...)."""
    if not isinstance(request, dict):
        raise InvalidPayload("request", f"expected an object, got {describe(request)}")
    present = [k for k in formats if k in request]
    if len(present) != 1:
        known = ", ".join(repr(k) for k in formats)
        found = ", ".join(repr(k) for k in present) or "none"
        raise InvalidPayload("request", f"expected exactly one of {known}; found {found}")
    key = present[0]
    return formats[key](request[key], mapping, key)


FORMATS: dict[str, RequestFormat] = {"instances": instances, "inputs": columnar}


def rows(request: object, response: object, mapping: Mapping) -> list[Row]:
    features = request_rows(request, mapping, FORMATS)
    outs, loc = outputs(response, mapping, ("predictions", "outputs"), bare=False)
    return pair(features, outs, loc)


_MODEL = r"(?:^|/)v1/models/[^/:]+(?:/(?:versions|labels)/[^/:]+)?"
DECODER = Decoder(
    name="kserve-v1",
    rows=rows,
    route=re.compile(rf"{_MODEL}:predict$"),
    family=re.compile(rf"{_MODEL}:\w+$"),  # :explain, :classify, :regress are not predictions
)
