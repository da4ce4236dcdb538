"""Routes that accept data: prediction records, late labels, payload-logger events (KServe,
Seldon Core) and ModelMesh payload partials at TrustyAI's consumer path."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

import msgspec
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from aims_agent.agent.api.common import json_response, read_body, record_errors
from aims_agent.collectors.loggers import Event, parse_cloudevent, parse_partial
from aims_agent.collectors.push import (
    DecodedLabels,
    decode_feedback,
    decode_labels,
    decode_records,
)
from aims_agent.errors import (
    BackpressureError,
    HttpError,
    PayloadError,
    PayloadTooLargeError,
    StorageError,
)
from aims_agent.records import Record
from aims_agent.storage.ingest_keys import first_answer, save_answer

if TYPE_CHECKING:
    from aims_agent.agent.api.auth import Auth
    from aims_agent.agent.ingest import Ingested, Write
    from aims_agent.agent.runtime import Runtime

_json = msgspec.json.Encoder()
REPLAYED = {"Idempotent-Replayed": "true"}
_KEY = re.compile(r"[\x21-\x7e]{1,256}")


OFF_LOOP_BYTES = 256 * 1024  # bodies larger than this are decoded in a worker thread
# one thread: decoding holds the interpreter anyway, and the event loop then competes with one
# decoder for it, not with one per large request
_DECODER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aims-decode")
P = ParamSpec("P")
T = TypeVar("T")


async def off_loop(size: int, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args)` in a worker thread when the body is large (the decoders work in chunks, so
    the thread hands the interpreter back and the event loop answers probes meanwhile),
    inline when it is small (a thread hop costs more than decoding it)."""
    if size <= OFF_LOOP_BYTES:
        return fn(*args, **kwargs)
    call = functools.partial(fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_DECODER, call)


def idempotency_key(request: Request) -> str | None:
    """The batch's `Idempotency-Key` header: 1 to 256 visible ASCII characters."""
    key = request.headers.get("idempotency-key")
    if key is not None and not _KEY.fullmatch(key):
        raise PayloadError("Idempotency-Key: must be 1 to 256 visible ASCII characters")
    return key


_NOT_STORED = "storage unavailable, nothing acknowledged; see the agent's log"


