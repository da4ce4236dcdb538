"""Management reviews (clause 9.3.3): record one, with the period reports it considered by
hash, as ledgered evidence; list them."""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from aims_agent.agent.api.common import json_response, ledger_headers, read_body, verified_read
from aims_agent.agent.api.nonconformities import _decode
from aims_agent.errors import HttpError, PeriodError, StorageError
from aims_agent.exporters import reviews
from aims_agent.exporters.evidence import save_attachment
from aims_agent.exporters.ledger_check import LedgerState
from aims_agent.exporters.period import period_bounds
from aims_agent.exporters.report import write_atomic
from aims_agent.records import Actor, Attachment

if TYPE_CHECKING:
    from aims_agent.agent.api.auth import Auth
    from aims_agent.agent.runtime import Runtime


def router(runtime: Runtime, auth: Auth) -> APIRouter:
    cfg, store = runtime.cfg, runtime.store
    api = APIRouter()

    @api.post(
        "/v1/management-reviews",
        summary="Record a management review: date, attendees, inputs (period reports by "
        "SHA-256), decisions, actions (write scope)",
        status_code=201,
    )
    async def record(
        request: Request,
        actor: Actor = Depends(auth.require("write")),  # noqa: B008 (FastAPI's idiom)
    ) -> Response:
        body = await read_body(request, cfg.agent.max_body_bytes)
        new = _decode(reviews.decode_new, body)
        problems = reviews.problems(new)
        if problems:
            field, reason = problems[0]
            raise HttpError(422, f"{field}: {reason}", field=field)
        inputs = await asyncio.to_thread(store.read, lambda c: reviews.resolve_inputs(c, new))
        if isinstance(inputs, tuple):
            field, reason = inputs
            raise HttpError(422, f"{field}: {reason}", field=field)
        now = runtime.clock()
        review_id, doc = reviews.document(new, inputs, actor=actor, now=now)
        rel = reviews.relative_path(review_id)
        try:
            await asyncio.to_thread(write_atomic, cfg.agent.evidence_dir / rel, doc)
        except OSError as exc:  # a full or read-only disk: nothing was recorded
            raise StorageError(f"cannot write the review: {exc.strerror or exc}") from None
        digest = hashlib.sha256(doc).hexdigest()
        att = Attachment(
            attachment_id=f"ATT-{review_id}",
            kind=reviews.KIND,
            path=rel,
            sha256=digest,
            bytes=len(doc),
        )
        await store.write(save_attachment(att, review_id, now))
        return json_response(201, {"review_id": review_id, "sha256": digest, "path": rel})

    ledger = verified_read(store, cfg.agent.evidence_dir)

    @api.get("/v1/management-reviews", summary="Management reviews, of one period or all")
    async def list_reviews(
        period: str | None = None,
        _: Actor = Depends(auth.require("read")),  # noqa: B008 (FastAPI's idiom)
        state: LedgerState = Depends(ledger),  # noqa: B008 (FastAPI's idiom)
    ) -> Response:
        t0, t1 = 0.0, 253402300799.0  # all: 1970 to the last second of 9999 (iso() of 10000 fails)
        if period is not None:
            try:
                start, end = period_bounds(period)
            except PeriodError as exc:
                reason = str(exc).replace("--period: ", "")
                raise HttpError(422, f"period: {reason}", field="period") from None
            t0, t1 = start.timestamp(), end.timestamp()
        found = await asyncio.to_thread(
            store.read, lambda c: reviews.in_period(c, cfg.agent.evidence_dir, t0, t1)
        )
        return json_response(200, found, ledger_headers(state))

    return api
