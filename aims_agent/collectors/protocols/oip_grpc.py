"""Open Inference Protocol over gRPC: `inference.GRPCInferenceService/ModelInfer`.

The request and response are the protobuf `ModelInferRequest` / `ModelInferResponse` (see
`oip.proto`). Each tensor's values come from its typed `contents` field for its datatype, or,
when the message carries `raw_input_contents` / `raw_output_contents`, from the raw bytes at
the tensor's position. Both are turned into the JSON shape of the REST protocol and read by the
same rules (`oip_v2.rows`), so a model decodes alike whichever way it is called.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf.message import DecodeError

from aims_agent.collectors.protocols import oip_v2
from aims_agent.collectors.protocols._core import Decoder, Scalar, at
from aims_agent.collectors.protocols._raw import raw_values, text
from aims_agent.collectors.protocols.oip_pb2 import (
    InferTensorContents,
    ModelInferRequest,
    ModelInferResponse,
)
from aims_agent.errors import InvalidPayload

METHOD = "/inference.GRPCInferenceService/ModelInfer"


def _strings(contents: InferTensorContents, loc: str) -> list[Scalar]:
    return [text(v, f"{loc}[{i}]") for i, v in enumerate(contents.bytes_contents)]


def _field(name: str) -> Callable[[InferTensorContents, str], list[Scalar]]:
    return lambda contents, _: list(getattr(contents, name))


# datatype -> the typed `contents` field holding its values (FP16 and BF16 travel raw only)
_CONTENTS: dict[str, Callable[[InferTensorContents, str], list[Scalar]]] = {
    "BOOL": _field("bool_contents"),
    **dict.fromkeys(("INT8", "INT16", "INT32"), _field("int_contents")),
    "INT64": _field("int64_contents"),
    **dict.fromkeys(("UINT8", "UINT16", "UINT32"), _field("uint_contents")),
    "UINT64": _field("uint64_contents"),
    "FP32": _field("fp32_contents"),
    "FP64": _field("fp64_contents"),
    "BYTES": _strings,
}


def _tensors(tensors: Sequence[Any], raw: Sequence[bytes], key: str) -> list[dict[str, Any]]:
    if raw and len(raw) != len(tensors):
        reason = f"{len(raw)} raw contents for {len(tensors)} tensors; one each is required"
        raise InvalidPayload(f"raw_{'input' if key == 'inputs' else 'output'}_contents", reason)
    out = []
    for i, t in enumerate(tensors):
        loc, shape = at(key, i), list(t.shape)
        doc: dict[str, Any] = {"name": t.name, "shape": shape, "datatype": t.datatype}
        if any(d < 0 for d in shape):
            raise InvalidPayload(
                at(loc, "shape"), "expected a list of non-negative int64 dimensions"
            )
        if raw:
            doc["data"] = raw_values(raw[i], t.datatype, math.prod(shape), at(loc, "contents"))
        else:
            values = _CONTENTS.get(t.datatype)
            if values is None:
                known = ", ".join(oip_v2.DATATYPES)
                reason = f"{t.datatype[:40]!r} has no typed contents (known: {known}); send raw"
                raise InvalidPayload(at(loc, "datatype"), reason)
            doc["data"] = values(t.contents, at(loc, "contents"))
        out.append(doc)
    return out


def read(body: bytes, where: str, header_length: int | None) -> Any:
    """A serialized ModelInferRequest / ModelInferResponse as the REST protocol's JSON."""
    if header_length is not None:
        raise InvalidPayload(where, "gRPC messages carry no Inference-Header-Content-Length")
    doc: dict[str, Any]
    try:
        if where == "request":
            req = ModelInferRequest.FromString(body)
            doc = {"id": req.id, "inputs": _tensors(req.inputs, req.raw_input_contents, "inputs")}
        else:
            resp = ModelInferResponse.FromString(body)
            outputs = _tensors(resp.outputs, resp.raw_output_contents, "outputs")
            doc = {"id": resp.id, "model_name": resp.model_name, "outputs": outputs}
    except DecodeError as exc:
        raise InvalidPayload(where, f"not a valid protobuf message: {exc}") from None
    return doc


def model_name(request: bytes) -> str | None:
    """The `model_name` (field 1) of a serialized ModelInferRequest, read without parsing the
    rest (serializers write it first, so this is a few bytes' work); None if absent or the
    bytes are not a message."""
    view, pos, end = memoryview(request), 0, len(request)
    try:
        while pos < end:
            key, pos = _varint(view, pos)
            number, kind = key >> 3, key & 7
            if kind == 2:  # length-delimited
                length, pos = _varint(view, pos)
                if number == 1:
                    return bytes(view[pos : pos + length]).decode("utf-8", "replace")
                pos += length
            elif kind == 0:
                _, pos = _varint(view, pos)
            elif kind in (1, 5):  # fixed 64 / 32 bits
                pos += 8 if kind == 1 else 4
            else:
                return None
    except IndexError:
        return None
    return None


def _varint(view: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = view[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80 or shift > 63:
            return value, pos
        shift += 7


DECODER = Decoder(name="oip-v2-grpc", rows=oip_v2.rows, read=read)
