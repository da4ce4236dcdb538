"""Fuzzing every route of the real app (schemathesis, from its own OpenAPI document) with each
token scope and none: no 5xx, no traceback in the log, every error in the documented shape, and
a refused request changes neither the window nor the evidence ledger, which still verifies.

Each generated request is sent as generated and, for routes with path parameters, again with
the names the agent knows (model m1, check drift, a real nonconformity), each time with no
token and with the ingest, read and write tokens. AIMS_FUZZ_EXAMPLES sets the examples per
route (default: enough for at least 10,000 requests).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from sqlalchemy import func, select

from aims_agent.exporters.ledger_verify import verify
from aims_agent.storage.schema import evidence_ledger, sample_log
from tests.agent.api.conftest import SCOPES, headers
from tests.conftest import as_records, make_rows

EXAMPLES = int(os.environ.get("AIMS_FUZZ_EXAMPLES", "150"))
MIN_REQUESTS = 10_000 if "AIMS_FUZZ_EXAMPLES" not in os.environ else 0
SLOW = {("POST", "/v1/models/{model}/checks/{check_id}/report")}  # Evidently: seconds a call


class _Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.seen.append(self.format(record))


def _configure(data: dict[str, Any]) -> None:
    model = data["models"][0]
    model["kserve_logger"] = {"prediction": "prediction", "score": "score"}
    model["trustyai"] = {"model_id": "m1-mm"}
    model["checks"][0].update(threshold=0.3, report_on_breach=False)
    model["checks"].append({"id": "review", "kind": "oversight"})  # feedback is kept


def _state(api) -> tuple[int, int, int]:
    """What a refused request must not change: records seen, sample log and ledger rows."""

    def rows(conn: Any) -> tuple[int, int]:
        log = conn.execute(select(func.count()).select_from(sample_log)).scalar_one()
        ledger = conn.execute(select(func.count()).select_from(evidence_ledger)).scalar_one()
        return log, ledger

    log, ledger = api.runtime.store.read(rows)
    return api.runtime.ingest.windows["m1"].seen, log, ledger


@pytest.mark.timeout(600)
def test_every_route_with_every_scope_answers_4xx_in_shape_never_5xx(make_api):
    api = make_api(_configure)
    drifted = as_records(make_rows(np.random.default_rng(9), 300, shift=2.0))
    assert api.post("/v1/models/m1/records", json=drifted).status_code == 200
    run = api.post("/v1/models/m1/checks/drift/run", scope="write").json()
    known = {"model": "m1", "check_id": "drift", "nc_id": run["nonconformity_id"]}
    assert known["nc_id"]
    tracebacks = _Tracebacks()
    logging.getLogger().addHandler(tracebacks)
    schema = schemathesis.openapi.from_dict(api.app.openapi())
    sent = {"requests": 0, "5xx": [], "shape": []}
    t0 = time.monotonic()

    def send(case: Any, path_parameters: dict[str, str] | None) -> None:
        if path_parameters is not None:
            case.path_parameters = {**case.path_parameters, **path_parameters}
        for scope in (None, *SCOPES):
            kwargs = case.as_transport_kwargs(base_url="http://agent", headers=headers(scope))
            kwargs.pop("cookies", None)
            if "data" in kwargs and not isinstance(kwargs["data"], dict):
                kwargs["content"] = kwargs.pop("data")
            before = _state(api)
            try:
                r = api.run(api.client.request(**kwargs))
            except (httpx.HTTPError, UnicodeError, ValueError, TypeError):
                continue  # the client could not send it: nothing reached the agent
            sent["requests"] += 1
            where = f"{case.method} {case.formatted_path} [{scope}]"
            if r.status_code >= 500 and r.status_code != 503:
                sent["5xx"].append(f"{where}: {r.status_code} {r.text[:200]}")
            if r.status_code >= 400:
                try:
                    body = r.json()
                except ValueError:
                    body = None
                if not (isinstance(body, dict) and isinstance(body.get("error"), str)):
                    sent["shape"].append(f"{where}: {r.status_code} {r.text[:200]}")
                elif r.status_code != 503:
                    after = _state(api)
                    assert after == before, f"{where} refused ({r.status_code}) yet changed state"

    def fuzz(op: Any, pinned: dict[str, str]) -> None:
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy())
        def each(case: Any) -> None:
            send(case, None)
            if pinned:
                send(case, pinned)

        each()

    for result in schema.get_all_operations():
        op = result.ok()
        pinned = {k: v for k, v in known.items() if f"{{{k}}}" in op.path}
        if (op.method.upper(), op.path) in SLOW:
            pinned.pop("check_id", None)
        fuzz(op, pinned)

    elapsed = time.monotonic() - t0
    logging.getLogger().removeHandler(tracebacks)
    print(f"fuzz: {sent['requests']} requests in {elapsed:.0f}s")
    assert not sent["5xx"], "\n".join(sent["5xx"][:20])
    assert not sent["shape"], "\n".join(sent["shape"][:20])
    assert not tracebacks.seen, tracebacks.seen[0]
    assert sent["requests"] >= MIN_REQUESTS
    report = api.runtime.store.read(lambda conn: verify(conn))
    assert report.ok, report.first_problem
