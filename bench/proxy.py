"""Latency and throughput the proxy tap adds in front of a model server, in one run.

Starts a model server on loopback (default: MLServer serving a scikit-learn model over the
Open Inference Protocol; `--upstream echo` is a minimal ASGI app that answers at once, the
worst case for the tap's share), then the real agent (`aims-agent run`) with a proxy tap in
front of it at 100 % sampling and `durability: full`. Then, alternating direct and tapped
phases so both see the same machine:

- latency at a fixed rate (default 200 requests/s, open loop: each request's latency is
  measured from when it was due, so a stall is not hidden), p50 and p99 direct and tapped,
  and the difference, which is what the tap adds;
- maximum throughput with `wrk` (closed loop, 16 connections), direct and tapped, and the
  ratio.

    python bench/proxy.py [--upstream mlserver|kserve|echo] [--rate 200] [--seconds 10]

Goal (issue 4): at most 1 ms added at p50 and 3 ms at p99, at least 80 % of direct throughput.
Needs `wrk` (Debian package; installed here when missing and running as root) and, for a
real model server, `scripts/upstreams.sh`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aims_agent.agent.process import start_agent  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"
ECHO = """
import json
BODY = json.dumps({"model_name": "credit", "outputs": [
    {"name": "predict", "datatype": "INT64", "shape": [1, 1], "data": [1]}]}).encode()
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})
"""


def start_echo(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    (tmp / "echo_app.py").write_text(ECHO)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(tmp), "echo_app:app"]
        + ["--port", str(port), "--log-level", "warning", "--no-access-log"],
    )
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/v2/health/ready")
    return proc, url


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def write_config(
    tmp: Path, upstream: str, sample_rate: float = 1.0, durability: str = "full"
) -> Path:
    rng = np.random.default_rng(7)
    with (tmp / "reference.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["x1", "x2", "x3", "prediction"])
        for _ in range(2000):
            x1, x2, x3 = rng.normal(), rng.gamma(2, 2), rng.uniform(0, 10)
            w.writerow([x1, x2, x3, int(x1 + 0.1 * x2 > 0)])
    cfg = {
        "agent": {
            "host": "127.0.0.1",
            "port": 0,
            "evidence_dir": str(tmp / "evidence"),
            "durability": durability,
            "tokens": [{"name": "bench", "env": "AIMS_BENCH_TOKEN", "scopes": ["ingest"]}],
        },
        "models": [
            {
                "name": "credit",
                "version": "1",
                "ai_system_id": "AIS-BENCH",
                "reference": {"path": str(tmp / "reference.csv")},
                "schema": {"numeric": ["x1", "x2", "x3"], "prediction": "prediction"},
                "checks": [{"id": "drift", "kind": "drift", "schedule_seconds": 3600}],
                "proxy": {
                    "port": 0,
                    "upstream": upstream,
                    "input": "input-0",
                    "sample_rate": sample_rate,
                },
            }
        ],
    }
    path = tmp / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def request_body(rng: np.random.Generator) -> bytes:
    row = [float(rng.normal()), float(rng.gamma(2, 2)), float(rng.uniform(0, 10))]
    return json.dumps(
        {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 3], "data": row}]}
    ).encode()


async def fixed_rate(url: str, bodies: list[bytes], rate: float, seconds: float) -> list[float]:
    """Latencies (s) of requests sent at `rate` per second, each timed from when it was due."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(due: float, body: bytes) -> None:
            async with session.post(
                url, data=body, headers={"Content-Type": "application/json"}
            ) as r:
                await r.read()
                assert r.status == 200, r.status
            latencies.append(time.perf_counter() - due)

        for i in range(20):  # warm the connection pool
            await one(time.perf_counter(), bodies[i])
        latencies.clear()
        start, tasks = time.perf_counter(), []
        for i in range(int(rate * seconds)):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(due, bodies[i % len(bodies)])))
        await asyncio.gather(*tasks)
    return latencies


def wrk(url: str, body: bytes, seconds: float, connections: int, tmp: Path) -> float:
    script = tmp / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{body.decode()}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if found is None or errors:
        raise SystemExit(f"wrk failed:\n{out}")
    return float(found.group(1))


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        raise SystemExit("wrk is needed: apt-get install wrk")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", default="mlserver", choices=["mlserver", "kserve", "echo"])
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=10, help="per phase")
    ap.add_argument("--rounds", type=int, default=2, help="direct/tapped phase pairs")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections")
    ap.add_argument("--sample-rate", type=float, default=1.0, help="the tap's; goal is at 1.0")
    ap.add_argument("--durability", choices=["full", "normal"], default="full")
    ap.add_argument("--latency-only", action="store_true", help="skip the throughput phases")
    args = ap.parse_args()
    ensure_wrk()
    rng = np.random.default_rng(1)
    bodies = [request_body(rng) for _ in range(1000)]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        server = None
        if args.upstream == "echo":
            echo, up_url = start_echo(tmp)
            model = "credit"
        else:
            from tests.integration.upstreams import start_upstream

            server = start_upstream(args.upstream, tmp / "upstream")
            up_url, model = server.url, server.model
        agent, _, taps = start_agent(
            write_config(tmp, up_url, args.sample_rate, args.durability),
            {"AIMS_BENCH_TOKEN": TOKEN},
            proxies=1,
        )
        path = f"/v2/models/{model}/infer"
        try:
            lat: dict[str, list[float]] = {"direct": [], "tapped": []}
            rps: dict[str, list[float]] = {"direct": [], "tapped": []}
            targets = {"direct": up_url + path, "tapped": taps["credit"] + path}
            for _ in range(args.rounds):
                for name, url in targets.items():
                    lat[name] += asyncio.run(fixed_rate(url, bodies, args.rate, args.seconds))
            for _ in range(0 if args.latency_only else args.rounds):
                for name, url in targets.items():
                    rps[name].append(wrk(url, bodies[0], args.seconds, args.connections, tmp))
        finally:
            agent.terminate()
            agent.wait(30)
            if server is not None:
                server.stop()
            else:
                echo.terminate()
                echo.wait(10)
    print(
        f"upstream: {args.upstream}; {args.rate:g} requests/s for {args.rounds}x{args.seconds:g} s;"
        f" sampling {args.sample_rate:.0%}"
    )
    print(f"{'':8} {'p50 ms':>8} {'p99 ms':>8}")
    for name in ("direct", "tapped"):
        print(f"{name:8} {pct(lat[name], 50):8.3f} {pct(lat[name], 99):8.3f}")
    print(
        f"{'added':8} {pct(lat['tapped'], 50) - pct(lat['direct'], 50):8.3f} "
        f"{pct(lat['tapped'], 99) - pct(lat['direct'], 99):8.3f}   (goal: 1.000, 3.000)"
    )
    if args.latency_only:
        return
    d, t = float(np.mean(rps["direct"])), float(np.mean(rps["tapped"]))
    print(f"max throughput ({args.connections} connections): direct {d:,.0f}/s, tapped {t:,.0f}/s")
    print(f"tapped / direct: {t / d:.2f}   (goal: 0.80)")


if __name__ == "__main__":
    main()
