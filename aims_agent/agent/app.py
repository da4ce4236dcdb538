"""The HTTP surface: ingest, read-only evidence views, /metrics, health, OpenAPI.

Routes that accept data or return evidence need a bearer token with the right scope
(`ingest`, `read`, `write`); /metrics and the probes do not, so Prometheus and the kubelet can
reach them. Errors are JSON: `{"error": "...", "errors": [{"index", "id", "field", "reason"}]}`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import msgspec
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import select

from aims_agent import __version__
from aims_agent.agent.runtime import Runtime
from aims_agent.collectors.kserve import parse_event
from aims_agent.collectors.push import MAX_ERRORS, _field_of, decode_labels, decode_records
from aims_agent.config import Config, Scope, TokenConfig
from aims_agent.errors import (
    BackpressureError,
    ConfigError,
    PayloadError,
    RecordError,
    StorageError,
)
from aims_agent.exporters import lifecycle
from aims_agent.records import Record
from aims_agent.storage.schema import (
    attachments,
    monitoring_records,
    nonconformities,
    nonconformity_events,
)

_json = msgspec.json.Encoder()


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        self.status, self.message, self.extra = status, message, extra


def json_response(status: int, body: object, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        _json.encode(body), status_code=status, media_type="application/json", headers=headers
    )


def resolve_tokens(cfg: Config, environ: Mapping[str, str]) -> dict[bytes, TokenConfig]:
    """Token values from the environment; a missing variable is a config error, never a skip."""
    out: dict[bytes, TokenConfig] = {}
    problems = []
    for i, tok in enumerate(cfg.agent.tokens):
        value = environ.get(tok.env, "")
        if not value:
            problems.append(f"agent.tokens[{i}].env: environment variable {tok.env} is not set")
        else:
            out[value.encode()] = tok
    if problems:
        raise ConfigError(problems)
    return out


def _errors(errors: list[RecordError]) -> list[dict[str, object]]:
    return [
        {"index": e.index, "id": e.record_id, "field": e.field, "reason": e.reason}
        for e in errors[:MAX_ERRORS]
    ]


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    runtime: Runtime,
    tokens: Mapping[bytes, TokenConfig],
    *,
    ready: Callable[[], bool] = lambda: True,
) -> FastAPI:
    """The FastAPI app over a built runtime. Lifecycle (scheduler, shutdown) is the server's."""
    cfg = runtime.cfg
    metrics = runtime.metrics
    app = FastAPI(
        title="aims-agent",
        version=__version__,
        description="Runtime AI monitoring evidence for ISO/IEC 42001",
    )

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        if exc.status == 429:
            headers["Retry-After"] = str(int(exc.extra.get("retry_after", 1)))
        return json_response(exc.status, {"error": exc.message, **exc.extra}, headers)

    def require(scope: Scope, *, query_token: bool = False) -> Callable[[Request], Awaitable[str]]:
        """Bearer-token auth with a scope; `query_token` also accepts `?token=` for senders that
        cannot set headers (KServe's payload logger). Access logs are off, so URLs are not
        logged."""

        async def check(request: Request) -> str:
            header = request.headers.get("authorization", "")
            scheme, _, presented = header.partition(" ")
            if query_token and not header:
                scheme, presented = "bearer", request.query_params.get("token", "")
            if scheme.lower() != "bearer" or not presented:
                raise ApiError(401, "missing bearer token")
            for value, tok in tokens.items():
                if hmac.compare_digest(value, presented.encode()):
                    if scope not in tok.scopes:
                        raise ApiError(403, f"token {tok.name!r} lacks the {scope!r} scope")
                    return tok.name
            raise ApiError(401, "invalid bearer token")

        return check

    def model_or_404(name: str) -> None:
        if name not in runtime.models:
            raise ApiError(404, f"no model named {name!r}; known: {', '.join(runtime.models)}")

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

    @app.post(
        "/v1/models/{model}/records",
        openapi_extra=ingest_doc,
        summary="Ingest prediction records (JSON array or NDJSON)",
    )
    async def ingest(
        model: str,
        request: Request,
        on_error: Literal["reject", "skip"] = "reject",
        _: str = Depends(require("ingest")),
    ) -> Response:
        """`on_error=reject` (default) keeps nothing from a batch with a bad record, so a
        corrected batch can be resent whole; `skip` keeps the valid records and reports the rest."""
        model_or_404(model)
        try:
            body = await _read_body(request, cfg.agent.max_body_bytes)
        except ApiError:
            metrics.rejected.labels(model, "too_large").inc()
            raise
        schema = runtime.models[model].schema
        try:
            decoded = decode_records(
                body, request.headers.get("content-type", ""), schema, now=runtime.clock()
            )
        except PayloadError as exc:
            metrics.rejected.labels(model, "invalid_payload").inc()
            raise ApiError(400, str(exc)) from None
        if decoded.errors:
            runtime.reject_invalid(model, len(decoded.errors))
            if on_error == "reject":
                raise ApiError(
                    422,
                    f"{len(decoded.errors)} invalid record(s); nothing was stored",
                    accepted=0,
                    rejected=len(decoded.errors) + len(decoded.rows),
                    errors=_errors(decoded.errors),
                )
        try:
            sampled = await runtime.ingest(model, decoded)
        except BackpressureError as exc:
            metrics.rejected.labels(model, "backpressure").inc(len(decoded.rows))
            raise ApiError(429, f"{exc}; nothing was stored", retry_after=exc.retry_after) from None
        except StorageError as exc:
            raise ApiError(503, f"storage unavailable, nothing acknowledged: {exc}") from None
        return json_response(
            200,
            {
                "accepted": len(decoded.rows),
                "sampled": sampled,
                "rejected": len(decoded.errors),
                "errors": _errors(decoded.errors),
            },
        )

    @app.post("/v1/models/{model}/labels", summary="Late labels and attributes, joined by id")
    async def labels(model: str, request: Request, _: str = Depends(require("ingest"))) -> Response:
        """`[{"id", "label"?, "attributes"?}]` or NDJSON. Items are joined to the records the
        window sampled; the answer counts joined, unknown (not sampled, or from a past window)
        and expired (later than the window's `label_ttl_seconds`). A batch with an invalid
        item is refused whole."""
        model_or_404(model)
        body = await _read_body(request, cfg.agent.max_body_bytes)
        schema = runtime.models[model].schema
        try:
            decoded = decode_labels(body, request.headers.get("content-type", ""), schema)
        except PayloadError as exc:
            raise ApiError(400, str(exc)) from None
        if decoded.errors:
            raise ApiError(
                422,
                f"{len(decoded.errors)} invalid label(s); nothing was joined",
                errors=_errors(decoded.errors),
            )
        try:
            counts = await runtime.join_labels(model, decoded)
        except StorageError as exc:
            raise ApiError(503, f"storage unavailable, nothing acknowledged: {exc}") from None
        return json_response(200, counts)

    @app.post(
        "/v1/models/{model}/kserve-logger",
        summary="KServe InferenceService payload logger (CloudEvents, binary mode)",
    )
    async def kserve_logger(
        model: str, request: Request, _: str = Depends(require("ingest", query_token=True))
    ) -> Response:
        """Point the InferenceService logger here (`?token=` if it cannot send headers). The
        request and response events of one inference are paired by `ce-id`."""
        model_or_404(model)
        if runtime.models[model].cfg.kserve_logger is None:
            raise ApiError(404, f"model {model!r} has no kserve_logger configured")
        body = await _read_body(request, cfg.agent.max_body_bytes)
        try:
            event = parse_event(request.headers, body)
            result = await runtime.kserve_event(model, event)
        except PayloadError as exc:
            metrics.kserve_events.labels(model, "undecodable").inc()
            raise ApiError(400, str(exc)) from None
        except BackpressureError as exc:
            raise ApiError(429, str(exc), retry_after=exc.retry_after) from None
        except StorageError as exc:
            raise ApiError(503, f"storage unavailable, nothing acknowledged: {exc}") from None
        return json_response(200, result)

    @app.get("/v1/models", summary="Monitored models and their current windows")
    async def models(_: str = Depends(require("read"))) -> Response:
        out = []
        for name, mr in runtime.models.items():
            w = mr.window
            out.append(
                {
                    "name": name,
                    "version": mr.cfg.version,
                    "ai_system_id": mr.cfg.ai_system_id,
                    "checks": list(mr.checks),
                    "window": {
                        "kind": mr.cfg.window.kind,
                        "start": w.start,
                        "seen": w.seen,
                        "sampled": w.size,
                        "capacity": w.capacity,
                        "span_seconds": w.span,
                        "step_seconds": mr.cfg.window.step
                        if mr.cfg.window.kind == "sliding"
                        else None,
                    },
                }
            )
        return json_response(200, out)

    @app.post("/v1/models/{model}/checks/{check_id}/run", summary="Run a check now")
    async def run_now(model: str, check_id: str, _: str = Depends(require("write"))) -> Response:
        model_or_404(model)
        if check_id not in runtime.models[model].checks:
            raise ApiError(404, f"model {model!r} has no check {check_id!r}")
        outcome = await asyncio.to_thread(runtime.run_check, model, check_id)
        return json_response(
            200,
            {
                "verdict": outcome.run.verdict,
                "window": outcome.run.window,
                "error": outcome.run.error,
                "monitoring_record_id": outcome.monitoring_record_id,
                "nonconformity_id": outcome.nonconformity_id,
            },
        )

    @app.post(
        "/v1/models/{model}/checks/{check_id}/report",
        summary="Run a drift check now and attach Evidently's HTML report to its record",
    )
    async def report_now(model: str, check_id: str, _: str = Depends(require("write"))) -> Response:
        model_or_404(model)
        mr = runtime.models[model]
        if check_id not in mr.checks or mr.checks[check_id].kind != "drift":
            raise ApiError(404, f"model {model!r} has no drift check {check_id!r}")

        def run_and_render() -> tuple[str, Any]:
            data = mr.window.snapshot(now=runtime.clock())
            outcome = runtime.run_check_on(model, check_id, data)
            return outcome.monitoring_record_id, runtime.attach_report(
                model, data, outcome.monitoring_record_id
            )

        mon_id, att = await asyncio.to_thread(run_and_render)
        if att is None:
            raise ApiError(
                503,
                "the report could not be rendered; see the agent's log",
                monitoring_record_id=mon_id,
            )
        return json_response(
            200,
            {"monitoring_record_id": mon_id, "attachment": _attachment(dataclasses.asdict(att))},
        )

    def _attachment(row: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "attachment_id": row["attachment_id"],
            "kind": row["kind"],
            "path": row["path"],
            "sha256": row["sha256"],
            "bytes": row["bytes"],
            "href": f"/v1/attachments/{row['attachment_id']}",
        }

    @app.get("/v1/attachments/{attachment_id}", summary="An evidence attachment's content")
    async def get_attachment(attachment_id: str, _: str = Depends(require("read"))) -> Response:
        rows = await asyncio.to_thread(
            _rows, select(attachments).where(attachments.c.attachment_id == attachment_id)
        )
        if not rows:
            raise ApiError(404, f"no attachment {attachment_id!r}")
        path = cfg.agent.evidence_dir / rows[0]["path"]
        content = await asyncio.to_thread(path.read_bytes)
        return Response(
            content, media_type="text/html", headers={"X-Content-SHA256": rows[0]["sha256"]}
        )

    def _rows(query: Any) -> list[dict[str, Any]]:
        return runtime.store.read(lambda conn: [dict(r._mapping) for r in conn.execute(query)])

    @app.get("/v1/monitoring-records", summary="Clause 9.1 monitoring records, newest first")
    async def monitoring(
        model: str | None = None,
        check: str | None = None,
        limit: int = 100,
        _: str = Depends(require("read")),
    ) -> Response:
        q = select(monitoring_records.c.body).order_by(monitoring_records.c.executed_at.desc())
        if model:
            q = q.where(monitoring_records.c.model == model)
        if check:
            q = q.where(monitoring_records.c.check_id == check)
        rows = await asyncio.to_thread(_rows, q.limit(max(1, min(limit, 1000))))
        bodies = [r["body"] for r in rows]
        ids = [b["record_id"] for b in bodies]
        linked = await asyncio.to_thread(
            _rows, select(attachments).where(attachments.c.monitoring_record_id.in_(ids))
        )
        by_record: dict[str, list[dict[str, Any]]] = {}
        for a in linked:
            by_record.setdefault(a["monitoring_record_id"], []).append(_attachment(a))
        return json_response(
            200, [{**b, "attachments": by_record.get(b["record_id"], [])} for b in bodies]
        )

    def _nc(row: Mapping[str, Any]) -> dict[str, Any]:
        return {
            **row["body"],
            "status": row["status"],
            "recurrences": row["recurrences"],
            "last_seen_at": row["last_seen_at"],
        }

    @app.get("/v1/nonconformities", summary="Clause 10.2 nonconformity records")
    async def list_nc(
        status: str | None = None, model: str | None = None, _: str = Depends(require("read"))
    ) -> Response:
        q = select(nonconformities).order_by(nonconformities.c.opened_at.desc())
        if status:
            q = q.where(nonconformities.c.status == status)
        if model:
            q = q.where(nonconformities.c.model == model)
        rows = await asyncio.to_thread(_rows, q)
        return json_response(200, [_nc(r) for r in rows])

    @app.get("/v1/nonconformities/{nc_id}", summary="One nonconformity with its events")
    async def get_nc(nc_id: str, _: str = Depends(require("read"))) -> Response:
        rows = await asyncio.to_thread(
            _rows, select(nonconformities).where(nonconformities.c.nc_id == nc_id)
        )
        if not rows:
            raise ApiError(404, f"no nonconformity {nc_id!r}")
        events = await asyncio.to_thread(
            _rows,
            select(nonconformity_events)
            .where(nonconformity_events.c.nc_id == nc_id)
            .order_by(nonconformity_events.c.event_id),
        )
        return json_response(
            200,
            {
                **_nc(rows[0]),
                "events": [
                    {"at": e["at"], "actor": e["actor"], "event": e["event"], **e["body"]}
                    for e in events
                ],
            },
        )

    @app.patch(
        "/v1/nonconformities/{nc_id}",
        summary="Work a nonconformity: change its status and clause 10.2 fields (write scope)",
    )
    async def update_nc(
        nc_id: str, request: Request, actor: str = Depends(require("write"))
    ) -> Response:
        body = await _read_body(request, cfg.agent.max_body_bytes)
        try:
            change = lifecycle.decode_change(body)
        except msgspec.ValidationError as exc:
            field, reason = _field_of(str(exc))
            raise ApiError(422, f"{field}: {reason}", field=field) from None
        except msgspec.DecodeError as exc:
            raise ApiError(400, f"body is not a JSON object: {exc}") from None
        try:
            done = await runtime.store.write(
                lifecycle.apply(nc_id, change, actor=actor, now=runtime.clock())
            )
        except lifecycle.NotFoundError as exc:
            raise ApiError(404, str(exc)) from None
        except lifecycle.LifecycleError as exc:
            raise ApiError(409, str(exc)) from None
        if done.status in lifecycle.TERMINAL:
            await asyncio.to_thread(runtime.refresh_open_nonconformities)
        return json_response(
            200, {"nc_id": done.nc_id, "status": done.status, "events": list(done.events)}
        )

    @app.get(
        "/v1/statement-of-applicability",
        summary="Annex A controls the agent evidences per model, latest evidence and status",
    )
    async def statement_of_applicability(
        model: str | None = None, _: str = Depends(require("read"))
    ) -> Response:
        from aims_agent.exporters.soa import build_soa

        if model is not None:
            model_or_404(model)
        soa = await asyncio.to_thread(runtime.store.read, lambda conn: build_soa(conn, cfg, model))
        return json_response(200, soa)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> Response:
        return json_response(200, {"status": "ok"})

    @app.get("/readyz", summary="Readiness: storage and scheduler up")
    async def readyz() -> Response:
        if ready():
            return json_response(200, {"status": "ready"})
        return JSONResponse({"status": "not ready"}, status_code=503)

    return app
