"""Shared fixtures and helpers: a small reference file, a config writer, evidence stores."""

from __future__ import annotations

import csv
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import pytest
import yaml

from aims_agent.records import Actor, Contents
from aims_agent.storage.samples import append_batch
from aims_agent.storage.store import Store

if TYPE_CHECKING:
    from aims_agent.agent.sliding import SlidingWindow
    from aims_agent.agent.window import Window
    from aims_agent.exporters.evidence import EvidenceContext
    from aims_agent.records import CheckRun

NUMERIC = ["x1", "x2", "x3"]
CATEGORICAL = ["c1"]
TOKEN_ENV = "AIMS_TEST_TOKEN"
READ_TOKEN_ENV = "AIMS_TEST_READ_TOKEN"
# The nonconformity lifecycle as the tests know it, written out independently of
# aims_agent.exporters.lifecycle.TRANSITIONS: where each status may go next ...
NC_ALLOWED: dict[str, set[str]] = {
    "open": {"investigating", "rejected"},
    "investigating": {"corrective_action", "rejected"},
    "corrective_action": {"verifying"},
    "verifying": {"closed", "corrective_action"},
    "closed": set(),
    "rejected": set(),
}
# ... and the steps that take a newly opened record to each status
NC_PATHS: dict[str, list[str]] = {
    "open": [],
    "investigating": ["investigating"],
    "corrective_action": ["investigating", "corrective_action"],
    "verifying": ["investigating", "corrective_action", "verifying"],
    "closed": ["investigating", "corrective_action", "verifying", "closed"],
    "rejected": ["rejected"],
}


def person(name: str) -> Actor:
    """A person actor, as an OpenID Connect token of the console would give."""
    return Actor(kind="person", subject=name, name=name, email=f"{name}@example.org", client="web")


def worker(change: dict[str, Any]) -> Actor:
    """Who works a test's change: bob reviews and closes, alice does the rest (so segregation
    of duties holds)."""
    reviews = "effectiveness_review" in change or change.get("status") in ("closed", "rejected")
    return person("bob" if reviews else "alice")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Quick tests first, tests that start real servers after: a fast failure shows fast."""
    items.sort(key=lambda item: item.get_closest_marker("integration") is not None)


def recorded(run: CheckRun, ctx: EvidenceContext) -> Any:
    """The store write of a check run's evidence under the judge's consecutive-breach rule,
    as the agent's runner submits it."""
    from aims_agent.agent.judge import breach_rule
    from aims_agent.exporters.evidence import record_run

    return record_run(run, ctx, breach_rule(ctx.consecutive_breaches))


def unavailable(reason: str) -> NoReturn:
    """A tool or server the test needs is missing: a failure in CI, a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"unavailable under CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    """A free loopback port, for a server a test starts (or for one that nothing listens on)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# headless Chromium as the browser tests run it: none of its own background services
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def binary(*names: str, install: str) -> str:
    """The path of the first of these programs found; `unavailable` (naming `install`, the
    script that installs them) if there is none."""
    for name in names:
        if path := shutil.which(name):
            return path
    unavailable(f"{' or '.join(names)} not installed: run {install}")


def make_rows(rng: np.random.Generator, n: int, *, shift: float = 0.0) -> list[dict[str, Any]]:
    x1 = rng.normal(shift, 1, n)
    x2 = rng.gamma(2, 2, n) + shift
    x3 = rng.uniform(0, 10, n) + 3 * shift
    c1 = rng.choice(
        ["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1] if not shift else [0.1, 0.2, 0.3, 0.4]
    )
    group = rng.choice(["g1", "g2"], n)
    score = 1 / (1 + np.exp(-(x1 + 0.1 * x2)))
    return [
        {
            "x1": x1[i],
            "x2": x2[i],
            "x3": x3[i],
            "c1": c1[i],
            "prediction": int(score[i] >= 0.5),
            "score": float(score[i]),
            "label": int(rng.random() < score[i]),
            "group": group[i],
        }
        for i in range(n)
    ]


def as_records(rows: list[dict[str, Any]], *, start: int = 0) -> list[dict[str, Any]]:
    # records are stamped now: label time-to-live is measured from the record's time
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        {
            "id": f"r{start + i}",
            "timestamp": now,
            "features": {k: r[k] for k in (*NUMERIC, *CATEGORICAL)},
            "prediction": r["prediction"],
            "score": r["score"],
            "label": r["label"],
            "attributes": {"group": r["group"]},
        }
        for i, r in enumerate(rows)
    ]


def write_reference_csv(path: Path) -> Path:
    """The reference data of `base_config`'s model: 2000 rows, seed 1."""
    rows = make_rows(np.random.default_rng(1), 2000)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture
def reference_csv(tmp_path: Path) -> Path:
    return write_reference_csv(tmp_path / "reference.csv")


