"""`aims-agent run`: the daemon. Uvicorn serves the app; APScheduler runs the checks.

Uvicorn's own signal handlers only set a flag on SIGTERM / SIGINT; it then stops accepting,
lets in-flight requests finish within the shutdown deadline, and runs the lifespan exit, where
the scheduler stops, running checks finish (same deadline) and storage drains and closes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager

import uvicorn
from fastapi import FastAPI

from aims_agent.agent.app import create_app, resolve_tokens
from aims_agent.agent.config import Config
from aims_agent.agent.runtime import Runtime
from aims_agent.agent.scheduler import build_scheduler

log = logging.getLogger("aims_agent")


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


def serve(
    cfg: Config, environ: Mapping[str, str], *, announce: Callable[[str], None] | None = None
) -> None:
    """Run until SIGTERM / SIGINT. Raises ConfigError before binding if tokens are missing."""
    tokens = resolve_tokens(cfg, environ)
    runtime = Runtime(cfg)
    scheduler = build_scheduler(cfg, runtime.run_check)
    ready = {"value": False}
    sock = bind(cfg.agent.host, cfg.agent.port)
    host, port = sock.getsockname()[:2]
    url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        tails = [
            asyncio.create_task(runtime.tail_log(m.name), name=f"tail {m.name}")
            for m in cfg.models
            if m.log_tail is not None
        ]
        ready["value"] = True
        log.info("aims-agent listening on %s", url)
        if announce:
            announce(url)
        try:
            yield
        finally:
            ready["value"] = False
            for task in tails:
                task.cancel()
            await asyncio.gather(*tails, return_exceptions=True)
            scheduler.shutdown(wait=False)
            runtime.close(cfg.agent.shutdown_timeout_seconds)
            log.info("aims-agent stopped; storage closed")

    app = create_app(runtime, tokens, ready=lambda: ready["value"])
    app.router.lifespan_context = lifespan
    server = _Server(
        uvicorn.Config(
            app,
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=int(max(1, cfg.agent.shutdown_timeout_seconds)),
        )
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        runtime.close(cfg.agent.shutdown_timeout_seconds)
