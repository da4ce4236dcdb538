"""Start `aims-agent run` as a child process and wait until it serves (demo and benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from aims_agent.errors import AimsError


def start_agent(
    config: Path, env: Mapping[str, str], *, log_level: str = "warning", proxies: int = 0
) -> tuple[subprocess.Popen[str], str, dict[str, str]]:
    """The running agent, its URL and its taps' URLs, read from the lines it prints when it is
    ready (`proxies`: how many lines: one per model and tap). HTTP taps are keyed by model,
    gRPC taps by `grpc:MODEL` (their URL is `host:port`)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aims_agent.agent.cli",
            "run",
            "--config",
            str(config),
            "--log-level",
            log_level,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.wait(10)
        raise AimsError(f"the agent did not start (exit {proc.returncode}): {line.strip()}")
    taps = dict(parse_proxy_line(proc.stdout.readline()) for _ in range(proxies))
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
    return proc, line.split("listening on", 1)[1].strip(), taps


def parse_proxy_line(line: str) -> tuple[str, str]:
    """`aims-agent proxy for MODEL listening on URL` -> (MODEL, URL);
    `aims-agent grpc-proxy for MODEL listening on HOST:PORT` -> (grpc:MODEL, HOST:PORT)."""
    words = line.split()
    if len(words) != 7 or words[1] not in ("proxy", "grpc-proxy") or words[2] != "for":
        raise AimsError(f"expected a proxy tap's listening line, got {line.strip()!r}")
    return (words[3] if words[1] == "proxy" else f"grpc:{words[3]}"), words[6]
