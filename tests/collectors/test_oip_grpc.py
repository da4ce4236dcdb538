"""Tensors as bytes: the gRPC ModelInfer messages (typed and raw contents) and the HTTP binary
data extension, decoded into the same records as the JSON form of the protocol."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aims_agent.collectors.protocols import Mapping, ProtocolError, decode
from aims_agent.collectors.protocols import oip_pb2 as pb
from aims_agent.collectors.protocols._core import InvalidPayload
from aims_agent.collectors.protocols._raw import raw_values

REPO = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO / "aims_agent" / "collectors" / "protocols"
MAPPING = Mapping(features=("a", "b"), prediction="label", score="proba", score_index=1)
# numpy's little-endian dtype for each datatype the raw layout carries as numbers
NUMPY = {
    "BOOL": "?", "UINT8": "u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
    "INT8": "i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}  # fmt: skip


def json_pair(rows: list[list[float]], rid: str = "j") -> tuple[bytes, bytes]:
    n = len(rows)
    request = {
        "id": rid,
        "inputs": [
            {"name": "x", "shape": [n, 2], "datatype": "FP64", "data": sum(rows, [])},
        ],
    }
    response = {
        "outputs": [
            {"name": "label", "shape": [n], "datatype": "INT64", "data": [1] * n},
            {"name": "proba", "shape": [n, 2], "datatype": "FP32", "data": [0.25, 0.75] * n},
        ]
    }
    return json.dumps(request).encode(), json.dumps(response).encode()


def grpc_pair(rows: list[list[float]], rid: str = "j", *, raw: bool) -> tuple[bytes, bytes]:
    n = len(rows)
    x = pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP64", shape=[n, 2])
    label = pb.ModelInferResponse.InferOutputTensor(name="label", datatype="INT64", shape=[n])
    proba = pb.ModelInferResponse.InferOutputTensor(name="proba", datatype="FP32", shape=[n, 2])
    flat = sum(rows, [])
    if not raw:  # filled before the tensors are copied into their messages
        x.contents.fp64_contents.extend(flat)
        label.contents.int64_contents.extend([1] * n)
        proba.contents.fp32_contents.extend([0.25, 0.75] * n)
    request = pb.ModelInferRequest(model_name="m", id=rid, inputs=[x])
    response = pb.ModelInferResponse(model_name="m", outputs=[label, proba])
    if raw:
        request.raw_input_contents.append(np.asarray(flat, "<f8").tobytes())
        response.raw_output_contents.append(np.ones(n, "<i8").tobytes())
        response.raw_output_contents.append(np.asarray([0.25, 0.75] * n, "<f4").tobytes())
    return request.SerializeToString(), response.SerializeToString()


def records(protocol: str, request: bytes, response: bytes, **kw: Any) -> list[dict[str, object]]:
    return decode(protocol, request, response, path="", mapping=MAPPING, request_id=None, **kw)


@pytest.mark.parametrize("raw", [False, True])
def test_grpc_messages_decode_like_their_json_form(raw: bool) -> None:
    rows = [[0.5, 3.0], [-1.0, 2.5], [7.0, 0.0]]
    assert records("oip-v2-grpc", *grpc_pair(rows, raw=raw)) == records("oip-v2", *json_pair(rows))


def test_every_typed_contents_field_and_bytes_as_text() -> None:
    cases = {
        "BOOL": ("bool_contents", [True, False]),
        "INT8": ("int_contents", [-3, 4]),
        "INT32": ("int_contents", [-(2**31), 5]),
        "INT64": ("int64_contents", [2**40, -1]),
        "UINT16": ("uint_contents", [0, 65535]),
        "UINT64": ("uint64_contents", [2**63, 1]),
        "FP32": ("fp32_contents", [0.5, -2.0]),
        "FP64": ("fp64_contents", [0.1, 1e300]),
        "BYTES": ("bytes_contents", ["é".encode(), b"b"]),
    }
    for datatype, (field, values) in cases.items():
        a = pb.ModelInferRequest.InferInputTensor(name="a", datatype=datatype, shape=[2])
        getattr(a.contents, field).extend(values)
        b = pb.ModelInferRequest.InferInputTensor(name="b", datatype="FP64", shape=[2])
        b.contents.fp64_contents.extend([0.0, 0.0])
        label = pb.ModelInferResponse.InferOutputTensor(name="label", datatype="INT64", shape=[2])
        label.contents.int64_contents.extend([0, 1])
        out = decode(
            "oip-v2-grpc",
            pb.ModelInferRequest(inputs=[a, b]).SerializeToString(),
            pb.ModelInferResponse(outputs=[label]).SerializeToString(),
            path="",
            mapping=Mapping(features=("a", "b")),
            request_id=None,
        )
        expected = [v.decode() if isinstance(v, bytes) else v for v in values]
        assert [r["features"]["a"] for r in out] == expected, datatype  # type: ignore[index]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.raw_input_contents.extend([b"", b""]), "raw_input_contents: 2 raw contents"),
        (lambda r: r.inputs[0].shape.__setitem__(0, -1), "inputs[0].shape: expected a list"),
        (lambda r: setattr(r.inputs[0], "datatype", "FP16"), "has no typed contents"),
        (lambda r: setattr(r.inputs[0], "datatype", "FP8"), "has no typed contents"),
        (lambda r: r.inputs[0].contents.fp64_contents.append(1.0), "7 values do not fit"),
    ],
)
def test_malformed_messages_are_protocol_errors(change: Any, message: str) -> None:
    request_bytes, response = grpc_pair([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], raw=False)
    request = pb.ModelInferRequest.FromString(request_bytes)
    change(request)
    with pytest.raises(ProtocolError, match="^oip-v2-grpc: ") as err:
        records("oip-v2-grpc", request.SerializeToString(), response)
    assert message in str(err.value)


def test_bytes_that_are_no_message_are_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="oip-v2-grpc: request: not a valid protobuf"):
        records("oip-v2-grpc", b"\xff\xff\xff", b"")


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(NUMPY)).flatmap(
        lambda t: st.tuples(st.just(t), hnp.arrays(NUMPY[t], st.integers(0, 12)))
    )
)
def test_raw_values_read_every_numeric_layout(case: tuple[str, np.ndarray]) -> None:
    datatype, array = case
    values = raw_values(array.tobytes(), datatype, array.size, "x")
    expected = array.tolist()
    assert len(values) == len(expected)
    for got, want in zip(values, expected, strict=True):
        assert got == want or (math.isnan(want) and math.isnan(got))  # type: ignore[arg-type]
        assert type(got) is type(want)


def test_raw_bf16_and_length_prefixed_bytes() -> None:
    floats = np.asarray([1.5, -2.0, 0.15625], "<f4")
    bf16 = (floats.view("<u4") >> 16).astype("<u2").tobytes()
    assert raw_values(bf16, "BF16", 3, "x") == [1.5, -2.0, 0.15625]
    packed = b"".join(len(s).to_bytes(4, "little") + s for s in (b"ab", b"", "é".encode()))
    assert raw_values(packed, "BYTES", 3, "x") == ["ab", "", "é"]
    for bad, count, reason in (
        (packed, 2, "does not end after 2"),
        (packed[:-1], 3, "runs past the end"),
        (packed + b"\x01", 3, "does not end after 3"),
        (b"\x01\x00\x00\x00\xff", 1, "not UTF-8"),
        (b"\x00" * 7, 1, "7 bytes do not hold 1 FP64"),
    ):
        with pytest.raises(InvalidPayload, match=reason):
            raw_values(bad, "FP64" if "FP64" in reason else "BYTES", count, "x")


def binary_body(rows: list[list[float]]) -> tuple[bytes, int]:
    """An HTTP request with the binary data extension: JSON, then the input's bytes."""
    data = np.asarray(sum(rows, []), "<f8").tobytes()
    header = {
        "id": "j",
        "inputs": [
            {
                "name": "x",
                "shape": [len(rows), 2],
                "datatype": "FP64",
                "parameters": {"binary_data_size": len(data)},
            }
        ],
    }
    text = json.dumps(header).encode()
    return text + data, len(text)


