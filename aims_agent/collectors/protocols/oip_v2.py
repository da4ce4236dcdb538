"""Open Inference Protocol v2 (KServe v2, Triton, MLServer): `POST /v2/models/{name}/infer`.

Request `{"id"?, "inputs": [tensor]}`, response `{"model_name", "id"?, "outputs": [tensor]}`, a
tensor being `{"name", "shape", "datatype", "data"}` with `data` flat (row-major) or nested. The
first dimension is the batch. Features come either from one [batch, n_features] tensor read by
position, or from one [batch] / [batch, 1] tensor per feature, named after it.

Triton's binary data extension: when the body's JSON is followed by binary data, the
`Inference-Header-Content-Length` header gives the JSON's length; each tensor without `data`
whose `parameters.binary_data_size` is set takes that many bytes of it, in tensor order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aims_agent.collectors.protocols._core import (
    Decoder,
    Features,
    Mapping,
    Output,
    Row,
    Scalar,
    at,
    describe,
    parse,
)
from aims_agent.collectors.protocols._raw import raw_values
from aims_agent.collectors.protocols._values import (
    output,
    pair,
    score_value,
    server_error,
)
from aims_agent.errors import InvalidPayload

_INT64_MAX = 2**63 - 1
Check = Callable[[object], Scalar]  # a JSON element as the datatype's value, or raise ValueError


def _integer(low: int, high: int) -> Check:
    def check(v: object) -> Scalar:
        if isinstance(v, int) and not isinstance(v, bool) and low <= v <= high:
            return v
        raise ValueError

    return check


def _float(v: object) -> Scalar:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)  # OverflowError for ints beyond the float range
    raise ValueError


def _bool(v: object) -> Scalar:
    if isinstance(v, bool):
        return v
    raise ValueError


def _bytes(v: object) -> Scalar:
    if isinstance(v, str):
        return v
    raise ValueError


# the spec's tensor datatypes (plus Triton's BF16); BYTES travel as strings in JSON
DATATYPES: dict[str, Check] = {
    "BOOL": _bool,
    **{f"UINT{b}": _integer(0, 2**b - 1) for b in (8, 16, 32, 64)},
    **{f"INT{b}": _integer(-(2 ** (b - 1)), 2 ** (b - 1) - 1) for b in (8, 16, 32, 64)},
    **dict.fromkeys(("FP16", "FP32", "FP64", "BF16"), _float),
    "BYTES": _bytes,
}


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str
    shape: list[int]
    datatype: str
    values: list[Scalar]  # flat, row-major, typed
    loc: str

    @property
    def shape_text(self) -> str:
        return _shape_text(self.shape)

    @property
    def batch(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def width(self) -> int:
        """Values per batch row."""
        return math.prod(self.shape[1:])

    def rows(self) -> list[Any]:
        """One value per row, or one flat list per row when a row holds a vector."""
        wide = [d for d in self.shape[1:] if d != 1]
        if not wide:
            return list(self.values)
        if len(wide) > 1:
            reason = (
                f"shape {self.shape_text} is neither [batch] nor [batch, n] (one vector per row)"
            )
            raise InvalidPayload(self.loc, reason)
        w = self.width
        if w == 0:  # [batch, 0]: no values, and batch may be any size; don't build empty rows
            raise InvalidPayload(self.loc, f"shape {self.shape_text} has no values per row")
        return [self.values[i * w : (i + 1) * w] for i in range(self.batch)]


def _shape_text(shape: list[int]) -> str:
    text = str(shape)
    return text if len(text) <= 60 else text[:56] + " ...]"


def _flatten(data: object) -> list[object]:
    """Nested lists in row-major order, without recursion (payloads may nest deeply)."""
    if not isinstance(data, list):
        return [data]
    out: list[object] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def tensor(doc: object, loc: str) -> Tensor:
    """A tensor object validated against the spec: shape, datatype, element count and types."""
    if not isinstance(doc, dict):
        raise InvalidPayload(loc, f"expected a tensor object, got {describe(doc)}")
    name = doc.get("name")
    if not isinstance(name, str):
        raise InvalidPayload(at(loc, "name"), f"expected a string, got {describe(name)}")
    shape = doc.get("shape")
    if not isinstance(shape, list) or not all(_dimension(d) for d in shape):
        # int64 dims keep the element count cheap to compute whatever the body holds
        raise InvalidPayload(at(loc, "shape"), "expected a list of non-negative int64 dimensions")
    datatype = doc.get("datatype")
    if not isinstance(datatype, str):
        raise InvalidPayload(at(loc, "datatype"), f"expected a string, got {describe(datatype)}")
    check = DATATYPES.get(datatype)
    if check is None:
        known = ", ".join(DATATYPES)
        raise InvalidPayload(
            at(loc, "datatype"), f"unknown datatype {datatype[:40]!r}; known: {known}"
        )
    if "data" not in doc:
        params = doc.get("parameters")
        if isinstance(params, dict) and "binary_data_size" in params:
            reason = "binary_data_size without the Inference-Header-Content-Length header"
            raise InvalidPayload(loc, reason)
        raise InvalidPayload(at(loc, "data"), "is missing")
    flat = _flatten(doc["data"])
    if len(flat) != math.prod(shape):
        raise InvalidPayload(
            at(loc, "data"), f"{len(flat)} values do not fit shape {_shape_text(shape)}"
        )
    values: list[Scalar] = []
    for i, v in enumerate(flat):
        try:
            values.append(check(v))
        except (ValueError, OverflowError):
            reason = f"value {i} (row-major) is {describe(v)}, not a valid {datatype}"
            raise InvalidPayload(at(loc, "data"), reason) from None
    return Tensor(name, shape, datatype, values, loc)


def _tensors(body: object, key: str, where: str) -> list[Tensor]:
    if not isinstance(body, dict) or key not in body:
        raise server_error(body, where, f"expected an object with {key!r}")
    raw = body[key]
    if not isinstance(raw, list) or not raw:
        raise InvalidPayload(key, f"expected a non-empty list of tensors, got {describe(raw)}")
    return [tensor(doc, at(key, i)) for i, doc in enumerate(raw)]


def _by_name(tensors: list[Tensor], name: str, key: str) -> Tensor:
    for t in tensors:
        if t.name == name:
            return t
    names = ", ".join(repr(t.name[:40]) for t in tensors[:10])
    raise InvalidPayload(key, f"no tensor named {name!r} (have: {names})")


def _positional(t: Tensor, mapping: Mapping) -> list[Features]:
    names = mapping.features
    if not names:
        raise InvalidPayload(t.loc, "positional feature values need mapping.features to name them")
    if t.width != len(names):
        reason = (
            f"shape {t.shape_text} has {t.width} values per row, but mapping.features names "
            f"{len(names)}; a positional input is [batch, n_features]"
        )
        raise InvalidPayload(t.loc, reason)
    w = t.width
    return [dict(zip(names, t.values[i * w : (i + 1) * w], strict=True)) for i in range(t.batch)]


def _named(tensors: list[Tensor]) -> list[Features]:
    first = tensors[0]
    columns: dict[str, list[Scalar]] = {}
    for t in tensors:
        if t.width != 1:
            reason = f"shape {t.shape_text} is not one value per row; a feature input is [batch, 1]"
            raise InvalidPayload(t.loc, reason)
        if t.batch != first.batch:
            raise InvalidPayload(
                t.loc, f"{t.batch} rows, but input {first.name[:40]!r} has {first.batch}"
            )
        columns[t.name] = t.values
    return [{n: col[i] for n, col in columns.items()} for i in range(first.batch)]


def _features(request: object, mapping: Mapping) -> list[Features]:
    """Rows of features: the input named by mapping.input, else one input per feature, else the
    only input read by position."""
    tensors = _tensors(request, "inputs", "request")
    if mapping.input is not None:
        return _positional(_by_name(tensors, mapping.input, "inputs"), mapping)
    chosen = [t for t in tensors if t.name in mapping.features] if mapping.features else tensors
    if chosen:
        return _named(chosen)
    if len(tensors) == 1:
        return _positional(tensors[0], mapping)
    reason = f"{len(tensors)} inputs and none is named after a feature; set mapping.input"
    raise InvalidPayload("inputs", reason)


def _outputs(response: object, mapping: Mapping, n_rows: int) -> tuple[list[Output], str]:
    tensors = _tensors(response, "outputs", "response")
    pred = (
        tensors[0]
        if mapping.prediction is None
        else _by_name(tensors, mapping.prediction, "outputs")
    )
    values = pred.rows()
    if len(values) != n_rows:
        raise InvalidPayload(pred.loc, f"{len(values)} predictions for {n_rows} request rows")
    data = at(pred.loc, "data")
    outs = [output(v, mapping, at(data, i)) for i, v in enumerate(values)]
    if mapping.score is not None:
        st = _by_name(tensors, mapping.score, "outputs")
        scores = st.rows()
        if len(scores) != n_rows:
            raise InvalidPayload(st.loc, f"{len(scores)} scores for {n_rows} request rows")
        sdata = at(st.loc, "data")
        outs = [
            (p, score_value(s, mapping, at(sdata, i)))
            for i, ((p, _), s) in enumerate(zip(outs, scores, strict=True))
        ]
    return outs, pred.loc


def rows(request: object, response: object, mapping: Mapping) -> list[Row]:
    features = _features(request, mapping)
    outs, loc = _outputs(response, mapping, len(features))
    return pair(features, outs, loc)


def read(body: bytes, where: str, header_length: int | None) -> Any:
    """A JSON body, with the binary data after its first `header_length` bytes (if given) put
    into the `data` of the tensors that name a `binary_data_size`."""
    if header_length is None:
        return parse(body, where)
    if not 0 <= header_length <= len(body):
        reason = f"Inference-Header-Content-Length {header_length} is beyond its {len(body)} bytes"
        raise InvalidPayload(where, reason)
    doc = parse(body[:header_length], where)
    binary, pos = memoryview(body)[header_length:], 0
    key = "inputs" if where == "request" else "outputs"
    tensors = doc.get(key) if isinstance(doc, dict) else None
    for i, t in enumerate(tensors if isinstance(tensors, list) else []):
        size = _binary_size(t)
        if size is None:
            continue
        loc = at(key, i)
        if pos + size > len(binary):
            raise InvalidPayload(
                loc, f"binary_data_size {size} runs past the end of the binary data"
            )
        chunk = bytes(binary[pos : pos + size])
        pos += size
        shape = t.get("shape")
        if isinstance(shape, list) and all(_dimension(d) for d in shape):  # else tensor() says
            t["data"] = raw_values(chunk, str(t.get("datatype")), math.prod(shape), at(loc, "data"))
    if pos != len(binary):
        raise InvalidPayload(where, f"{len(binary) - pos} bytes of binary data belong to no tensor")
    return doc


def _dimension(d: object) -> bool:
    return isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= _INT64_MAX


def _binary_size(t: object) -> int | None:
    """The `binary_data_size` of a tensor without inline `data`, if it has one."""
    if not isinstance(t, dict) or "data" in t:
        return None
    params = t.get("parameters")
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


_MODEL = r"/models/[^/]+(?:/versions/[^/]+)?"
DECODER = Decoder(
    name="oip-v2",
    rows=rows,
    read=read,
    route=re.compile(rf"(?:^|/)v2{_MODEL}/infer$"),
    # server/model metadata, health, readiness, generate, repository: not inference calls
    family=re.compile(rf"(?:^|/)v2(?:/health/\w+|/repository.*|{_MODEL}(?:/\w+)?)?$"),
)
