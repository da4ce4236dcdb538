"""`aims-agent run`: the daemon. Uvicorn serves the app; APScheduler runs the checks.

Uvicorn's own signal handlers only set a flag on SIGTERM / SIGINT; it then stops accepting,
lets in-flight requests finish within the shutdown deadline, and runs the lifespan exit, where
the scheduler stops, running checks finish (same deadline) and storage drains and closes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import uvicorn
from fastapi import FastAPI

from aims_agent.agent import head
from aims_agent.agent.api import create_app, resolve_tokens
from aims_agent.agent.housekeeping import housekeeping
from aims_agent.agent.runtime import Runtime
from aims_agent.agent.scheduler import build_scheduler
from aims_agent.agent.slow_clients import guarded_protocol
from aims_agent.config import Config
from aims_agent.errors import AimsError

if TYPE_CHECKING:  # aiohttp, grpc and httpx load only when taps or notifications are configured
    from aims_agent.collectors.grpc_tap import GrpcTap
    from aims_agent.collectors.proxy import Tap
    from aims_agent.collectors.tap_drain import TapDrain

log = logging.getLogger("aims_agent")


class _Quiet(uvicorn.Server):
    """A server that leaves signals to the main one (the proxy taps run beside the API)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _Server(uvicorn.Server):
    """Uvicorn, except that a graceful stop on SIGTERM / SIGINT exits 0 instead of re-raising."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"


@dataclass(slots=True)
class _Proxy:
    """One HTTP tap listener and the models behind it."""

    models: list[str]
    tap: Tap
    drain: TapDrain
    sock: socket.socket
    server: _Quiet
    serving: asyncio.Task[None] | None = None
    draining: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return url_of(self.sock)


@dataclass(slots=True)
class _GrpcProxy:
    """One gRPC tap listener and the models behind it."""

    models: list[str]
    tap: GrpcTap
    drain: TapDrain
    draining: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = self.tap.cfg.host
        return f"[{host}]:{self.tap.port}" if ":" in host else f"{host}:{self.tap.port}"


def _proxies(cfg: Config, runtime: Runtime) -> list[_Proxy]:
    """One HTTP tap per listen address (a port shared by several models is one tap)."""
    taps = cfg.taps("proxy")
    if not taps:
        return []
    from aims_agent.collectors.proxy import Tap

    out = []
    for models in taps.values():
        settings = {m.name: m.proxy for m in models if m.proxy is not None}
        tap = Tap(settings, runtime.metrics, clock=runtime.clock)
        server = _Quiet(
            uvicorn.Config(
                tap,
                lifespan="off",
                log_level="warning",
                access_log=False,
                proxy_headers=False,  # the tap adds X-Forwarded-For itself
                server_header=False,
                date_header=False,
                ws="none",
                timeout_keep_alive=75,  # longer than typical client pools keep idle connections
                timeout_graceful_shutdown=int(max(1, cfg.agent.shutdown_timeout_seconds)),
            )
        )
        sock = bind(tap.cfg.host, tap.cfg.port)
        drain = runtime.tap_drain(models, "proxy")
        out.append(_Proxy(list(settings), tap, drain, sock, server))
    return out


def _grpc_proxies(cfg: Config, runtime: Runtime) -> list[_GrpcProxy]:
    """One gRPC tap per listen address; bound when started (in the event loop)."""
    taps = cfg.taps("grpc_proxy")
    if not taps:
        return []
    from aims_agent.collectors.grpc_tap import GrpcTap

    out = []
    for models in taps.values():
        settings = {m.name: m.grpc_proxy for m in models if m.grpc_proxy is not None}
        tap = GrpcTap(settings, runtime.metrics, clock=runtime.clock)
        out.append(_GrpcProxy(list(settings), tap, runtime.tap_drain(models, "grpc_proxy")))
    return out


async def _start_proxies(proxies: list[_Proxy], grpc: list[_GrpcProxy]) -> None:
    for p in proxies:
        await p.tap.start()
        name = ", ".join(p.models)
        p.serving = asyncio.create_task(p.server.serve(sockets=[p.sock]), name=f"proxy {name}")
        p.draining = asyncio.create_task(p.drain.run(p.tap.queue), name=f"tap {name}")
    for g in grpc:
        try:
            await g.tap.start()
        except RuntimeError as exc:  # grpc: "Failed to bind to address ..."
            raise RuntimeError(f"gRPC tap of {', '.join(g.models)}: {exc}") from None
        g.draining = asyncio.create_task(g.drain.run(g.tap.queue), name=f"grpc tap {g.models}")
    while not all(p.server.started for p in proxies):
        if any(p.serving is not None and p.serving.done() for p in proxies):
            raise RuntimeError("a proxy tap failed to start")
        await asyncio.sleep(0.01)


async def _stop_proxies(proxies: list[_Proxy], grpc: list[_GrpcProxy], grace: float) -> None:
    """Stop accepting, let in-flight requests finish, then ingest what the taps still hold."""
    for p in proxies:
        p.server.should_exit = True
    stopping = [g.tap.stop(grace) for g in grpc]
    await asyncio.gather(
        *(p.serving for p in proxies if p.serving), *stopping, return_exceptions=True
    )
    taps: list[_Proxy | _GrpcProxy] = [*proxies, *grpc]
    for t in taps:
        if t.draining is not None:
            t.draining.cancel()
            await asyncio.gather(t.draining, return_exceptions=True)
        try:
            await t.drain.flush(t.tap.queue)
        except Exception:  # noqa: BLE001 - the other taps still close
            log.exception("tap of %s: samples not flushed at shutdown", ", ".join(t.models))
    for p in proxies:
        await p.tap.close()
        p.sock.close()


def _secrets(cfg: Config, environ: Mapping[str, str]) -> dict[str, bytes]:
    if not cfg.agent.notifications:
        return {}
    from aims_agent.exporters.notify import resolve_secrets

    return resolve_secrets(cfg.agent.notifications, environ)


def serve(
    cfg: Config, environ: Mapping[str, str], *, announce: Callable[[str], None] | None = None
) -> None:
    """Run until SIGTERM / SIGINT. Raises ConfigError before binding if tokens are missing.

    `announce` gets a line with the API's URL, then a line per model and tap (HTTP, then gRPC),
    `aims-agent proxy for MODEL listening on URL` / `aims-agent grpc-proxy for MODEL listening
    on HOST:PORT`."""
    tokens = resolve_tokens(cfg, environ)
    secrets = _secrets(cfg, environ)
    # the storage writer, decoding and check threads hand the GIL back to the event loop within
    # 1 ms (default 5 ms), so a probe or a proxied request never waits long behind them
    sys.setswitchinterval(0.001)
    runtime = Runtime(cfg, environ=environ)
    scheduler = build_scheduler(
        cfg, runtime.runner.run_check, store=runtime.store, not_run=runtime.runner.note_not_run
    )
    publish = head.publisher(cfg, runtime.store, runtime.metrics, environ, runtime.clock)
    if publish is not None:  # the signed head, now and every publish_minutes
        scheduler.add_job(
            publish,
            "interval",
            minutes=cfg.agent.ledger.publish_minutes,
            id=head.JOB_ID,
            name="sign and publish the ledger head",
            next_run_time=datetime.now(UTC),
        )
    ready = {"value": False}
    sock = bind(cfg.agent.host, cfg.agent.port)
    url = url_of(sock)
    proxies = _proxies(cfg, runtime)
    grpc = _grpc_proxies(cfg, runtime)
    grace = cfg.agent.shutdown_timeout_seconds

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await _start_proxies(proxies, grpc)
        await asyncio.to_thread(runtime.runner.note_downtime, runtime.clock())
        scheduler.start()
        tasks = [
            asyncio.create_task(runtime.tail_log(m.name), name=f"tail {m.name}")
            for m in cfg.models
            if m.log_tail is not None
        ]
        chores = housekeeping(
            runtime.store,
            runtime.metrics,
            runtime.models,
            samples_days=cfg.agent.retention.samples_days,
            clock=runtime.clock,
        )
        tasks.append(asyncio.create_task(chores, name="housekeeping"))
        if runtime.loggers:
            from aims_agent.collectors.logger_pairs import expire_pending

            pending = {name: r.pending for name, r in runtime.loggers.items()}
            expiry = expire_pending(pending, runtime.metrics, clock=runtime.clock)
            tasks.append(asyncio.create_task(expiry, name="logger pairs"))
        if cfg.agent.notifications:
            from aims_agent.exporters.notify import Notifier

            notifier = Notifier(cfg.agent.notifications, secrets, runtime.store, runtime.metrics)
            await notifier.register()
            tasks.append(asyncio.create_task(notifier.run(), name="notifications"))
        ready["value"] = True
        log.info("aims-agent listening on %s", url)
        lines = [("proxy", m, t.url) for t in proxies for m in t.models]
        lines += [("grpc-proxy", m, t.url) for t in grpc for m in t.models]
        for kind, model, where in lines:
            log.info("%s tap of %s listening on %s", kind, model, where)
        if announce:
            announce(f"aims-agent listening on {url}")
            for kind, model, where in lines:
                announce(f"aims-agent {kind} for {model} listening on {where}")
        try:
            yield
        finally:
            ready["value"] = False
            await _stop_proxies(proxies, grpc, grace)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            scheduler.shutdown(wait=False)
            if publish is not None:  # the last head is signed too: nothing ends unvouched
                try:
                    await asyncio.to_thread(publish)
                except AimsError as exc:
                    log.error("could not sign the ledger head at shutdown: %s", exc)
            runtime.close(cfg.agent.shutdown_timeout_seconds)
            log.info("aims-agent stopped; storage closed")

    app = create_app(runtime, tokens, ready=lambda: ready["value"])
    if cfg.console.enabled:  # the governance console at /console
        from aims_agent.agent.console import create_console

        console = create_console(
            cfg,
            runtime.store,
            clock=runtime.clock,
            on_change=runtime.runner.refresh_open_nonconformities,
        )
        app.mount("/console", console)
    # what start-up built (modules, config, references) lives as long as the process: keep it
    # out of the cyclic collector, whose full passes would otherwise stall proxied requests
    gc.collect()
    gc.freeze()
    app.router.lifespan_context = lifespan
    server = _Server(
        uvicorn.Config(
            app,
            lifespan="on",
            log_level="warning",
            access_log=False,
            http=guarded_protocol(cfg.agent.header_timeout_seconds, cfg.agent.body_timeout_seconds),
            timeout_graceful_shutdown=int(max(1, cfg.agent.shutdown_timeout_seconds)),
        )
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        for p in proxies:
            p.sock.close()
        runtime.close(cfg.agent.shutdown_timeout_seconds)
