"""Shared fixtures: a small reference file and a config writer."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

NUMERIC = ["x1", "x2", "x3"]
CATEGORICAL = ["c1"]
TOKEN_ENV = "AIMS_TEST_TOKEN"
READ_TOKEN_ENV = "AIMS_TEST_READ_TOKEN"


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


@pytest.fixture
def reference_csv(tmp_path: Path) -> Path:
    rows = make_rows(np.random.default_rng(1), 2000)
    path = tmp_path / "reference.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


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
        if os.environ.get("CI"):
            pytest.fail(f"CI needs PostgreSQL: {exc}")
        pytest.skip(str(exc))
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