def test_http_binary_data_extension_decodes_like_json() -> None:
    rows = [[0.5, 3.0], [-1.0, 2.5]]
    body, length = binary_body(rows)
    _, response = json_pair(rows)
    got = records("oip-v2", body, response, header_lengths=(length, None))
    assert got == records("oip-v2", *json_pair(rows))
    # a response with binary outputs too: the label inline, the probabilities as bytes
    proba = np.asarray([0.25, 0.75] * 2, "<f4").tobytes()
    out = {
        "outputs": [
            {"name": "label", "shape": [2], "datatype": "INT64", "data": [1, 1]},
            {
                "name": "proba",
                "shape": [2, 2],
                "datatype": "FP32",
                "parameters": {"binary_data_size": len(proba)},
            },
        ]
    }
    text = json.dumps(out).encode()
    both = records("oip-v2", body, text + proba, header_lengths=(length, len(text)))
    assert both == got


@pytest.mark.parametrize(
    ("tweak", "message"),
    [
        (lambda b, n: (b + b"\x00", n), "1 bytes of binary data belong to no tensor"),
        (lambda b, n: (b[:-1], n), "binary_data_size 16 runs past the end"),
        (lambda b, n: (b, len(b) + 1), "beyond its"),
        (lambda b, n: (b, n - 1), "request: not valid JSON"),
    ],
)
def test_binary_data_that_does_not_add_up_is_a_protocol_error(tweak: Any, message: str) -> None:
    body, length = binary_body([[0.5, 3.0]])
    body, length = tweak(body, length)
    _, response = json_pair([[0.5, 3.0]])
    with pytest.raises(ProtocolError, match="^oip-v2: ") as err:
        records("oip-v2", body, response, header_lengths=(length, None))
    assert message in str(err.value)


