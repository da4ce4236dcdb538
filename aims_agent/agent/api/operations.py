"""Operating the agent: its models and windows, running a check now, metrics and probes."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from aims_agent.agent.api.common import json_response
from aims_agent.agent.api.evidence import attachment_view
from aims_agent.errors import HttpError

if TYPE_CHECKING:
    from aims_agent.agent.api.auth import Auth
    from aims_agent.agent.runtime import Runtime


def router(runtime: Runtime, auth: Auth, ready: Callable[[], bool]) -> APIRouter:
    runner, ingest = runtime.runner, runtime.ingest
    api = APIRouter()

    @api.get("/v1/models", summary="Monitored models and their current windows")
    async def models(_: str = Depends(auth.require("read"))) -> Response:
        out = []
        for name, mr in runtime.models.items():
            w = ingest.windows[name]
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

    @api.post("/v1/models/{model}/checks/{check_id}/run", summary="Run a check now")
    async def run_now(
        model: str, check_id: str, _: str = Depends(auth.require("write"))
    ) -> Response:
        if check_id not in runtime.model(model).checks:
            raise HttpError(404, f"model {model!r} has no check {check_id!r}")
        outcome = await asyncio.to_thread(runner.run_check, model, check_id)
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

    @api.post(
        "/v1/models/{model}/checks/{check_id}/report",
        summary="Run a drift check now and attach Evidently's HTML report to its record",
    )
    async def report_now(
        model: str, check_id: str, _: str = Depends(auth.require("write"))
    ) -> Response:
        mr = runtime.model(model)
        if check_id not in mr.checks or mr.checks[check_id].kind != "drift":
            raise HttpError(404, f"model {model!r} has no drift check {check_id!r}")

        def run_and_render() -> tuple[str, Any]:
            data = ingest.snapshot(model)
            outcome = runner.run_check_on(model, check_id, data)
            mon_id = outcome.monitoring_record_id
            return mon_id, runner.attach_report(model, data, mon_id)

        mon_id, att = await asyncio.to_thread(run_and_render)
        if att is None:
            raise HttpError(
                503,
                "the report could not be rendered; see the agent's log",
                monitoring_record_id=mon_id,
            )
        return json_response(
            200,
            {
                "monitoring_record_id": mon_id,
                "attachment": attachment_view(dataclasses.asdict(att)),
            },
        )

    @api.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @api.get("/healthz", summary="Liveness")
    async def healthz() -> Response:
        return json_response(200, {"status": "ok"})

    @api.get("/readyz", summary="Readiness: storage and scheduler up")
    async def readyz() -> Response:
        if ready():
            return json_response(200, {"status": "ready"})
        return json_response(503, {"status": "not ready"})

    return api
