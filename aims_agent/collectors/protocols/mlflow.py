"""MLflow scoring server: `POST /invocations`.

Request: a JSON object with exactly one of `dataframe_split` (`{"columns", "data", "index"?}`),
`dataframe_records` (a list of objects), `instances` or `inputs` (TF-Serving formats), plus
optional `params`; MLflow 1.x bodies, a bare list of records or a top-level `{"columns",
"data"}`, are read too. Response: `{"predictions": [...]}` (MLflow 2.x) or a bare list (older
servers), each prediction a scalar, a list of class scores, or an object of named outputs (a
DataFrame result); columnar `{"predictions": {name: [...]}}` is transposed.
"""

from __future__ import annotations

import re

from aims_agent.collectors.protocols import kserve_v1
from aims_agent.collectors.protocols._core import (
    Decoder,
    Features,
    Mapping,
    Row,
    at,
    describe,
)
from aims_agent.collectors.protocols._values import (
    named,
    pair,
    positional,
)
from aims_agent.errors import InvalidPayload


def dataframe_split(value: object, mapping: Mapping, loc: str) -> list[Features]:
    """pandas `split` orient: column names and rows of values; without columns, by position."""
    if not isinstance(value, dict):
        raise InvalidPayload(
            loc, f"expected an object with 'columns' and 'data', got {describe(value)}"
        )
    data_loc = at(loc, "data")
    data = value.get("data")
    if not isinstance(data, list):
        raise InvalidPayload(data_loc, f"expected a list of rows, got {describe(data)}")
    columns = value.get("columns")
    if columns is None:
        return [positional(row, mapping, at(data_loc, i)) for i, row in enumerate(data)]
    if not isinstance(columns, list) or not all(
        isinstance(c, str) or (isinstance(c, int) and not isinstance(c, bool)) for c in columns
    ):
        raise InvalidPayload(at(loc, "columns"), "expected a list of column names")
    names = [str(c) for c in columns]
    out: list[Features] = []
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(names):
            reason = f"expected a list of {len(names)} values (one per column), got {describe(row)}"
            raise InvalidPayload(at(data_loc, i), reason)
        out.append(named(dict(zip(names, row, strict=True)), mapping, at(data_loc, i)))
    return out


def dataframe_records(value: object, mapping: Mapping, loc: str) -> list[Features]:
    """pandas `records` orient: one object per row."""
    if not isinstance(value, list):
        raise InvalidPayload(loc, f"expected a list of records, got {describe(value)}")
    out: list[Features] = []
    for i, row in enumerate(value):
        if not isinstance(row, dict):
            raise InvalidPayload(at(loc, i), f"expected an object, got {describe(row)}")
        out.append(named(row, mapping, at(loc, i)))
    return out


FORMATS: dict[str, kserve_v1.RequestFormat] = {
    "dataframe_split": dataframe_split,
    "dataframe_records": dataframe_records,
    "instances": kserve_v1.instances,
    "inputs": kserve_v1.columnar,
}


def _features(request: object, mapping: Mapping) -> list[Features]:
    if isinstance(request, list):  # MLflow 1.x pandas-records body
        return dataframe_records(request, mapping, "request")
    if (
        isinstance(request, dict)
        and "columns" in request
        and "data" in request
        and not any(k in request for k in FORMATS)
    ):  # MLflow 1.x pandas-split body
        return dataframe_split(request, mapping, "request")
    return kserve_v1.request_rows(request, mapping, FORMATS)


def rows(request: object, response: object, mapping: Mapping) -> list[Row]:
    features = _features(request, mapping)
    outs, loc = kserve_v1.outputs(response, mapping, ("predictions",), bare=True)
    return pair(features, outs, loc)


DECODER = Decoder(
    name="mlflow",
    rows=rows,
    route=re.compile(r"(?:^|/)invocations$"),
    family=re.compile(r"^/(?:ping|health|version|invocations)$"),
)
