#!/usr/bin/env python
"""Server time of each governance-console page on a large evidence store.

The store: `--records` monitoring records (bench/ledger.py's builder: the agent's bytes,
chained in the ledger) and `--ncs` nonconformities opened, worked and rejected one after the
other through the agent's own write path (two events each). The console runs in process; each
page is requested `--rounds` times after a first request (which verifies the whole ledger once,
as a console's first page after start does) and its p50 / p95 server time is printed.

Goal (issue 15): every page under 200 ms at p95 with 10,000 nonconformities and 1,000,000
monitoring records in PostgreSQL. `--backend postgresql` builds the store in SQLite (fast, the
same bytes and chain), copies every table into a throwaway PostgreSQL server (tests/pg.py,
Debian's binaries) or the database `--url` names, and serves the console from there.

    python bench/console.py [--backend sqlite|postgresql] [--url URL] [--records 1000000]
                            [--ncs 10000] [--db FILE] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_MS = 200.0


def add_ncs(db: Path, n: int) -> None:
    """n nonconformities of model m2: a breach opens one, a person rejects it, the next opens."""
    from aims_agent.agent.judge import breach_rule
    from aims_agent.exporters.lifecycle import apply, decode_change
    from aims_agent.records import Actor
    from aims_agent.storage.store import Store
    from bench.ledger import BASE, _ctx, _run, record_run

    store = Store(f"sqlite:///{db}")
    decide = breach_rule(1)
    person = Actor(kind="person", subject="ana", name="Ana", email="ana@example.org", client="ui")
    reject = decode_change(json.dumps({"status": "rejected", "justification": "seen"}).encode())
    t = BASE + 50_000_000
    for k in range(n):
        _, nc_id, _ = store.submit(
            record_run(_run("breach", 0.7, t + k, "m2"), _ctx(), decide)
        ).result()
        store.submit(apply(nc_id, reject, actor=person, now=t + k + 0.5)).result()
        if k % 2000 == 0:
            print(f"  {k:,} nonconformities", flush=True)
    store.close()


# the evidence tables, in the order they are copied (columns as the schema declares them)
TABLES = (
    "monitoring_records",
    "nonconformities",
    "nonconformity_events",
    "attachments",
    "evidence_ledger",
    "ledger_head",
    "ledger_verified",
)


def copy_to_postgres(db: Path, url: str) -> None:
    """Every evidence table of the SQLite store into the (migrated, empty) PostgreSQL `url`
    with COPY: the same rows, so the same chain and digests."""
    import sqlite3

    import psycopg
    from sqlalchemy.engine import make_url

    from aims_agent.storage.schema import metadata
    from aims_agent.storage.store import Store

    Store(url).close()  # the schema, by the agent's own migrations
    u = make_url(url)
    src = sqlite3.connect(db)
    with psycopg.connect(
        host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database
    ) as dst:
        for name in TABLES:
            cols = [c.name for c in metadata.tables[name].columns]
            t0, n = time.perf_counter(), 0
            quoted = ", ".join(f'"{c}"' for c in cols)
            with dst.cursor() as cur, cur.copy(f"COPY {name} ({quoted}) FROM STDIN") as copy:
                for row in src.execute(f"SELECT {quoted} FROM {name}"):  # noqa: S608
                    copy.write_row(row)
                    n += 1
            dst.commit()
            print(f"  copied {n:,} rows of {name} ({time.perf_counter() - t0:.0f} s)", flush=True)
        for table, column in (("nonconformity_events", "event_id"), ("evidence_ledger", "seq")):
            dst.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                f"(SELECT COALESCE(MAX({column}), 1) FROM {table}))"
            )
        dst.execute("ANALYZE")
        dst.commit()
    src.close()


def config(tmp: Path, db: Path, url: str | None = None):  # type: ignore[no-untyped-def]
    from aims_agent.config import parse_config

    ref = tmp / "reference.csv"
    ref.write_text("x,prediction\n1,0\n")
    model = {
        "version": "2.0",
        "ai_system_id": "AIS-1",
        "reference": {"path": str(ref)},
        "schema": {"numeric": ["x"], "prediction": "prediction"},
        "checks": [{"id": "drift", "kind": "drift", "schedule_seconds": 3600}],
    }
    data = {
        "agent": {
            "evidence_dir": str(tmp),
            "storage_url": url or f"sqlite:///{db}",
            "tokens": [{"name": "r", "env": "AIMS_BENCH_TOKEN", "scopes": ["read"]}],
        },
        "models": [{"name": "m", **model}, {"name": "m2", **model}],
    }
    return parse_config(data, base_dir=tmp)


def main() -> int:
    import httpx

    from aims_agent.agent.console import create_console
    from aims_agent.storage.store import Store
    from bench.ledger import build

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--ncs", type=int, default=10_000)
    ap.add_argument("--db", type=Path, help="keep the store here and reuse it next time")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--url", help="an empty PostgreSQL database (default: a throwaway server)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aims-console-bench-"))
    db = args.db or tmp / "aims.db"
    if not db.exists():
        t0 = time.perf_counter()
        build(db, args.records, nc_every=10**12)
        add_ncs(db, args.ncs)
        print(f"built the store in {time.perf_counter() - t0:.0f} s", flush=True)
    server, url = None, None
    if args.backend == "postgresql":
        url = args.url
        if url is None:
            from tests.pg import PostgresServer

            server = PostgresServer.start()
            url = server.url(server.create_database())
        t0 = time.perf_counter()
        copy_to_postgres(db, url)
        print(f"copied the store to PostgreSQL in {time.perf_counter() - t0:.0f} s", flush=True)
    cfg = config(tmp, db, url)
    store = Store(cfg.storage_url)
    app = create_console(cfg, store)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))

    async def timed(client: httpx.AsyncClient, path: str) -> tuple[float, int]:
        t0 = time.perf_counter()
        r = await client.get(path)
        return (time.perf_counter() - t0) * 1000, r.status_code

    async def run() -> dict[str, list[float]]:
        async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
            ms, status = await timed(client, "/")
            print(f"first page (verifies the whole ledger): {ms:.0f} ms, {status}")
            r = await client.get("/nonconformities?model=m2")
            nc = r.text.split('href="/nonconformities/', 1)[1].split('"', 1)[0]
            pages = [
                "/",
                "/controls",
                "/models/m/checks/drift",
                "/nonconformities",
                "/nonconformities?model=m2&status=rejected",
                f"/nonconformities/{nc}",
            ]
            times: dict[str, list[float]] = {p: [] for p in pages}
            for _ in range(args.rounds):
                for p in pages:
                    ms, status = await timed(client, p)
                    assert status == 200, (p, status)
                    times[p].append(ms)
            return times

    try:
        times = asyncio.run(run())
    finally:
        store.close()
        if server is not None:
            server.stop()
    backend = "PostgreSQL" if url else "SQLite"
    print(f"{args.records:,} monitoring records, {args.ncs:,} nonconformities ({backend})")
    ok = True
    for page, ms in times.items():
        ms.sort()
        p50, p95 = ms[len(ms) // 2], ms[min(len(ms) - 1, int(0.95 * len(ms)))]
        verdict = "PASS" if p95 < GOAL_MS else "FAIL"
        ok &= p95 < GOAL_MS
        print(f"  {page:45s} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  (goal {GOAL_MS:.0f})  {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
