"""Start the real agent as a process on a free loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from aims_agent.agent.process import parse_proxy_line
from tests.conftest import READ_TOKEN_ENV, TOKEN_ENV

TOKEN = "test-token-" + "x" * 20
READ_TOKEN = "read-token-" + "y" * 20


@dataclass
class AgentProcess:
    config: Path
    proc: subprocess.Popen[str]
    url: str
    reader: threading.Thread
    stderr: list[str] = field(default_factory=list)
    proxies: dict[str, str] = field(default_factory=dict)  # tap URL by model

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def start_agent(config: Path, env: dict[str, str] | None = None) -> AgentProcess:
    full_env = {**os.environ, TOKEN_ENV: TOKEN, READ_TOKEN_ENV: READ_TOKEN, **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aims_agent.agent.cli", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        proc.wait()
        reader.join(5)
        proc.stdout.close()
        proc.stderr.close()
        raise RuntimeError(f"agent did not start: {line!r}\n{''.join(errors)}")
    models = yaml.safe_load(config.read_text())["models"]
    taps = [parse_proxy_line(proc.stdout.readline()) for m in models if m.get("proxy")]
    return AgentProcess(
        config=config,
        proc=proc,
        url=line.split("listening on", 1)[1].strip(),
        reader=reader,
        stderr=errors,
        proxies=dict(taps),
    )


@pytest.fixture
def agent_factory() -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def factory(config: Path, env: dict[str, str] | None = None) -> AgentProcess:
        agent = start_agent(config, env)
        started.append(agent)
        return agent

    yield factory
    for agent in started:
        if agent.proc.poll() is None:
            agent.proc.kill()
        agent.proc.wait()
        agent.reader.join(5)
        for pipe in (agent.proc.stdout, agent.proc.stderr):
            if pipe:
                pipe.close()
