"""Ingest throughput and memory of one agent on loopback.

Starts the real agent (`aims-agent run`) on the schema of bench/workload.py (20 numeric and
8 categorical features, prediction, score, label, one sensitive attribute), measures its
resident memory idle, then drives it with NDJSON batches of 500 records from concurrent
clients for a fixed time and reports acknowledged records per second (an acknowledgement
means the batch's sample is committed, fsync'd with `durability: full`) and the agent's peak
resident memory under that load.

    python bench/ingest.py [--seconds 20] [--concurrency 8] [--durability full]
                           [--big-mib 16] [--big-seconds 15] [--big-concurrency 4]

Then, liveness: `--big-concurrency` clients send NDJSON batches of `--big-mib` MiB each for
`--big-seconds` while a separate thread asks `/healthz` every 20 ms (a fresh connection each
time, as the kubelet does), and the largest `/healthz` latency seen is reported.

Goals (issues 2 and 12): at least 50,000 records/s, at most 150 MB idle, `/healthz` under
100 ms during ingest of 16 MiB batches.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

from aims_agent.agent.process import start_agent

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-0123456789abcdef"


def load_workload(path: Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("aims_workload", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_config(tmp: Path, gen, durability: str, max_sample: int) -> Path:  # type: ignore[no-untyped-def]
    ref = gen.make(20_000, 42, False)
    ref.to_parquet(tmp / "reference.parquet", index=False)
    cfg = {
        "agent": {
            "host": "127.0.0.1",
            "port": 0,
            "evidence_dir": str(tmp / "evidence"),
            "durability": durability,
            "tokens": [{"name": "bench", "env": "AIMS_BENCH_TOKEN", "scopes": ["ingest"]}],
            "max_body_bytes": 64 * 2**20,
        },
        "models": [
            {
                "name": "bench",
                "version": "1",
                "ai_system_id": "AIS-BENCH",
                "reference": {"path": str(tmp / "reference.parquet")},
                "schema": {
                    "numeric": gen.NUM_COLS,
                    "categorical": gen.CAT_COLS,
                    "prediction": "prediction",
                    "score": "score",
                    "label": "target",
                    "sensitive": ["group"],
                },
                "window": {"span_seconds": 3600, "max_sample": max_sample},
                "checks": [{"id": "drift", "kind": "drift", "schedule_seconds": 60}],
            }
        ],
    }
    path = tmp / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def bodies(gen, n_bodies: int, batch: int) -> list[bytes]:  # type: ignore[no-untyped-def]
    df = gen.make(n_bodies * batch, 43, True)
    features = gen.NUM_COLS + gen.CAT_COLS
    rows = df.to_dict("records")
    out = []
    for b in range(n_bodies):
        lines = []
        for i, r in enumerate(rows[b * batch : (b + 1) * batch]):
            lines.append(
                json.dumps(
                    {
                        "id": f"b{b}-{i}",
                        "timestamp": 1_790_000_000 + i,
                        "features": {k: r[k] for k in features},
                        "prediction": int(r["prediction"]),
                        "score": float(r["score"]),
                        "label": int(r["target"]),
                        "attributes": {"group": r["group"]},
                    }
                )
            )
        out.append("\n".join(lines).encode())
    return out


async def drive(
    url: str, payloads: list[bytes], seconds: float, concurrency: int, batch: int
) -> tuple[int, float]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"}
    acked = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=60
    ) as client:
        stop = time.perf_counter() + seconds

        async def worker(k: int) -> None:
            nonlocal acked
            i = k
            while time.perf_counter() < stop:
                r = await client.post(
                    "/v1/models/bench/records", content=payloads[i % len(payloads)]
                )
                if r.status_code != 200:
                    raise RuntimeError(f"ingest failed: {r.status_code} {r.text[:200]}")
                acked += batch
                i += concurrency

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return acked, elapsed


def big_bodies(gen, mib: int, count: int) -> list[bytes]:  # type: ignore[no-untyped-def]
    """`count` NDJSON bodies of about `mib` MiB each (distinct record ids)."""
    sample = bodies(gen, 1, 500)[0]
    per_record = len(sample) / 500
    n = int(mib * 2**20 / per_record)
    lines = sample.split(b"\n")
    out = []
    for k in range(count):
        chunk = []
        for i in range(n):
            line = lines[i % len(lines)]
            chunk.append(line.replace(b'"id": "b0-', f'"id": "big{k}-{i}-'.encode(), 1))
        out.append(b"\n".join(chunk))
    return out


def probe_healthz(url: str, stop: Any, worst: Any) -> None:
    """Ask /healthz every 20 ms on a fresh connection, as the kubelet does, and keep the largest
    latency (seconds) and the count of probes. Runs in a process of its own: a prober sharing the
    load generator's interpreter would time its own GIL waits (and httpx.get builds a TLS
    context per call), not the agent's answer."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(url)
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            conn = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
            conn.request("GET", "/healthz")
            ok = conn.getresponse().status == 200
            conn.close()
        except OSError:
            ok = False
        took = time.perf_counter() - t0 if ok else 10.0
        with worst.get_lock():
            worst[0] = max(worst[0], took)
            worst[1] += 1
        stop.wait(0.02)


