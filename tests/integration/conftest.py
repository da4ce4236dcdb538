"""Start the real agent as a process on a free loopback port, and talk to it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from aims_agent.agent.process import parse_proxy_line
from tests.conftest import READ_TOKEN_ENV, TOKEN_ENV, as_records, make_rows

TOKEN = "test-token-" + "x" * 20
READ_TOKEN = "read-token-" + "y" * 20


@dataclass
class AgentProcess:
    config: Path
    proc: subprocess.Popen[str]
    url: str
    reader: threading.Thread
    stderr: list[str] = field(default_factory=list)
    proxies: dict[str, str] = field(default_factory=dict)  # HTTP tap URL by model
    grpc: dict[str, str] = field(default_factory=dict)  # gRPC tap host:port by model

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def agent_env(env: Mapping[str, str] | None = None, without: Iterable[str] = ()) -> dict[str, str]:
    """This process's environment with the test tokens set, then `env`, less `without`."""
    full = {**os.environ, TOKEN_ENV: TOKEN, READ_TOKEN_ENV: READ_TOKEN, **(env or {})}
    for name in without:
        full.pop(name, None)
    return full


def run_agent_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    without: Iterable[str] = (),
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """`aims-agent ARGS` to its end, with the environment of `agent_env`."""
    return subprocess.run(
        [sys.executable, "-m", "aims_agent.agent.cli", *args],
        capture_output=True,
        text=True,
        env=agent_env(env, without),
        timeout=timeout,
    )


def start_agent(config: Path, env: dict[str, str] | None = None) -> AgentProcess:
    full_env = agent_env(env)
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
    count = sum(bool(m.get("proxy")) + bool(m.get("grpc_proxy")) for m in models)
    taps = dict(parse_proxy_line(proc.stdout.readline()) for _ in range(count))
    return AgentProcess(
        config=config,
        proc=proc,
        url=line.split("listening on", 1)[1].strip(),
        reader=reader,
        stderr=errors,
        proxies={k: v for k, v in taps.items() if not k.startswith("grpc:")},
        grpc={k.removeprefix("grpc:"): v for k, v in taps.items() if k.startswith("grpc:")},
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
        reap(agent)


def reap(agent: AgentProcess) -> None:
    """Kill the agent if it still runs, wait for its end and close its pipes."""
    if agent.proc.poll() is None:
        agent.proc.kill()
    agent.proc.wait()
    agent.reader.join(5)
    for pipe in (agent.proc.stdout, agent.proc.stderr):
        if pipe:
            pipe.close()


@pytest.fixture
def drifted_agent(
    tmp_path: Path, agent_factory: Callable[..., AgentProcess]
) -> Callable[..., AgentProcess]:
    """Start the agent on a config (written to tmp_path/agent.yaml, the agent's `config`) and
    give it 300 records shifted far enough from `base_config`'s reference that drift breaches."""

    def start(cfg: dict[str, Any], *, seed: int, env: dict[str, str] | None = None) -> AgentProcess:
        path = tmp_path / "agent.yaml"
        path.write_text(yaml.safe_dump(cfg))
        agent = agent_factory(path, env)
        with agent.client() as c:
            drifted = as_records(make_rows(np.random.default_rng(seed), 300, shift=2.0))
            assert c.post("/v1/models/m1/records", json=drifted).status_code == 200
        return agent

    return start


def metric(client_or_url: httpx.Client | str, name: str, **labels: str) -> float:
    """The value of the sample `name` with exactly these labels on the agent's /metrics (a
    client on the agent, or its URL); an AssertionError if there is no such sample."""
    if isinstance(client_or_url, str):
        text = httpx.get(f"{client_or_url}/metrics", timeout=30, trust_env=False).text
    else:
        text = client_or_url.get("/metrics").text
    seen = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                if sample.labels == labels:
                    return float(sample.value)
                seen.append(sample.labels)
    raise AssertionError(f"no sample {name}{labels} in /metrics; its samples: {seen}")
