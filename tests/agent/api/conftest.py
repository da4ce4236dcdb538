"""The HTTP app in process over a real runtime (SQLite evidence), with a token per scope."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from aims_agent.agent.api import create_app
from aims_agent.agent.runtime import Runtime
from aims_agent.config import TokenConfig, parse_config
from tests.conftest import as_records, base_config, make_rows

SCOPES = ("ingest", "read", "write")
TOKENS = {scope: f"{scope}-token-" + "z" * 20 for scope in SCOPES}


def headers(scope: str | None) -> dict[str, str]:
    """The Authorization header of the token with only `scope` (none for None)."""
    return {"Authorization": f"Bearer {TOKENS[scope]}"} if scope else {}


class Api:
    """Synchronous calls into the app on an event loop of its own (an app error is a 500)."""

    def __init__(self, runtime: Runtime, app: Any) -> None:
        self.runtime, self.app = runtime, app
        self.loop = asyncio.new_event_loop()
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://agent")

    def run(self, aw: Any) -> Any:
        return self.loop.run_until_complete(aw)

    def request(self, method: str, path: str, scope: str | None = "write", **kw: Any) -> Any:
        hdrs = {**headers(scope), **kw.pop("headers", {})}
        return self.run(self.client.request(method, path, headers=hdrs, **kw))

    def close(self) -> None:
        if not self.loop.is_closed():
            self.run(self.client.aclose())
            self.loop.close()

    def post(self, path: str, scope: str | None = "ingest", **kw: Any) -> Any:
        return self.request("POST", path, scope, **kw)

    def get(self, path: str, scope: str | None = "read", **kw: Any) -> Any:
        return self.request("GET", path, scope, **kw)


@pytest.fixture
def make_api(tmp_path: Path, reference_csv: Path) -> Iterator[Callable[..., Api]]:
    """`make_api(edit=None, clock=...)`: the app over a runtime of the base config (`edit`
    may change its dict first); every token holds one scope."""
    made: list[Api] = []

    def make(edit: Callable[[dict[str, Any]], None] | None = None, **runtime_kw: Any) -> Api:
        data = base_config(reference_csv, tmp_path / "ev")
        data["agent"]["tokens"] = [
            {"name": scope, "env": f"AIMS_TEST_{scope.upper()}", "scopes": [scope]}
            for scope in SCOPES
        ]
        if edit:
            edit(data)
        cfg = parse_config(data, base_dir=tmp_path)
        runtime = Runtime(cfg, **runtime_kw)
        by_name = {t.name: t for t in cfg.agent.tokens}
        tokens: dict[bytes, TokenConfig] = {
            TOKENS[s].encode(): by_name[s] for s in SCOPES if s in by_name
        }
        made.append(Api(runtime, create_app(runtime, tokens)))
        return made[-1]

    yield make
    for api in made:
        api.close()
        api.runtime.close()


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()


@pytest.fixture
def drifted_api(make_api: Callable[..., Api]) -> Api:
    """The app holding 600 records shifted far enough from the reference that drift breaches."""
    api = make_api()
    rows = as_records(make_rows(np.random.default_rng(2), 600, shift=2.0))
    assert api.post("/v1/models/m1/records", json=rows).status_code == 200
    return api