def router(runtime: Runtime, auth: Auth) -> APIRouter:
    cfg, metrics, ingest = runtime.cfg, runtime.metrics, runtime.ingest
    api = APIRouter()
    in_flight: set[tuple[str, str]] = set()  # keyed batches being stored
    record_schema = msgspec.json.schema(Record)
    ingest_doc = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "array", "items": record_schema}},
                "application/x-ndjson": {"schema": record_schema},
            },
        }
    }

    @api.post(
        "/v1/models/{model}/records",
        openapi_extra=ingest_doc,
        summary="Ingest prediction records (JSON array or NDJSON)",
    )
    async def records(
        model: str,
        request: Request,
        on_error: Literal["reject", "skip"] = "reject",
        _: str = Depends(auth.require("ingest")),
    ) -> Response:
        """`on_error=reject` (default) keeps nothing from a batch with a bad record, so a
        corrected batch can be resent whole; `skip` keeps the valid records and reports the rest.
        With an `Idempotency-Key`, a batch sent again while its window lasts gets the first
        answer (`Idempotent-Replayed: true`) and stores nothing."""
        runtime.model(model)  # 404 before reading the body
        try:
            body = await read_body(request, cfg.agent.max_body_bytes)
        except PayloadTooLargeError:
            metrics.rejected.labels(model, "too_large").inc()
            raise
        key = idempotency_key(request)
        if key is None:
            return await store_records(model, request, body, on_error, None)
        window = ingest.window(model)
        since = window.window_start(runtime.clock()) - window.horizon
        first = await asyncio.to_thread(
            runtime.store.read, lambda c: first_answer(c, model, key, since=since)
        )
        if first is not None:
            return Response(first, media_type="application/json", headers=REPLAYED)
        if (model, key) in in_flight:
            raise HttpError(409, "a request with this Idempotency-Key is in progress; retry")
        in_flight.add((model, key))
        try:
            return await store_records(model, request, body, on_error, key)
        finally:
            in_flight.discard((model, key))

    async def store_records(
        model: str, request: Request, body: bytes, on_error: str, key: str | None
    ) -> Response:
        schema = runtime.model(model).schema
        try:
            decoded = await off_loop(
                len(body),
                decode_records,
                body,
                request.headers.get("content-type", ""),
                schema,
                now=runtime.clock(),
            )
        except PayloadError:
            metrics.rejected.labels(model, "invalid_payload").inc()
            raise
        if decoded.errors:
            ingest.reject_invalid(model, len(decoded.errors))
            if on_error == "reject":
                raise HttpError(
                    422,
                    f"{len(decoded.errors)} invalid record(s); nothing was stored",
                    accepted=0,
                    rejected=len(decoded.errors) + len(decoded.rows),
                    errors=record_errors(decoded.errors),
                )
        errors = record_errors(decoded.errors)
        horizon = ingest.window(model).horizon

        def answer(done: Ingested) -> bytes:
            return _json.encode(
                {
                    "accepted": len(decoded.rows) - done.duplicates,
                    "sampled": done.sampled,
                    "duplicates": done.duplicates,
                    "rejected": len(decoded.errors),
                    "errors": errors,
                }
            )

        def save(done: Ingested) -> Write:
            assert key is not None
            start = done.window_start
            return save_answer(model, key, start, answer(done), drop_before=start - horizon)

        try:
            done = await ingest.ingest_batch(model, decoded, then=save if key else None)
        except BackpressureError as exc:
            metrics.rejected.labels(model, "backpressure").inc(len(decoded.rows))
            raise HttpError(
                429, f"{exc}; nothing was stored", retry_after=exc.retry_after
            ) from None
        except StorageError:
            raise HttpError(503, _NOT_STORED) from None
        return Response(answer(done), media_type="application/json")

    async def join(
        model: str, request: Request, decode: Callable[..., DecodedLabels], what: str, **kw: Any
    ) -> Response:
        """Decode items joined by id (labels, feedback), refuse the batch whole if one is
        invalid, join the rest; the answer counts joined, unknown and expired."""
        schema = runtime.model(model).schema
        body = await read_body(request, cfg.agent.max_body_bytes)
        content_type = request.headers.get("content-type", "")
        decoded = await off_loop(len(body), decode, body, content_type, schema, **kw)
        if decoded.errors:
            raise HttpError(
                422,
                f"{len(decoded.errors)} invalid {what}; nothing was joined",
                errors=record_errors(decoded.errors),
            )
        try:
            counts = await ingest.join_labels(model, decoded, feedback=decode is decode_feedback)
        except StorageError:
            raise HttpError(503, _NOT_STORED) from None
        return json_response(200, counts)

    @api.post("/v1/models/{model}/labels", summary="Late labels and attributes, joined by id")
    async def labels(
        model: str, request: Request, _: str = Depends(auth.require("ingest"))
    ) -> Response:
        """`[{"id", "label"?, "attributes"?}]` or NDJSON. Items are joined to the records the
        window sampled; the answer counts joined, unknown (not sampled, or from a past window)
        and expired (later than the window's `label_ttl_seconds`). A batch with an invalid
        item is refused whole."""
        return await join(model, request, decode_labels, "label(s)")

    @api.post(
        "/v1/models/{model}/feedback",
        summary="Human review of decisions (oversight), joined by id",
    )
    async def feedback(
        model: str, request: Request, _: str = Depends(auth.require("ingest"))
    ) -> Response:
        """`[{"id", "reviewed"?, "overridden"?, "escalated"?, "complaint"?, "reviewed_at"?,
        "reviewer"?}]` or NDJSON: what human review did with each decision, joined to the
        records the window sampled like late labels (the answer counts joined, unknown and
        expired). An override or an escalation is a review. The reviewer is read and never
        stored. The model needs an `oversight` check; a batch with an invalid item is refused
        whole."""
        if not any(c.kind == "oversight" for c in runtime.model(model).cfg.checks):
            raise HttpError(409, f"model {model!r} has no oversight check: feedback is not kept")
        return await join(model, request, decode_feedback, "feedback item(s)", now=runtime.clock())

    async def logger_event(model: str, parse: Callable[[], Event]) -> Response:
        try:
            result = await runtime.logger_event(model, parse())
        except PayloadError:
            metrics.kserve_events.labels(model, "undecodable").inc()
            raise
        except BackpressureError as exc:
            raise HttpError(429, str(exc), retry_after=exc.retry_after) from None
        except StorageError:
            raise HttpError(503, _NOT_STORED) from None
        return json_response(200, result)

    @api.post(
        "/v1/models/{model}/kserve-logger",
        summary="Payload loggers: KServe's InferenceService logger, Seldon Core's executor",
    )
    async def kserve_logger(
        model: str,
        request: Request,
        _: str = Depends(auth.require("ingest", query_token=True)),
    ) -> Response:
        """Point the InferenceService logger (or Seldon's `logger.url`) here, `?token=` if it
        cannot send headers. The request and response events of one inference are paired by
        `ce-id` (Seldon: by `ce-requestid` and `ce-modelid`); the protocol is the one the
        sender names or each request body shows."""
        logger = runtime.model(model).cfg.kserve_logger
        if logger is None:
            raise HttpError(404, f"model {model!r} has no kserve_logger configured")
        body = await read_body(request, cfg.agent.max_body_bytes)
        return await logger_event(
            model, lambda: parse_cloudevent(request.headers, body, id_header=logger.id_header)
        )

    if runtime.modelmesh:

        @api.post(
            "/consumer/kserve/v2",
            summary="TrustyAI's consumer path: ModelMesh payload partials",
        )
        async def modelmesh_partial(
            request: Request, _: str = Depends(auth.require("ingest", query_token=True))
        ) -> Response:
            """`{"id", "kind": "request"|"response", "modelid", "data": base64 of the gRPC
            message}`, as ModelMesh's payload processor posts to TrustyAI; the halves pair by
            `id`, and `modelid` names the model (`trustyai.model_id`)."""
            body = await read_body(request, cfg.agent.max_body_bytes)
            event = parse_partial(body)
            model = runtime.modelmesh.get(event.model or "")
            if model is None:
                raise HttpError(404, f"modelid {event.model!r} is not monitored")
            return await logger_event(model, lambda: event)

    return api
