"""What every router shares: JSON answers, bounded body reads, and the mapping of the project's
errors to HTTP statuses (one registry, so a route raises the domain error and never picks a
status itself). Every error answer is `{"error": "...", ...}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from aims_agent.collectors.push import MAX_ERRORS
from aims_agent.errors import (
    AimsError,
    AuthError,
    BackpressureError,
    ClientGoneError,
    ForbiddenError,
    HttpError,
    IdentityProviderError,
    LedgerTamperedError,
    LifecycleError,
    NonconformityNotFoundError,
    PayloadError,
    PayloadTooLargeError,
    RecordError,
    SegregationOfDutiesError,
    StorageError,
    UnknownModelError,
)

_json = msgspec.json.Encoder()

# the most specific class in an error's MRO decides its status
STATUS: dict[type[AimsError], int] = {
    PayloadError: 400,
    AuthError: 401,
    ForbiddenError: 403,
    UnknownModelError: 404,
    NonconformityNotFoundError: 404,
    LifecycleError: 409,
    LedgerTamperedError: 409,
    SegregationOfDutiesError: 403,
    IdentityProviderError: 503,
    PayloadTooLargeError: 413,
    BackpressureError: 429,
    StorageError: 503,
    ClientGoneError: 400,
}


# seconds a client is told to wait: backpressure clears as the writer catches up; a failed
# storage write (a full disk, a lost database) takes longer
RETRY = {429: 1, 503: 5}
STORAGE_DOWN = "storage unavailable, nothing was changed; see the agent's log"


def json_response(status: int, body: object, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        _json.encode(body), status_code=status, media_type="application/json", headers=headers
    )


def status_of(exc: AimsError) -> int:
    if isinstance(exc, HttpError):
        return exc.status
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


async def error_response(_: Request, exc: Exception) -> Response:
    """The JSON answer of an AimsError raised by a route."""
    assert isinstance(exc, AimsError)
    status = status_of(exc)
    extra: dict[str, Any] = dict(exc.extra) if isinstance(exc, HttpError) else {}
    if isinstance(exc, LedgerTamperedError):
        extra["first_problem"] = exc.first_problem
    message = exc.message if isinstance(exc, HttpError) else str(exc)
    if isinstance(exc, StorageError) and not isinstance(exc, BackpressureError):
        message = STORAGE_DOWN  # the driver's message may carry SQL and values: the log has it
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if status in (429, 503):
        retry = exc.retry_after if isinstance(exc, BackpressureError) else RETRY[status]
        retry = extra.get("retry_after", retry)
        extra["retry_after"] = retry
        headers["Retry-After"] = str(max(1, int(retry)))
    return json_response(status, {"error": message, **extra}, headers)


async def http_error_response(_: Request, exc: Exception) -> Response:
    """Starlette's own answers (no such path 404, method not allowed 405) in the documented
    shape, with their headers (405's Allow)."""
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "request refused"
    return json_response(exc.status_code, {"error": message}, exc.headers)


async def validation_error_response(_: Request, exc: Exception) -> Response:
    """A query or path parameter of the wrong type (422), naming it, in the documented shape."""
    assert isinstance(exc, RequestValidationError)
    errors = []
    for e in exc.errors()[:MAX_ERRORS]:
        field = ".".join(str(part) for part in e.get("loc", ()) if part not in ("query", "path"))
        errors.append({"field": field or "request", "reason": str(e.get("msg", "invalid"))})
    first = errors[0] if errors else {"field": "request", "reason": "invalid"}
    return json_response(422, {"error": f"{first['field']}: {first['reason']}", "errors": errors})


def record_errors(errors: list[RecordError]) -> list[dict[str, object]]:
    """The first MAX_ERRORS record errors as the API reports them."""
    return [
        {"index": e.index, "id": e.record_id, "field": e.field, "reason": e.reason}
        for e in errors[:MAX_ERRORS]
    ]


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused (413) as soon as it exceeds `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(f"body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:  # it left, or was timed out sending: nobody reads the answer
        raise ClientGoneError("the client left before its body was complete") from None
    return b"".join(chunks)


def verified_read(store: Any, evidence_dir: Any) -> Any:
    """A route dependency: verify the evidence ledger before the read (incrementally, see
    `exporters.ledger_check`); 409 naming the first bad entry on a broken chain unless the
    query says `allow_unverified=true`. The route passes `ledger_headers(state)` on."""
    import asyncio

    from aims_agent.exporters.ledger_check import LedgerState, check_store

    async def dependency(allow_unverified: bool = False) -> LedgerState:
        return await asyncio.to_thread(
            check_store, store, evidence_dir=evidence_dir, allow_unverified=allow_unverified
        )

    return dependency


def ledger_headers(state: Any) -> dict[str, str]:
    """What a verified read states about the ledger: head, signature, verified at."""
    s = state.statement()
    out = {
        "X-Aims-Ledger-Head": f"{s['head_seq']} {s['head_sha256'] or '-'}",
        "X-Aims-Ledger-Signature": s["signature"],
        "X-Aims-Ledger-Verified-At": s["verified_at"],
    }
    if not state.ok:
        out["X-Aims-Ledger-Unverified"] = " ".join(str(s["first_problem"]).split())[:500]
    return out