def liveness(
    url: str, payloads: list[bytes], seconds: float, concurrency: int
) -> tuple[float, int, float]:
    """(largest /healthz latency in s, records acknowledged, seconds) while big batches load."""
    ctx = multiprocessing.get_context("spawn")
    stop, worst = ctx.Event(), ctx.Array("d", [0.0, 0.0])
    prober = ctx.Process(target=probe_healthz, args=(url, stop, worst), daemon=True)
    records = [p.count(b"\n") + 1 for p in payloads]

    async def run() -> tuple[int, float]:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"}
        acked = 0
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
            end = time.perf_counter() + seconds

            async def worker(k: int) -> None:
                nonlocal acked
                i = k
                while time.perf_counter() < end:
                    body = payloads[i % len(payloads)]
                    r = await client.post("/v1/models/bench/records", content=body)
                    if r.status_code != 200:
                        raise RuntimeError(f"ingest failed: {r.status_code} {r.text[:200]}")
                    acked += r.json()["accepted"]
                    i += concurrency

            t0 = time.perf_counter()
            await asyncio.gather(*(worker(k) for k in range(concurrency)))
            return acked, time.perf_counter() - t0

    prober.start()
    while worst[1] == 0:  # the prober is up and the agent answers before the load starts
        time.sleep(0.01)
    try:
        acked, elapsed = asyncio.run(run())
    finally:
        stop.set()
        prober.join()
    del records
    return worst[0], acked, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--workload",
        type=Path,
        default=ROOT / "bench" / "workload.py",
        help="a generator with make(n, seed, current), NUM_COLS and CAT_COLS",
    )
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--durability", choices=["full", "normal"], default="full")
    ap.add_argument("--max-sample", type=int, default=100_000)
    ap.add_argument("--big-mib", type=int, default=16, help="MiB per batch in the liveness run")
    ap.add_argument("--big-seconds", type=float, default=15.0, help="0 skips the liveness run")
    ap.add_argument("--big-concurrency", type=int, default=4)
    args = ap.parse_args()
    gen = load_workload(args.workload)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config = write_config(tmp, gen, args.durability, args.max_sample)
        payloads = bodies(gen, 200, args.batch)
        proc, url, _ = start_agent(config, {"AIMS_BENCH_TOKEN": TOKEN})
        try:
            ps = psutil.Process(proc.pid)
            time.sleep(3)
            idle = ps.memory_info().rss / 2**20
            peak = [idle]
            done = threading.Event()

            def sample_rss() -> None:
                while not done.wait(0.2):
                    peak[0] = max(peak[0], ps.memory_info().rss / 2**20)

            sampler = threading.Thread(target=sample_rss, daemon=True)
            sampler.start()
            cpu0 = ps.cpu_times()
            me0 = psutil.Process().cpu_times()
            acked, elapsed = asyncio.run(
                drive(url, payloads, args.seconds, args.concurrency, args.batch)
            )
            cpu1 = ps.cpu_times()
            me1 = psutil.Process().cpu_times()
            big = None
            if args.big_seconds > 0:
                # distinct ids per body: the first record of an id wins, so reuse would be dropped
                heavy = big_bodies(gen, args.big_mib, 2 * args.big_concurrency)
                big = liveness(url, heavy, args.big_seconds, args.big_concurrency)
            done.set()
            sampler.join()
        finally:
            proc.terminate()
            proc.wait(30)
    rate = acked / elapsed
    agent_cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed
    client_cpu = (me1.user + me1.system - me0.user - me0.system) / elapsed
    print(
        f"workload: {len(gen.NUM_COLS)} numeric + {len(gen.CAT_COLS)} categorical features, "
        f"NDJSON batches of {args.batch}, {args.concurrency} concurrent clients, "
        f"durability={args.durability}, window max_sample={args.max_sample}"
    )
    print(
        f"ingest: {acked} records acknowledged in {elapsed:.1f}s = {rate:,.0f} records/s "
        f"(goal 50,000: {rate / 50_000:.2f}x); agent CPU {agent_cpu:.2f} cores, "
        f"load generator CPU {client_cpu:.2f} cores (same machine)"
    )
    print(
        f"memory: idle {idle:.0f} MB (goal <= 150: {idle / 150:.2f}x of budget), "
        f"peak under load {peak[0]:.0f} MB"
    )
    if big is not None:
        worst, big_acked, big_elapsed = big
        print(
            f"liveness: {args.big_concurrency} clients sending {args.big_mib} MiB NDJSON batches "
            f"for {big_elapsed:.1f}s ({big_acked / big_elapsed:,.0f} records/s acknowledged): "
            f"largest /healthz latency {worst * 1000:.0f} ms (goal 100 ms: {worst / 0.1:.2f}x of "
            f"budget) beside {rate:,.0f} records/s (goal 50,000: {rate / 50_000:.2f}x)"
        )


if __name__ == "__main__":
    main()
