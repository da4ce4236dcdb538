"""The gRPC tap in front of real model servers: MLServer 1.7.1 and KServe 0.16's model server,
each serving the Open Inference Protocol over gRPC on loopback (tests/integration/upstreams).

The same calls go to the server directly and through the tap: message bytes, status code,
details, initial metadata and trailers must be the same, and the sampled ModelInfer exchanges
must decode into one record per batch row (typed contents and raw contents alike)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import numpy as np
import pytest

from aims_agent.collectors import protocols
from aims_agent.collectors.grpc_tap import GrpcTap
from aims_agent.collectors.protocols import oip_pb2 as pb
from aims_agent.config import GrpcProxyConfig
from aims_agent.metrics import Metrics
from tests.conftest import free_port
from tests.integration.upstreams import MODEL, Upstream, start_upstream

pytestmark = pytest.mark.integration
SERVICE = "/inference.GRPCInferenceService/"
ROWS = [[0.5, 3.0, 2.0], [-1.0, 1.0, 5.0], [0.1, 0.5, 9.0]]
MAPPING = protocols.Mapping(
    features=("x1", "x2", "x3"), prediction="predict", score="predict_proba", score_index=1
)


def infer_request(rid: str, rows: list[list[float]], *, raw: bool) -> pb.ModelInferRequest:
    """ModelInfer for `rows` as one FP64 [n, 3] input, typed or raw, asking for both outputs."""
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="input-0", datatype="FP64", shape=[len(rows), 3]
    )
    flat = [v for r in rows for v in r]
    request = pb.ModelInferRequest(
        model_name=MODEL,
        id=rid,
        outputs=[
            pb.ModelInferRequest.InferRequestedOutputTensor(name="predict"),
            pb.ModelInferRequest.InferRequestedOutputTensor(name="predict_proba"),
        ],
    )
    if raw:
        request.raw_input_contents.append(np.asarray(flat, dtype="<f8").tobytes())
    else:
        tensor.contents.fp64_contents.extend(flat)
    request.inputs.append(tensor)
    return request


@pytest.fixture(params=["mlserver", "kserve"])
def upstream(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Upstream]:
    up = start_upstream(request.param, tmp_path / "upstream")
    try:
        yield up
    finally:
        up.stop()


@asynccontextmanager
async def tap_for(target: str, **cfg: Any) -> AsyncIterator[tuple[GrpcTap, str]]:
    tap = GrpcTap(
        {"credit": GrpcProxyConfig(port=0, upstream=target, **cfg)}, Metrics(), clock=lambda: 7.0
    )
    port = await tap.start()
    try:
        yield tap, f"127.0.0.1:{port}"
    finally:
        await tap.stop(1)


async def outcome(
    channel: grpc.aio.Channel, method: str, body: bytes, *, deadline: float = 30, **kw: Any
) -> tuple[Any, ...]:
    """Everything the client sees of a unary call: message, code, details, both metadata."""
    call = channel.unary_unary(SERVICE + method)(body, timeout=deadline, **kw)
    try:
        message = await call
    except grpc.aio.AioRpcError as err:
        return (None, err.code(), err.details(), err.initial_metadata(), err.trailing_metadata())
    return (
        message,
        await call.code(),
        await call.details(),
        await call.initial_metadata(),
        await call.trailing_metadata(),
    )


def calls() -> list[tuple[str, bytes]]:
    """The health, metadata and inference calls, with errors among them."""
    out: list[tuple[str, bytes]] = [
        ("ServerLive", b""),
        ("ServerReady", b""),
        ("ModelReady", pb.ModelReadyRequest(name=MODEL).SerializeToString()),
        ("ServerMetadata", b""),
        ("ModelMetadata", pb.ModelMetadataRequest(name=MODEL).SerializeToString()),
        ("ModelMetadata", pb.ModelMetadataRequest(name="no-such-model").SerializeToString()),
    ]
    for i in range(6):
        rows = ROWS[: 1 + i % 3]
        out.append(
            ("ModelInfer", infer_request(f"g-{i}", rows, raw=i % 2 == 1).SerializeToString())
        )
    bad = infer_request("g-bad", ROWS, raw=False)
    bad.inputs[0].shape[:] = [3, 4]  # 9 values cannot fill [3, 4]
    out.append(("ModelInfer", bad.SerializeToString()))
    return out


def test_tapped_calls_are_answered_unchanged_and_inference_decodes(upstream: Upstream) -> None:
    async def main() -> None:
        async with (
            tap_for(upstream.grpc_target) as (tap, tapped),
            grpc.aio.insecure_channel(upstream.grpc_target) as direct_ch,
            grpc.aio.insecure_channel(tapped) as tap_ch,
        ):
            ready = direct_ch.unary_unary(SERVICE + "ServerReady")
            await ready(b"", wait_for_ready=True, timeout=60)
            codes = []
            for method, body in calls():
                metadata = (("x-request-id", f"hdr-{method}"), ("x-trace-bin", b"\x00\xff"))
                direct = await outcome(direct_ch, method, body, metadata=metadata)
                through = await outcome(tap_ch, method, body, metadata=metadata)
                assert through == direct, (method, through, direct)
                codes.append(direct[1])
            # the calls really covered answers and errors
            assert grpc.StatusCode.OK in codes and grpc.StatusCode.NOT_FOUND in codes
            assert codes[-1] != grpc.StatusCode.OK

        exchanges = tap.queue.take(100)
        assert [ex.request_id for ex in exchanges] == ["hdr-ModelInfer"] * 6
        records = []
        for ex in exchanges:
            records += protocols.decode(
                ex.protocol,
                ex.request,
                ex.response,
                path=ex.path,
                mapping=MAPPING,
                request_id=None,
            )
        ids = [r["id"] for r in records]
        assert ids[:4] == ["g-0", "g-1-0", "g-1-1", "g-2-0"]
        assert len(records) == 12
        first = records[0]
        assert first["features"] == dict(zip(MAPPING.features, ROWS[0], strict=True))
        assert first["prediction"] == 1
        assert first["score"] == pytest.approx(0.9724389590735393)
        # raw and typed requests of the same rows decode to the same records
        assert [r["features"] for r in records[1:3]] == [r["features"] for r in records[3:5]]
        assert records[2]["score"] == pytest.approx(0.019555297641231373)
        samples = tap.metrics.proxy_samples
        assert samples.labels("credit", "not_ok")._value.get() == 1  # the bad request
        assert samples.labels("credit", "not_inference")._value.get() == 6

    asyncio.run(main())


def test_an_unreachable_upstream_is_unavailable_and_a_slow_one_misses_the_deadline(
    tmp_path: Path,
) -> None:
    up = start_upstream("kserve", tmp_path / "upstream", delay=1.0)

    async def main() -> None:
        async with grpc.aio.insecure_channel(up.grpc_target) as ch:
            await ch.unary_unary(SERVICE + "ServerReady")(b"", wait_for_ready=True, timeout=60)
        body = infer_request("slow", ROWS, raw=False).SerializeToString()
        async with (
            tap_for(up.grpc_target) as (tap, tapped),
            grpc.aio.insecure_channel(tapped) as ch,
        ):
            _, code, *_ = await outcome(ch, "ModelInfer", body, deadline=0.3)
            assert code == grpc.StatusCode.DEADLINE_EXCEEDED
            async with (  # the tap's own limit holds for a client without a deadline
                tap_for(up.grpc_target, timeout_seconds=0.3) as (_, strict),
                grpc.aio.insecure_channel(strict) as strict_ch,
            ):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await strict_ch.unary_unary(SERVICE + "ModelInfer")(body)
                assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            up.stop()
            _, code, details, *_ = await outcome(ch, "ModelInfer", body)
            assert code == grpc.StatusCode.UNAVAILABLE, details
            # and nothing was sampled from the failed calls
            assert len(tap.queue) == 0
        async with (
            tap_for(f"127.0.0.1:{free_port()}") as (_, tapped),
            grpc.aio.insecure_channel(tapped) as ch,
        ):
            _, code, *_ = await outcome(ch, "ServerLive", b"")
            assert code == grpc.StatusCode.UNAVAILABLE

    try:
        asyncio.run(main())
    finally:
        up.stop()
