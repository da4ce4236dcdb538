"""The payload-logger receiver with events built as KServe's, Seldon Core's and ModelMesh's
senders build them (tests/logger_events.py names the source files and versions)."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from aims_agent.collectors.logger_pairs import Pending, decode_pair, protocol_of
from aims_agent.collectors.loggers import Event, Pair, parse_cloudevent, parse_partial
from aims_agent.collectors.protocols import oip_pb2 as pb
from aims_agent.config import KServeLoggerConfig, SchemaConfig
from aims_agent.errors import PayloadError
from aims_agent.schema import ModelSchema
from tests import logger_events

NOW = 1_800_000_000.0
SCHEMA = ModelSchema(
    SchemaConfig(numeric=("x1", "x2", "x3"), prediction="prediction", score="score")
)
V2 = KServeLoggerConfig(prediction="predict", score="proba")


def lower(headers: dict[str, str]) -> dict[str, str]:
    """Headers as the ASGI app sees them."""
    return {k.lower(): v for k, v in headers.items()}


def v2_bodies(rid: str | None, rows: list[list[float]]) -> tuple[bytes, bytes]:
    n = len(rows)
    request: dict[str, Any] = {
        "inputs": [{"name": "input-0", "shape": [n, 3], "datatype": "FP64", "data": sum(rows, [])}]
    }
    response: dict[str, Any] = {
        "model_name": "credit-model",
        "outputs": [
            {"name": "predict", "shape": [n], "datatype": "INT64", "data": [1] * n},
            {"name": "proba", "shape": [n], "datatype": "FP64", "data": [0.75] * n},
        ],
    }
    if rid is not None:
        request["id"] = response["id"] = rid
    return json.dumps(request).encode(), json.dumps(response).encode()


def kserve_pair(
    ce_id: str, request: bytes, response: bytes, *, at: float = NOW - 5, **kw: Any
) -> Pair:
    return Pair(
        parse_cloudevent(
            lower(logger_events.kserve("request", ce_id, at=at, **kw)),
            request,
            id_header="X-Request-ID",
        ),
        parse_cloudevent(
            lower(logger_events.kserve("response", ce_id, at=at + 0.01, **kw)),
            response,
            id_header="X-Request-ID",
        ),
    )


def test_kserve_events_pair_into_records_timed_and_named_by_every_id() -> None:
    req, resp = v2_bodies("body-7", [[0.1, 2.0, 3.0], [0.5, 1.0, 4.0]])
    pair = kserve_pair("ce-7", req, resp, request_id="client-7")
    assert pair.request.time == pytest.approx(NOW - 5)
    decoded, clamped = decode_pair(V2, SCHEMA, pair, now=NOW)
    assert not clamped and decoded.timestamps == [pytest.approx(NOW - 5)] * 2
    assert decoded.ids == ["client-7-0", "client-7-1"]  # the client's X-Request-Id first
    assert decoded.aliases == [("body-7-0", "ce-7-0"), ("body-7-1", "ce-7-1")]
    assert decoded.rows[0][:3] == (0.1, 2.0, 3.0) and not decoded.errors


def test_without_a_kept_header_the_body_id_names_the_record() -> None:
    req, resp = v2_bodies("body-8", [[0.1, 2.0, 3.0]])
    decoded, _ = decode_pair(V2, SCHEMA, kserve_pair("ce-8", req, resp), now=NOW)
    assert decoded.ids == ["body-8"] and decoded.aliases == [("ce-8",)]
    req, resp = v2_bodies(None, [[0.1, 2.0, 3.0]])
    decoded, _ = decode_pair(V2, SCHEMA, kserve_pair("ce-9", req, resp), now=NOW)
    assert decoded.ids == ["ce-9"] and decoded.aliases == []


def test_the_protocol_is_told_by_each_body() -> None:
    v1_req = json.dumps({"instances": [[0.1, 2.0, 3.0]]}).encode()
    v1_resp = json.dumps({"predictions": [1]}).encode()
    v1 = kserve_pair("a", v1_req, v1_resp)
    v2 = kserve_pair("b", *v2_bodies("b", [[0.1, 2.0, 3.0]]))
    assert (protocol_of(v1, "auto"), protocol_of(v2, "auto")) == ("kserve-v1", "oip-v2")
    columnar = kserve_pair("c", b'{"inputs": {"x1": [1.0]}}', v1_resp)
    assert protocol_of(columnar, "auto") == "kserve-v1"
    seldon = kserve_pair("d", b'{"data": {"ndarray": [[1, 2, 3]]}}', b"{}")
    assert protocol_of(seldon, "auto") == "seldon"
    assert protocol_of(v1, "oip-v2") == "oip-v2"  # a configured protocol is kept
    decoded, _ = decode_pair(KServeLoggerConfig(), SCHEMA, v1, now=NOW)
    assert decoded.rows == [(0.1, 2.0, 3.0, 1, None)]
    with pytest.raises(PayloadError, match=r"cannot tell the protocol from its keys \(rows\)"):
        protocol_of(kserve_pair("e", b'{"rows": []}', b"{}"), "auto")
    with pytest.raises(PayloadError, match="not a JSON object"):
        protocol_of(kserve_pair("f", b"\x00\x01", b"{}"), "auto")


def test_a_gzipped_body_is_read_whether_or_not_a_header_says_so() -> None:
    req, resp = v2_bodies("g", [[0.1, 2.0, 3.0]])
    headers = lower(logger_events.kserve("response", "g", at=NOW))
    assert parse_cloudevent(headers, gzip.compress(resp), id_header="x").body == resp
    said = {**headers, "content-encoding": "gzip"}
    assert parse_cloudevent(said, gzip.compress(resp), id_header="x").body == resp
    with pytest.raises(PayloadError, match="gzip body cannot be decompressed"):
        parse_cloudevent(said, b"\x1f\x8bnot gzip", id_header="x")
    with pytest.raises(PayloadError, match="content-encoding 'br' is not decoded"):
        parse_cloudevent({**headers, "content-encoding": "br"}, resp, id_header="x")


@pytest.mark.parametrize(
    ("at", "stamp", "clamped"),
    [
        (NOW - 30, NOW - 30, False),
        (NOW - 7200, NOW - 3600, True),  # a logger that lagged two hours: its oldest allowed
        (NOW + 30, NOW + 30, False),
        (NOW + 600, NOW, True),  # a clock far ahead: now
    ],
)
def test_ce_time_is_the_record_time_within_bounds(at: float, stamp: float, clamped: bool) -> None:
    pair = kserve_pair("t", *v2_bodies("t", [[0.1, 2.0, 3.0]]), at=at)
    decoded, was = decode_pair(V2, SCHEMA, pair, now=NOW)
    assert decoded.timestamps == [pytest.approx(stamp, abs=0.02)] and was is clamped


def test_unreadable_time_and_bad_events_are_named() -> None:
    headers = lower(logger_events.kserve("request", "x", at=NOW)) | {"ce-time": "yesterday"}
    assert parse_cloudevent(headers, b"{}", id_header="x").time is None
    with pytest.raises(PayloadError, match="missing ce-id"):
        parse_cloudevent({k: v for k, v in headers.items() if k != "ce-id"}, b"{}", id_header="x")
    with pytest.raises(PayloadError, match="ce-type 'io.other' is not one of"):
        parse_cloudevent(headers | {"ce-type": "io.other"}, b"{}", id_header="x")


def event(key: str, half: str, size: int = 10) -> Event:
    return Event(key=key, half=half, body=b"x" * size)  # type: ignore[arg-type]


def test_pending_halves_expire_on_time_and_are_capped_in_count_and_bytes() -> None:
    p = Pending(timeout=60, max_halves=3, max_bytes=100)
    assert p.add(event("a", "request"), now=0) == (None, 0)
    assert p.add(event("b", "response", 50), now=10) == (None, 0)
    assert (len(p), p.bytes) == (2, 60)
    assert p.expire(now=61) == 1 and (len(p), p.bytes) == (1, 50)  # "a" waited too long
    assert p.add(event("c", "request", 60), now=62) == (None, 1)  # 110 bytes: "b" goes
    pair, dropped = p.add(event("c", "response", 5), now=63)
    assert pair is not None and dropped == 0 and (len(p), p.bytes) == (0, 0)
    # a half sent again replaces the first
    p.add(event("d", "request", 20), now=64)
    p.add(event("d", "request", 30), now=65)
    assert (len(p), p.bytes) == (1, 30)
    for key in "efg":
        p.add(event(key, "request"), now=66)
    assert len(p) == 3  # "d" was evicted to keep three halves at most


def seldon_pair(puid: str, request: bytes, response: bytes, **kw: Any) -> Pair:
    events = [
        parse_cloudevent(
            lower(logger_events.seldon(half, puid, at=NOW - 1, **kw)), body, id_header="x"
        )
        for half, body in (("request", request), ("response", response))
    ]
    return Pair(*events)


def test_seldon_events_pair_by_request_id_though_their_ce_ids_differ() -> None:
    request = b'{"data": {"names": ["x1", "x2", "x3"], "ndarray": [[0.1, 2.0, 3.0], [1, 1, 1]]}}'
    response = (
        b'{"meta": {"puid": "p-1"}, "data": {"names": ["t:0", "t:1"], '
        b'"ndarray": [[0.2, 0.8], [0.9, 0.1]]}}'
    )
    pair = seldon_pair("p-1", request, response)
    assert pair.request.event_id != pair.response.event_id
    pending = Pending(timeout=60, max_halves=10, max_bytes=10_000)
    assert pending.add(pair.response, now=NOW)[0] is None
    paired, _ = pending.add(pair.request, now=NOW)
    assert paired is not None and paired.request.model == "classifier"
    cfg = KServeLoggerConfig(score_index=1)
    decoded, _ = decode_pair(cfg, SCHEMA, paired, now=NOW)
    assert decoded.ids[0] == "p-1-0" and decoded.aliases[0] == (f"{pair.request.event_id}-0",)
    assert decoded.rows == [(0.1, 2.0, 3.0, 1, 0.8), (1.0, 1.0, 1.0, 0, 0.1)]


def test_seldon_protocols_map_to_decoders() -> None:
    v1 = seldon_pair(
        "q", b'{"instances": [[0.1, 2.0, 3.0]]}', b'{"predictions": [1]}', protocol="tensorflow"
    )
    assert protocol_of(v1, "auto") == "kserve-v1"
    t = pb.ModelInferRequest.InferInputTensor(name="input-0", datatype="FP64", shape=[1, 3])
    t.contents.fp64_contents.extend([0.1, 2.0, 3.0])
    o = pb.ModelInferResponse.InferOutputTensor(name="predict", datatype="INT64", shape=[1])
    o.contents.int64_contents.append(1)
    grpc = seldon_pair(
        "r",
        pb.ModelInferRequest(inputs=[t]).SerializeToString(),
        pb.ModelInferResponse(outputs=[o]).SerializeToString(),
        protocol="v2",
        content_type="application/protobuf",
    )
    assert protocol_of(grpc, "auto") == "oip-v2-grpc"
    decoded, _ = decode_pair(KServeLoggerConfig(), SCHEMA, grpc, now=NOW)
    assert decoded.rows == [(0.1, 2.0, 3.0, 1, None)] and decoded.ids == ["r"]
    with pytest.raises(PayloadError, match="Seldon protobuf payload"):
        seldon_pair("s", b"\x1a\x00", b"", content_type="application/protobuf")


def test_modelmesh_partials_pair_and_decode_as_grpc() -> None:
    t = pb.ModelInferRequest.InferInputTensor(name="input-0", datatype="FP64", shape=[1, 3])
    t.contents.fp64_contents.extend([0.1, 2.0, 3.0])
    o = pb.ModelInferResponse.InferOutputTensor(name="predict", datatype="INT64", shape=[1])
    o.contents.int64_contents.append(0)
    req = parse_partial(
        logger_events.partial(
            "request", "u-1", pb.ModelInferRequest(inputs=[t]).SerializeToString()
        )
    )
    resp = parse_partial(
        logger_events.partial(
            "response", "u-1", pb.ModelInferResponse(outputs=[o]).SerializeToString()
        )
    )
    assert (req.key, req.model, resp.half) == ("u-1", "example-model-1", "response")
    decoded, _ = decode_pair(KServeLoggerConfig(), SCHEMA, Pair(req, resp), now=NOW)
    assert decoded.ids == ["u-1"] and decoded.rows == [(0.1, 2.0, 3.0, 0, None)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "JSON object"),
        (b"{", "not JSON"),
        (b'{"id": "1", "kind": "other", "data": ""}', "kind: must be request or response"),
        (b'{"kind": "request", "data": ""}', "id: a non-empty string"),
        (b'{"id": "1", "kind": "request"}', "data: base64"),
        (b'{"id": "1", "kind": "request", "data": "***"}', "not valid base64"),
    ],
)
def test_bad_partials_are_named(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse_partial(body)
