"""Tensor values sent as bytes: the gRPC `raw_input_contents` / `raw_output_contents` and the
HTTP binary data extension (Triton's `binary_data_size`) share one layout.

Numbers are little-endian, row-major, with no padding; BOOL is one byte per value; BYTES is each
element's length as a 4-byte little-endian integer followed by its bytes. BF16 has no numpy type
and is widened to float32 by shifting its 16 bits into the high half.
"""

from __future__ import annotations

import numpy as np

from aims_agent.collectors.protocols._core import Scalar
from aims_agent.errors import InvalidPayload

_DTYPES: dict[str, str] = {
    "BOOL": "?",
    "UINT8": "u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "BF16": "<u2",
}


def raw_values(raw: bytes, datatype: str, count: int, loc: str) -> list[Scalar]:
    """The `count` values of a tensor of `datatype` packed in `raw`; InvalidPayload if they do
    not fit."""
    if datatype == "BYTES":
        return _strings(raw, count, loc)
    dtype = _DTYPES.get(datatype)
    if dtype is None:
        raise InvalidPayload(loc, f"datatype {datatype[:40]!r} cannot be sent as raw bytes")
    size = np.dtype(dtype).itemsize
    if len(raw) != count * size:
        reason = f"{len(raw)} bytes do not hold {count} {datatype} values of {size} bytes"
        raise InvalidPayload(loc, reason)
    array = np.frombuffer(raw, dtype=dtype)
    if datatype == "BF16":
        array = (array.astype("<u4") << 16).view("<f4")
    values: list[Scalar] = array.tolist()
    return values


def _strings(raw: bytes, count: int, loc: str) -> list[Scalar]:
    """BYTES elements: a 4-byte little-endian length, then that many bytes (read as UTF-8)."""
    out: list[Scalar] = []
    view, pos = memoryview(raw), 0
    while pos < len(raw):
        if len(out) == count or pos + 4 > len(raw):
            raise InvalidPayload(
                loc, f"BYTES data does not end after {count} length-prefixed elements"
            )
        n = int.from_bytes(view[pos : pos + 4], "little")
        pos += 4
        if pos + n > len(raw):
            raise InvalidPayload(loc, f"BYTES element {len(out)} runs past the end of the data")
        out.append(text(bytes(view[pos : pos + n]), f"{loc}[{len(out)}]"))
        pos += n
    if len(out) != count:
        raise InvalidPayload(loc, f"{len(out)} BYTES elements, but the shape holds {count}")
    return out


def text(value: bytes, loc: str) -> str:
    """A BYTES element as text: features and predictions are strings in the records."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise InvalidPayload(loc, "BYTES element is not UTF-8 text") from None
