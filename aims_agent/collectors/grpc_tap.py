"""The gRPC tap: a `grpc.aio` server in front of a model server's Open Inference Protocol
(`inference.GRPCInferenceService`, as MLServer, KServe and Triton serve it).

Every call is forwarded as bytes, never parsed on the way: the client's metadata and deadline
go to the upstream; the upstream's message, initial metadata, status code, details and trailers
come back. The protocol's unary methods (ModelInfer, the health, metadata and repository calls)
are forwarded as unary calls; any other method as a stream, so an extension's streaming method
(Triton's ModelStreamInfer) passes too. An upstream that cannot be reached answers UNAVAILABLE;
one slower than the client's deadline (or `timeout_seconds`) DEADLINE_EXCEEDED.

A ModelInfer call answered OK is sampled by its model's `sample_rate` and queued for decoding
off the call path, as the HTTP tap does. The model is told by the request's `model_name`, read
from the message's bytes without parsing the rest.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import grpc
import grpc.aio

from aims_agent.collectors.protocols.oip_grpc import METHOD, model_name
from aims_agent.collectors.tap import UNROUTED, Exchange, ExchangeQueue, Routes
from aims_agent.config import GrpcProxyConfig
from aims_agent.metrics import Metrics

_SERVICE = "/inference.GRPCInferenceService/"
_REPOSITORY = "/inference.model_repository.ModelRepositoryService/"  # MLServer's
_UNARY: dict[str, str] = {
    _SERVICE + m: m
    for m in (
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
        "RepositoryModelLoad",
        "RepositoryModelUnload",
    )
} | {
    _REPOSITORY + m: m for m in ("RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload")
}
# set by gRPC itself on every call: forwarding them would duplicate or contradict its own
_OWN_METADATA = frozenset({"user-agent", "te", "content-type", "grpc-accept-encoding"})
Metadata = Sequence[tuple[str, str | bytes]]


class GrpcTap:
    """The gRPC tap of one listener and the models behind it: `start()` binds and returns the
    port, `stop()` ends it; sampled ModelInfer exchanges wait in `queue`."""

    def __init__(
        self,
        models: Mapping[str, GrpcProxyConfig],
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
        chance: Callable[[], float] = random.random,
    ) -> None:
        self.routes = Routes(models)
        self.cfg = cfg = self.routes.first
        self.metrics, self.clock, self.chance = metrics, clock, chance
        self.queue = ExchangeQueue(cfg.max_queued_bytes)
        self._id_key = cfg.id_header.lower()
        self._server: grpc.aio.Server | None = None
        self._channel: grpc.aio.Channel | None = None
        self._unary: dict[str, grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = {}
        self.port = 0
        self._counters: dict[tuple[str, ...], Any] = {}  # series children, bound once each
        self._histograms: dict[str, Any] = {}
        # routing by the request's model_name is needed only to choose among models
        self._by_name = self.routes.shared or cfg.upstream_model is not None

    # lifecycle -------------------------------------------------------------------------------

    async def start(self) -> int:
        """Connect the upstream channel (lazily), bind and start serving; the bound port."""
        cfg = self.cfg
        size = [
            ("grpc.max_receive_message_length", cfg.max_message_bytes),
            ("grpc.max_send_message_length", cfg.max_message_bytes),
        ]
        self._channel = grpc.aio.insecure_channel(cfg.upstream, options=size)
        self._server = grpc.aio.server(
            handlers=[_Handler(self)],
            # SO_REUSEPORT would let a second process bind the same port without an error
            options=[*size, ("grpc.so_reuseport", 0)],
        )
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        self.port = self._server.add_insecure_port(f"{host}:{cfg.port}")
        await self._server.start()
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting; calls in flight get `grace` seconds to finish."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    # forwarding ------------------------------------------------------------------------------

    def _call(self, method: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
        call = self._unary.get(method)
        if call is None:
            assert self._channel is not None, "GrpcTap.start() was not awaited"
            call = self._unary[method] = self._channel.unary_unary(method)
        return call

    def _timeout(self, context: grpc.aio.ServicerContext[Any, Any]) -> float:
        remaining = context.time_remaining()
        limit = self.cfg.timeout_seconds
        return limit if remaining is None else min(remaining, limit)

    def _model(self, method: str, request: bytes) -> str | None:
        """The model a ModelInfer call is for, or None if it names none configured."""
        return self.routes.model_named(model_name(request) if self._by_name else None)

    async def unary(
        self, method: str, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        inference = method == METHOD
        model = self._model(method, request) if inference else None
        label = model if model is not None else self._owner()
        if not inference:
            self._samples(label, "not_inference").inc()
        started = time.perf_counter()
        call = self._call(method)(
            request, metadata=_forwarded(context), timeout=self._timeout(context)
        )
        try:
            response = await call
        except grpc.aio.AioRpcError as err:
            self._count(label, method, err.code())
            self._latency(label).observe(time.perf_counter() - started)
            if inference:
                self._sample_outcome(model, "not_ok")
            await _pass_on(context, err)
            raise AssertionError("unreachable: abort() raises") from None
        except asyncio.CancelledError:  # the client left or its deadline passed
            self._count(label, method, grpc.StatusCode.CANCELLED)
            raise
        self._latency(label).observe(time.perf_counter() - started)
        initial, trailing = await call.initial_metadata(), await call.trailing_metadata()
        if initial:
            await context.send_initial_metadata(tuple(initial))
        if trailing:
            context.set_trailing_metadata(tuple(trailing))
        self._count(label, method, grpc.StatusCode.OK)
        if inference:
            self._sample(model, method, request, response, context)
        return response

    async def stream(
        self,
        method: str,
        requests: AsyncIterator[bytes],
        context: grpc.aio.ServicerContext[bytes, bytes],
    ) -> AsyncIterator[bytes]:
        """A method outside the protocol's unary set, passed on message by message."""
        assert self._channel is not None, "GrpcTap.start() was not awaited"
        label = self._owner()
        forward: grpc.aio.StreamStreamMultiCallable[bytes, bytes]
        forward = self._channel.stream_stream(method)
        call = forward(requests, metadata=_forwarded(context), timeout=self._timeout(context))
        try:
            initial = await call.initial_metadata()
            if initial:
                await context.send_initial_metadata(tuple(initial))
            async for message in call:
                yield message
            trailing = await call.trailing_metadata()
        except grpc.aio.AioRpcError as err:
            self._count(label, "other", err.code())
            await _pass_on(context, err)
            return
        if trailing:
            context.set_trailing_metadata(tuple(trailing))
        self._count(label, "other", grpc.StatusCode.OK)

    # counting and sampling -------------------------------------------------------------------

    def _owner(self) -> str:
        """The model label of calls that are no model's inference: the only model, or ""."""
        return UNROUTED if self.routes.shared else next(iter(self.routes.models))

    def _count(self, model: str, method: str, code: grpc.StatusCode) -> None:
        short = _UNARY.get(method, "other") if method.startswith("/") else method
        key = (model, short, code.name)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.metrics.grpc_calls.labels(*key)
        counter.inc()

    def _samples(self, model: str, outcome: str) -> Any:
        key = (model, outcome)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.metrics.proxy_samples.labels(*key)
        return counter

    def _latency(self, model: str) -> Any:
        histogram = self._histograms.get(model)
        if histogram is None:
            histogram = self._histograms[model] = self.metrics.grpc_upstream.labels(model)
        return histogram

    def _sample_outcome(self, model: str | None, outcome: str) -> None:
        label = UNROUTED if model is None else model
        self._samples(label, "unknown_model" if model is None else outcome).inc()

    def _sample(
        self,
        model: str | None,
        method: str,
        request: bytes,
        response: bytes,
        context: grpc.aio.ServicerContext[bytes, bytes],
    ) -> None:
        if model is None:
            self._sample_outcome(None, "unknown_model")
            return
        if self.chance() >= self.routes.models[model].sample_rate:
            self._sample_outcome(model, "not_sampled")
            return
        request_id = None
        for key, value in context.invocation_metadata() or ():
            if key == self._id_key and isinstance(value, str):
                request_id = value
        ex = Exchange(
            model=model,
            protocol="oip-v2-grpc",
            path=method,
            request=request,
            response=response,
            received_at=self.clock(),
            request_id=request_id,
        )
        if not self.queue.put(ex):
            self._sample_outcome(model, "dropped")


