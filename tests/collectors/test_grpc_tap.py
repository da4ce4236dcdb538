"""The gRPC tap over real gRPC: a stand-in upstream and the tap, each a grpc.aio server on
loopback port 0 (the real model servers are in tests/integration/test_grpc_tap.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import grpc.aio
import pytest

from aims_agent.collectors.grpc_tap import GrpcTap
from aims_agent.collectors.protocols import oip_pb2 as pb
from aims_agent.collectors.protocols.oip_grpc import model_name
from aims_agent.config import GrpcProxyConfig
from aims_agent.metrics import Metrics
from tests.conftest import free_port

INFER = "/inference.GRPCInferenceService/ModelInfer"
STREAM = "/inference.GRPCInferenceService/ModelStreamInfer"  # Triton's bidirectional stream


def request(model: str, rid: str = "r") -> bytes:
    t = pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP64", shape=[1, 2])
    t.contents.fp64_contents.extend([1.0, 2.0])
    return pb.ModelInferRequest(model_name=model, id=rid, inputs=[t]).SerializeToString()


class Upstream(grpc.GenericRpcHandler):
    """Answers ModelInfer with the request's model name as `model_name`; a model named "fail"
    gets INVALID_ARGUMENT with trailers, "slow" waits; streams echo each message twice."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple[Any, ...]]] = []

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any]:
        method: str = details.method

        async def unary(body: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            self.seen.append((method, tuple(context.invocation_metadata() or ())))
            name = model_name(body) or ""
            await context.send_initial_metadata((("x-upstream", "yes"),))
            if name == "fail":
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "bad tensor", (("why-bin", b"\x01"),)
                )
            if name == "slow":
                await asyncio.sleep(2)
            context.set_trailing_metadata((("ce-id", "t-1"),))
            return pb.ModelInferResponse(model_name=name, id="resp").SerializeToString()

        async def stream(
            requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[bytes]:
            async for body in requests:
                yield body
                yield body

        if method == STREAM:
            return grpc.stream_stream_rpc_method_handler(stream)
        return grpc.unary_unary_rpc_method_handler(unary)


@asynccontextmanager
async def setup(
    models: dict[str, dict[str, Any]] | None = None, upstream_up: bool = True, **cfg: Any
) -> AsyncIterator[tuple[GrpcTap, grpc.aio.Channel, Upstream]]:
    handler = Upstream()
    server = grpc.aio.server(handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    if upstream_up:
        await server.start()
    else:
        port = free_port()  # nothing listens there
    settings = models or {"credit": {}}
    tap = GrpcTap(
        {
            name: GrpcProxyConfig(port=0, upstream=f"127.0.0.1:{port}", **cfg, **extra)
            for name, extra in settings.items()
        },
        Metrics(),
        clock=lambda: 5.0,
        chance=lambda: 0.5,
    )
    tap_port = await tap.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{tap_port}") as channel:
            yield tap, channel, handler
    finally:
        await tap.stop(0)
        await server.stop(0)


def samples(tap: GrpcTap, model: str, outcome: str) -> float:
    return tap.metrics.proxy_samples.labels(model, outcome)._value.get()  # type: ignore[no-any-return]


def calls(tap: GrpcTap, model: str, method: str, code: str) -> float:
    return tap.metrics.grpc_calls.labels(model, method, code)._value.get()  # type: ignore[no-any-return]


def test_metadata_and_trailers_pass_both_ways_and_the_call_is_sampled() -> None:
    async def main() -> None:
        async with setup() as (tap, channel, upstream):
            call = channel.unary_unary(INFER)(
                request("credit", "r-1"),
                metadata=(("x-request-id", "abc"), ("trace-bin", b"\x00\x01")),
                timeout=5,
            )
            body = await call
            assert pb.ModelInferResponse.FromString(body).id == "resp"
            assert ("x-upstream", "yes") in tuple(await call.initial_metadata())
            assert tuple(await call.trailing_metadata()) == (("ce-id", "t-1"),)
            [(_, seen)] = upstream.seen
            assert ("x-request-id", "abc") in seen and ("trace-bin", b"\x00\x01") in seen
            [ex] = tap.queue.take(5)
            assert (ex.model, ex.protocol, ex.request_id, ex.received_at) == (
                "credit",
                "oip-v2-grpc",
                "abc",
                5.0,
            )
            assert ex.request == request("credit", "r-1") and ex.response == body
            assert calls(tap, "credit", "ModelInfer", "OK") == 1

    asyncio.run(main())


def test_an_upstream_error_passes_with_code_details_and_trailers_and_is_not_sampled() -> None:
    async def main() -> None:
        async with setup() as (tap, channel, _):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await channel.unary_unary(INFER)(request("fail"), timeout=5)
            e = err.value
            assert (e.code(), e.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "bad tensor")
            assert ("why-bin", b"\x01") in tuple(e.trailing_metadata())
            assert ("x-upstream", "yes") in tuple(e.initial_metadata())
            assert len(tap.queue) == 0
            assert samples(tap, "credit", "not_ok") == 1
            assert calls(tap, "credit", "ModelInfer", "INVALID_ARGUMENT") == 1

    asyncio.run(main())


def test_the_clients_deadline_reaches_the_upstream() -> None:
    async def main() -> None:
        async with setup() as (tap, channel, _):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await channel.unary_unary(INFER)(request("slow"), timeout=0.3)
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert len(tap.queue) == 0

    asyncio.run(main())


def test_no_upstream_is_unavailable() -> None:
    async def main() -> None:
        async with setup(upstream_up=False) as (tap, channel, _):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await channel.unary_unary(INFER)(request("credit"), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert calls(tap, "credit", "ModelInfer", "UNAVAILABLE") == 1

    asyncio.run(main())


def test_a_method_outside_the_protocol_is_streamed_through() -> None:
    async def main() -> None:
        async with setup() as (tap, channel, _):
            call = channel.stream_stream(STREAM)(iter([b"a", b"bc"]), timeout=5)
            assert [m async for m in call] == [b"a", b"a", b"bc", b"bc"]
            assert await call.code() == grpc.StatusCode.OK
            assert calls(tap, "credit", "other", "OK") == 1
            assert len(tap.queue) == 0

    asyncio.run(main())


def test_one_port_routes_by_model_name_and_counts_unknown_models() -> None:
    async def main() -> None:
        models = {"credit": {}, "fraud": {"upstream_model": "fraud-v2"}, "churn": {}}
        async with setup(models) as (tap, channel, _):
            infer = channel.unary_unary(INFER)
            for name in ("credit", "fraud-v2", "churn", "fraud", "other"):
                await infer(request(name), timeout=5)
            assert [ex.model for ex in tap.queue.take(10)] == ["credit", "fraud", "churn"]
            assert samples(tap, "", "unknown_model") == 2  # "fraud" is routed as "fraud-v2"
            assert calls(tap, "", "ModelInfer", "OK") == 2
            assert calls(tap, "fraud", "ModelInfer", "OK") == 1

    asyncio.run(main())


def test_sample_rate_and_the_queue_bound_are_kept() -> None:
    async def main() -> None:
        models = {"credit": {"sample_rate": 0.4}, "fraud": {}}  # chance() is 0.5
        async with setup(models, max_queued_bytes=100) as (tap, channel, _):
            infer = channel.unary_unary(INFER)
            await infer(request("credit"), timeout=5)
            assert samples(tap, "credit", "not_sampled") == 1
            for _ in range(3):  # about 60 bytes each: the second does not fit
                await infer(request("fraud"), timeout=5)
            assert len(tap.queue) == 1
            assert samples(tap, "fraud", "dropped") == 2

    asyncio.run(main())


def test_model_name_is_read_from_the_wire_without_parsing() -> None:
    assert model_name(request("credit")) == "credit"
    assert model_name(pb.ModelInferRequest(id="x").SerializeToString()) is None
    assert model_name(b"\xff\xff") is None  # not a message
    # field 1 after other fields, as a hand-written serializer may put it
    late = pb.ModelInferRequest(id="x").SerializeToString() + b"\x0a\x03abc"
    assert model_name(late) == "abc"
