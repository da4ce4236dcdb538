"""Read-only evidence: monitoring records, their attachments, the statement of applicability."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from aims_agent.agent.api.common import json_response, ledger_headers, verified_read
from aims_agent.errors import HttpError
from aims_agent.exporters.evidently_report import KIND as EVIDENTLY_KIND
from aims_agent.exporters.ledger_check import LedgerState
from aims_agent.storage import queries

if TYPE_CHECKING:
    from aims_agent.agent.api.auth import Auth
    from aims_agent.agent.runtime import Runtime


# what an attachment may do once opened: Evidently's report is a script-driven page, so it runs
# sandboxed (an opaque origin: no cookies, storage or same-origin calls of the agent's) and may
# reach nothing outside itself; every other attachment runs no script at all
_SELF_CONTAINED = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:"
CSP = {
    EVIDENTLY_KIND: "sandbox allow-scripts; "
    + _SELF_CONTAINED
    + "; script-src 'unsafe-inline' 'unsafe-eval'",
}
CSP_DEFAULT = "sandbox; " + _SELF_CONTAINED
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".json": "application/json",
}
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def attachment_headers(kind: str, path: str) -> tuple[str, dict[str, str]]:
    """The media type an attachment is served as (by its file's suffix; unknown ones as bytes
    to download) and the headers that keep a browser from sniffing or running more than it
    should: nosniff, a Content-Security-Policy by kind, a safe file name."""
    suffix = PurePosixPath(path).suffix.lower()
    media_type = MEDIA_TYPES.get(suffix, "application/octet-stream")
    name = _UNSAFE_NAME.sub("_", PurePosixPath(path).name).lstrip(".") or "attachment"
    disposition = "inline" if suffix in MEDIA_TYPES else "attachment"
    return media_type, {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": CSP.get(kind, CSP_DEFAULT),
        "Content-Disposition": f'{disposition}; filename="{name}"',
        "Cache-Control": "no-store",
    }


def attachment_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """An attachment as the API shows it, with the URL of its content."""
    return {
        "attachment_id": row["attachment_id"],
        "kind": row["kind"],
        "path": row["path"],
        "sha256": row["sha256"],
        "bytes": row["bytes"],
        "href": f"/v1/attachments/{row['attachment_id']}",
    }


def router(runtime: Runtime, auth: Auth) -> APIRouter:
    cfg, store = runtime.cfg, runtime.store
    api = APIRouter()
    ledger = verified_read(store, cfg.agent.evidence_dir)

    @api.get("/v1/attachments/{attachment_id}", summary="An evidence attachment's content")
    async def get_attachment(
        attachment_id: str,
        _: str = Depends(auth.require("read")),
        state: LedgerState = Depends(ledger),  # noqa: B008 (FastAPI's idiom)
    ) -> Response:
        row = await asyncio.to_thread(store.read, lambda c: queries.attachment(c, attachment_id))
        if row is None:
            raise HttpError(404, f"no attachment {attachment_id!r}")
        path = cfg.agent.evidence_dir / row.path
        content = await asyncio.to_thread(path.read_bytes)
        media_type, headers = attachment_headers(row.kind, row.path)
        return Response(
            content,
            media_type=media_type,
            headers={**headers, "X-Content-SHA256": row.sha256, **ledger_headers(state)},
        )

    @api.get("/v1/monitoring-records", summary="Clause 9.1 monitoring records, newest first")
    async def monitoring(
        model: str | None = None,
        check: str | None = None,
        limit: int = 100,
        _: str = Depends(auth.require("read")),
        state: LedgerState = Depends(ledger),  # noqa: B008 (FastAPI's idiom)
    ) -> Response:
        limit = max(1, min(limit, 1000))

        def read() -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
            def q(conn: Any) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
                bodies = queries.monitoring_bodies(conn, model=model, check=check, limit=limit)
                linked = queries.attachments_of(conn, [b["record_id"] for b in bodies])
                return bodies, linked

            return store.read(q)

        bodies, linked = await asyncio.to_thread(read)
        return json_response(
            200,
            [
                {
                    **b,
                    "attachments": [
                        attachment_view(a._mapping) for a in linked.get(b["record_id"], [])
                    ],
                }
                for b in bodies
            ],
            ledger_headers(state),
        )

    @api.get(
        "/v1/statement-of-applicability",
        summary="Annex A controls the agent evidences per model, latest evidence and status",
    )
    async def statement_of_applicability(
        model: str | None = None,
        _: str = Depends(auth.require("read")),
        state: LedgerState = Depends(ledger),  # noqa: B008 (FastAPI's idiom)
    ) -> Response:
        from aims_agent.exporters.ledger_check import stamp_json
        from aims_agent.exporters.soa import build_soa

        if model is not None:
            runtime.model(model)
        soa = await asyncio.to_thread(store.read, lambda conn: build_soa(conn, cfg, model))
        return json_response(200, stamp_json(soa, state), ledger_headers(state))

    return api
