"""Operating the agent: its models and windows, running a check now, metrics and probes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from aims_agent.agent.api.common import json_response
from aims_agent.agent.api.evidence import attachment_view
from aims_agent.errors import HttpError

if TYPE_CHECKING:
    from aims_agent.agent.api.auth import Auth
    from aims_agent.agent.runtime import Runtime


UPSTREAM_CONNECT_SECONDS = 0.5


def upstreams_of(runtime: Runtime) -> dict[str, tuple[str, int]]:
    """The host and port of every model server a tap forwards to, by `model (tap)`."""
    out: dict[str, tuple[str, int]] = {}
    for m in runtime.cfg.models:
        if m.proxy is not None:
            url = urlsplit(m.proxy.upstream)
            port = url.port or (443 if url.scheme == "https" else 80)
            out[f"{m.name} (proxy)"] = (url.hostname or "", port)
        if m.grpc_proxy is not None:
            host, _, port_text = m.grpc_proxy.upstream.rpartition(":")
            out[f"{m.name} (grpc_proxy)"] = (host.strip("[]"), int(port_text))
    return out


async def unreachable(upstreams: dict[str, tuple[str, int]]) -> dict[str, str]:
    """Those upstreams that do not accept a TCP connection within a short wait, and why."""

    async def probe(host: str, port: int) -> str | None:
        try:
            async with asyncio.timeout(UPSTREAM_CONNECT_SECONDS):
                _, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            return "no answer"
        except OSError as exc:
            return exc.strerror or "unreachable"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None

    found = await asyncio.gather(*(probe(h, p) for h, p in upstreams.values()))
    return {name: why for name, why in zip(upstreams, found, strict=True) if why is not None}


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

    upstreams = upstreams_of(runtime)

    @api.get("/readyz", summary="Readiness: started, storage writing, model servers reachable")
    async def readyz() -> Response:
        """503 until started and while shutting down, while storage writes fail (a full disk,
        a lost database), and while a proxied model server does not accept connections."""
        problems: dict[str, Any] = {}
        if runtime.store.failing_since is not None:
            problems["storage"] = "writes failing"
        down = await unreachable(upstreams)
        if down:
            problems["upstreams"] = down
        if ready() and not problems:
            return json_response(200, {"status": "ready"})
        return json_response(503, {"status": "not ready", **problems})

    return api