def test_other_protocols_refuse_binary_data() -> None:
    with pytest.raises(ProtocolError, match="kserve-v1: request: binary data after the JSON"):
        records("kserve-v1", b"{}", b"{}", header_lengths=(2, None))


def test_the_checked_in_modules_are_what_protos_sh_generates(tmp_path: Path) -> None:
    """oip_pb2.py and .pyi are generated by scripts/protos.sh (grpcio-tools, the dev extra)."""
    out = tmp_path / "out"
    out.mkdir()
    proto = "aims_agent/collectors/protocols/oip.proto"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", ".", f"--python_out={out}",
         f"--pyi_out={out}", proto],
        cwd=REPO,
        check=True,
    )  # fmt: skip
    for name in ("oip_pb2.py", "oip_pb2.pyi"):
        generated = (out / "aims_agent/collectors/protocols" / name).read_text()
        assert generated == (PROTO_DIR / name).read_text(), f"run scripts/protos.sh: {name}"


CONTENT_FIELDS = [f.name for f in pb.InferTensorContents.DESCRIPTOR.fields]


@st.composite
def grpc_tensors(draw: st.DrawFn, cls: Any) -> Any:
    """Mostly well-formed tensors: a datatype, a shape, and values in some contents field."""
    t = cls(
        name=draw(st.sampled_from(["a", "b", "label", "proba"])),
        datatype=draw(st.sampled_from([*NUMPY, "BYTES", "BF16", "FP8"])),
        shape=draw(st.lists(st.integers(-1, 3), max_size=3)),
    )
    field = draw(st.sampled_from(CONTENT_FIELDS))
    n = draw(st.integers(0, 7))
    values = {
        "bool_contents": st.booleans(),
        "bytes_contents": st.binary(max_size=3),
        "fp32_contents": st.floats(width=32),
        "fp64_contents": st.floats(),
        "int_contents": st.integers(-(2**31), 2**31 - 1),
        "int64_contents": st.integers(-(2**63), 2**63 - 1),
        "uint_contents": st.integers(0, 2**32 - 1),
        "uint64_contents": st.integers(0, 2**64 - 1),
    }[field]
    getattr(t.contents, field).extend(draw(st.lists(values, min_size=n, max_size=n)))
    return t


@settings(max_examples=400, deadline=None)
@given(
    st.lists(grpc_tensors(pb.ModelInferRequest.InferInputTensor), max_size=3),
    st.lists(grpc_tensors(pb.ModelInferResponse.InferOutputTensor), max_size=3),
    st.lists(st.binary(max_size=24), max_size=3),
    st.lists(st.binary(max_size=24), max_size=3),
)
def test_arbitrary_messages_raise_only_protocol_errors(inputs, outputs, raw_in, raw_out) -> None:
    request = pb.ModelInferRequest(inputs=inputs, raw_input_contents=raw_in)
    response = pb.ModelInferResponse(outputs=outputs, raw_output_contents=raw_out)
    for mapping in (MAPPING, Mapping(features=("a", "b")), Mapping(features=())):
        try:
            out = decode(
                "oip-v2-grpc",
                request.SerializeToString(),
                response.SerializeToString(),
                path="",
                mapping=mapping,
                request_id=None,
            )
        except ProtocolError as exc:
            assert str(exc).startswith("oip-v2-grpc: ")
        else:
            assert all(isinstance(r["id"], str) for r in out)