def base_config(reference: Path, evidence: Path, **check: Any) -> dict[str, Any]:
    return {
        "agent": {
            "host": "127.0.0.1",
            "port": 0,
            "evidence_dir": str(evidence),
            "tokens": [
                {"name": "writer", "env": TOKEN_ENV, "scopes": ["ingest", "read", "write"]},
                {"name": "reader", "env": READ_TOKEN_ENV, "scopes": ["read"]},
            ],
            "shutdown_timeout_seconds": 5,
            "max_body_bytes": 4_000_000,
        },
        "models": [
            {
                "name": "m1",
                "version": "1.0",
                "ai_system_id": "AIS-T",
                "reference": {"path": str(reference)},
                "schema": {
                    "numeric": NUMERIC,
                    "categorical": CATEGORICAL,
                    "prediction": "prediction",
                    "score": "score",
                    "label": "label",
                    "sensitive": ["group"],
                },
                "window": {"span_seconds": 86400, "max_sample": 5000},
                "checks": [
                    {
                        "id": "drift",
                        "kind": "drift",
                        "schedule_seconds": 3600,
                        "min_samples": 50,
                        # the plumbing's tests judge with Evidently's fixed thresholds; the
                        # calibrated preset has its own (tests/checks/test_calibrated_drift.py)
                        "preset": "evidently",
                        **check,
                    }
                ],
            }
        ],
    }


@pytest.fixture
def write_config(tmp_path: Path, reference_csv: Path) -> Callable[..., Path]:
    def write(data: dict[str, Any] | None = None, **check: Any) -> Path:
        path = tmp_path / "agent.yaml"
        cfg = data or base_config(reference_csv, tmp_path / "evidence", **check)
        path.write_text(yaml.safe_dump(cfg))
        return path

    return write


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server (tests/pg.py) for the session. Without one the tests that
    need it are skipped, except in CI, where that is a failure."""
    from tests import pg

    try:
        server = pg.PostgresServer.start()
    except pg.PostgresUnavailable as exc:
        unavailable(f"no PostgreSQL: {exc}")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres):
    """The SQLAlchemy URL of a new, empty database on the session's PostgreSQL server."""
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path):
    """An empty evidence store's URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'aims.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(storage_url):
    """An evidence store on `storage_url`: SQLite, then PostgreSQL."""
    s = Store(storage_url)
    yield s
    s.close()


def persist(
    store: Store,
    window: Window | SlidingWindow,
    rows: list[tuple[Any, ...]],
    ids: list[str],
    timestamps: list[float],
    *,
    now: float,
    aliases: list[tuple[str, ...]] | None = None,
) -> None:
    """Offer a batch to a tumbling or sliding window and log what it sampled (model "m"); a
    batch that starts a new window or pane drops the log entries older than the window keeps."""
    before = window.start
    s = window.offer(rows, ids, timestamps, now=now, aliases=aliases or ())
    contents = Contents(
        window_start=s.window_start,
        seen=s.seen,
        slots=list(s.slots),
        rows=[rows[p] for p in s.positions],
        ids=[ids[p] for p in s.positions],
        timestamps=[timestamps[p] for p in s.positions],
        aliases=[aliases[p] for p in s.positions] if aliases else [],
    )
    rolled = s.window_start != before
    drop_before = s.window_start - window.horizon if rolled else None
    store.submit(append_batch("m", contents, drop_before=drop_before)).result()


# the people of the test identity provider: console roles from the `roles` claim
PEOPLE: dict[str, dict[str, Any]] = {
    "alice": {"name": "Alice Auditor", "email": "alice@example.org", "roles": ["aims-governance"]},
    "bob": {"name": "Bob Reviewer", "email": "bob@example.org", "roles": ["aims-governance"]},
    "vera": {"name": "Vera Viewer", "email": "vera@example.org", "roles": ["aims-viewer"]},
    "ada": {"name": "Ada Admin", "email": "ada@example.org", "roles": "aims-admin aims-viewer"},
    "nora": {"name": "Nora Nobody", "email": "nora@example.org", "roles": []},
}


@dataclass
class IdentityProvider:
    """A running test OpenID provider: its issuer URL and the token requests it received."""

    url: str
    token_requests: list[dict[str, str]]


@pytest.fixture(scope="session")
def identity_provider() -> Any:
    """A real OpenID provider (oidc-provider-mock: Authlib's authorization server behind a
    login form that takes a subject) on a loopback port, with PEOPLE. It records each token
    request's form, so a test can check what the client sent (the PKCE verifier)."""
    import threading

    import flask
    import werkzeug.serving
    from oidc_provider_mock import User, app

    users = [User(sub=sub, claims=claims) for sub, claims in PEOPLE.items()]
    provider = app(user_claims=users, require_nonce=True)
    seen: list[dict[str, str]] = []

    @provider.before_request
    def record() -> None:
        if flask.request.path == "/oauth2/token":
            seen.append(flask.request.form.to_dict())

    server = werkzeug.serving.make_server("localhost", 0, provider, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield IdentityProvider(f"http://localhost:{server.server_port}", seen)
    server.shutdown()
    thread.join(10)


def audit_pack_files(body: bytes) -> dict[str, bytes]:
    """The files of an audit pack ZIP by name (without its folder), each checked against its
    line in SHA256SUMS, which must list every other file."""
    import hashlib
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(body)) as z:
        files = {n.split("/", 1)[1]: z.read(n) for n in z.namelist()}
    lines = files.pop("SHA256SUMS").decode().splitlines()
    assert len(lines) == len(files), (lines, sorted(files))
    for line in lines:
        digest, name = line.split("  ", 1)
        assert hashlib.sha256(files[name]).hexdigest() == digest, name
    return files
