"""`aims-agent console`: the governance console over the evidence store the config names.

Serves the pages of `aims_agent.agent.console` until interrupted (Ctrl-C / SIGTERM). Reads
committed evidence and writes only the nonconformity steps people record: the agent may keep
running, and one console can serve the shared PostgreSQL store of several agents. With
`console.sign_in` people sign in through the identity provider and work nonconformities by
role; without it the console is read-only and answers loopback clients only.
"""

from __future__ import annotations

import argparse
import sys

from aims_agent.agent.commands import open_evidence

NAME = "console"
HELP = "serve the governance console (web pages over the evidence) on a local port"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--port", type=int, default=8090, help="port (0: any free port)")


def run(args: argparse.Namespace) -> int:
    import socket

    import uvicorn

    from aims_agent.agent.console import create_console
    from aims_agent.errors import AimsError

    if not 0 <= args.port <= 65535:
        print(f"--port: must be 0 to 65535, got {args.port}", file=sys.stderr)
        return 2
    try:
        cfg, store = open_evidence(args.config)
    except AimsError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        sock = socket.create_server((args.host, args.port))
    except OSError as exc:
        store.close()
        print(f"--host / --port: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    try:
        app = create_console(cfg, store)
    except AimsError as exc:
        sock.close()
        store.close()
        print(exc, file=sys.stderr)
        return 2
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"aims-agent console listening on http://{shown}:{port}/", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        store.close()
    return 0
