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
    config: Path, env: Mapping[str, str], *, log_level: str = "warning"
) -> tuple[subprocess.Popen[str], str]:
    """The running agent and its URL, read from the line it prints when it is ready."""
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
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
    return proc, line.split("listening on", 1)[1].strip()