class _Handler(grpc.GenericRpcHandler):
    """Every method goes to the tap: the protocol's unary ones as unary, the rest as streams."""

    def __init__(self, tap: GrpcTap) -> None:
        self.tap = tap

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = handler_call_details.method
        tap = self.tap
        if method in _UNARY:

            async def unary(
                request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
            ) -> bytes:
                return await tap.unary(method, request, context)

            return grpc.unary_unary_rpc_method_handler(unary)

        async def stream(  # an async generator function, as gRPC tells handlers apart by it
            requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
        ) -> AsyncIterator[bytes]:
            async for message in tap.stream(method, requests, context):
                yield message

        return grpc.stream_stream_rpc_method_handler(stream)


def _forwarded(context: grpc.aio.ServicerContext[Any, Any]) -> Metadata | None:
    """The client's metadata, less what gRPC sets on every call itself."""
    kept = tuple(
        (k, v)
        for k, v in context.invocation_metadata() or ()
        if k not in _OWN_METADATA and not k.startswith(":")
    )
    return kept or None


async def _pass_on(context: grpc.aio.ServicerContext[Any, Any], err: grpc.aio.AioRpcError) -> None:
    """End the call with the upstream's status, details and metadata (raises)."""
    initial = err.initial_metadata()
    if initial:
        await context.send_initial_metadata(tuple(initial))
    await context.abort(err.code(), err.details() or "", tuple(err.trailing_metadata() or ()))
