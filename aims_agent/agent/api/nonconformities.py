"""The clause 10.2 nonconformity register: read it, record a nonconformity found by an audit,
an incident or a complaint, and work a record through its lifecycle."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from aims_agent.agent.api.common import json_response, ledger_headers, read_body, verified_read
from aims_agent.collectors.push import problem_of
from aims_agent.errors import HttpError, PayloadError
from aims_agent.exporters import lifecycle, register
from aims_agent.exporters.ledger_check import LedgerState
from aims_agent.records import Actor
from aims_agent.storage import queries

if TYPE_CHECKING:
    from aims_agent.agent.api.auth import Auth
    from aims_agent.agent.runtime import Runtime


def _nc(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **row["body"],
        "status": row["status"],
        "recurrences": row["recurrences"],
        "last_seen_at": row["last_seen_at"],
    }


def _decode(decode: Any, body: bytes) -> Any:
    """A JSON body as its struct: 422 naming the field, 400 if it is not JSON at all."""
    try:
        return decode(body)
    except msgspec.ValidationError as exc:
        field, reason = problem_of(str(exc))
        raise HttpError(422, f"{field}: {reason}", field=field) from None
    except msgspec.DecodeError as exc:
        raise PayloadError(f"body is not a JSON object: {exc}") from None
    except RecursionError:
        raise PayloadError("body is not a JSON object: JSON nested too deeply") from None


def router(runtime: Runtime, auth: Auth) -> APIRouter:
    cfg, store = runtime.cfg, runtime.store
    api = APIRouter()
    models = {
        m.name: register.ModelInfo(ai_system_id=m.ai_system_id, version=m.version)
        for m in cfg.models
    }

    @api.post(
        "/v1/nonconformities",
        summary="Record a nonconformity found by an internal audit (9.2), an incident or a "
        "complaint, with its source (write scope)",
        status_code=201,
    )
    async def open_nc(
        request: Request,
        actor: Actor = Depends(auth.require("write")),  # noqa: B008 (FastAPI's idiom)
    ) -> Response:
        body = await read_body(request, cfg.agent.max_body_bytes)
        new = _decode(register.decode_new, body)
        now = runtime.clock()
        problems = register.validate(new, models, now=now)
        if problems:
            field, reason = problems[0]
            raise HttpError(422, f"{field}: {reason}", field=field)
        nc_id = await store.write(
            register.open_nonconformity(new, models[new.model], actor=actor, now=now)
        )
        await asyncio.to_thread(runtime.runner.refresh_open_nonconformities)
        return json_response(201, {"nc_id": nc_id, "status": "open"})

    ledger = verified_read(store, cfg.agent.evidence_dir)

    @api.get("/v1/nonconformities", summary="Clause 10.2 nonconformity records")
    async def list_nc(
        status: str | None = None,
        model: str | None = None,
        _: str = Depends(auth.require("read")),
        state: LedgerState = Depends(ledger),  # noqa: B008 (FastAPI's idiom)
    ) -> Response:
        rows = await asyncio.to_thread(
            store.read, lambda c: queries.nonconformity_list(c, status=status, model=model)
        )
        return json_response(200, [_nc(r._mapping) for r in rows], ledger_headers(state))

    @api.get("/v1/nonconformities/{nc_id}", summary="One nonconformity with its events")
    async def get_nc(
        nc_id: str,
        _: str = Depends(auth.require("read")),
        state: LedgerState = Depends(ledger),  # noqa: B008 (FastAPI's idiom)
    ) -> Response:
        found = await asyncio.to_thread(store.read, lambda c: queries.nonconformity(c, nc_id))
        if found is None:
            raise HttpError(404, f"no nonconformity {nc_id!r}")
        row, events = found
        return json_response(
            200,
            {
                **_nc(row._mapping),
                "events": [
                    {"at": e.at, "actor": e.actor, "event": e.event, **e.body} for e in events
                ],
            },
            ledger_headers(state),
        )

    @api.patch(
        "/v1/nonconformities/{nc_id}",
        summary="Work a nonconformity: change its status and clause 10.2 fields (write scope)",
    )
    async def update_nc(
        nc_id: str,
        request: Request,
        actor: Actor = Depends(auth.require("write")),  # noqa: B008 (FastAPI's idiom)
    ) -> Response:
        body = await read_body(request, cfg.agent.max_body_bytes)
        try:
            change = lifecycle.decode_change(body, now=runtime.clock())
        except msgspec.ValidationError as exc:
            field, reason = problem_of(str(exc))
            raise HttpError(422, f"{field}: {reason}", field=field) from None
        except msgspec.DecodeError as exc:
            raise PayloadError(f"body is not a JSON object: {exc}") from None
        except RecursionError:
            raise PayloadError("body is not a JSON object: JSON nested too deeply") from None
        done = await store.write(
            lifecycle.apply(
                nc_id,
                change,
                actor=actor,
                now=runtime.clock(),
                duties=cfg.agent.segregation_of_duties,
            )
        )
        if done.status in lifecycle.TERMINAL:
            await asyncio.to_thread(runtime.runner.refresh_open_nonconformities)
        return json_response(
            200, {"nc_id": done.nc_id, "status": done.status, "events": list(done.events)}
        )

    return api
