"""Latency and throughput the proxy tap adds in front of a model server, in one run.

Starts a model server on loopback (default: MLServer serving a scikit-learn model over the
Open Inference Protocol; `--upstream echo` is a minimal ASGI app that answers at once, the
worst case for the tap's share), then the real agent (`aims-agent run`) with a proxy tap in
front of it at 100 % sampling and `durability: full`. Then:

- latency at a fixed rate (default 200 requests/s, open loop: each request's latency is
  measured from when it was due, so a stall is not hidden). Direct and tapped requests run
  at the same time, each at the full rate, interleaved half a period apart and in alternating
  order, so both see the same moments of the machine: on a shared host the CPU time stolen
  by other guests comes and goes within seconds, and phases run one after the other measure
  that instead of the tap. Several short rounds; each prints its share of stolen CPU
  (`steal` in /proc/stat) and its p50 and p99, direct and tapped, and their difference,
  which is what the tap adds. The result pools the rounds in which at most `--max-steal` of
  the CPU was stolen (a pod with its own cores sees none), and, for comparison, all rounds;
- maximum throughput with `wrk` (closed loop, 16 connections), direct and tapped phases
  alternated, and the ratio.

With `--grpc` the same is measured for the gRPC tap beside the HTTP one, against the model
server's gRPC port (mlserver or kserve): ModelInfer calls, interleaved direct and tapped at the
same rate in each round right after the HTTP pair, and throughput from a closed loop of
`--connections` concurrent calls (a grpc.aio client in this process: no wrk for gRPC here, so
the client's own CPU is part of both phases alike).

    python bench/proxy.py [--upstream mlserver|kserve|echo] [--rate 200] [--rounds 6] [--grpc]

Goal (issues 4 and 16): at most 1 ms added at p50 and 3 ms at p99, at least 80 % of direct
throughput. Needs `wrk` (Debian package; installed here when missing and running as root) and,
for a real model server, `scripts/upstreams.sh`.
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
import grpc
import grpc.aio
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aims_agent.agent.process import start_agent  # noqa: E402
from aims_agent.collectors.protocols import oip_pb2 as pb  # noqa: E402
from tests.integration.upstreams import free_port, start_upstream  # noqa: E402

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
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(tmp), "echo_app:app"]
        + ["--port", str(port), "--log-level", "warning", "--no-access-log"],
    )
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/v2/health/ready")
    return proc, url


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


INFER = "/inference.GRPCInferenceService/ModelInfer"


def write_config(
    tmp: Path,
    upstream: str,
    sample_rate: float = 1.0,
    durability: str = "full",
    grpc_upstream: str | None = None,
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
    if grpc_upstream is not None:
        cfg["models"][0]["grpc_proxy"] = {  # type: ignore[index]
            "port": 0,
            "upstream": grpc_upstream,
            "input": "input-0",
            "sample_rate": sample_rate,
        }
    path = tmp / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def request_body(rng: np.random.Generator) -> bytes:
    row = [float(rng.normal()), float(rng.gamma(2, 2)), float(rng.uniform(0, 10))]
    return json.dumps(
        {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 3], "data": row}]}
    ).encode()


def grpc_body(rng: np.random.Generator, model: str) -> bytes:
    row = [float(rng.normal()), float(rng.gamma(2, 2)), float(rng.uniform(0, 10))]
    t = pb.ModelInferRequest.InferInputTensor(name="input-0", datatype="FP64", shape=[1, 3])
    t.contents.fp64_contents.extend(row)
    return pb.ModelInferRequest(model_name=model, inputs=[t]).SerializeToString()


async def interleaved_grpc(
    targets: dict[str, str], bodies: list[bytes], rate: float, seconds: float
) -> dict[str, list[float]]:
    """As `interleaved`, for ModelInfer over gRPC (`targets`: host:port)."""
    latencies: dict[str, list[float]] = {name: [] for name in targets}
    channels = {name: grpc.aio.insecure_channel(t) for name, t in targets.items()}
    calls = {name: ch.unary_unary(INFER) for name, ch in channels.items()}
    try:

        async def one(name: str, due: float, body: bytes) -> None:
            await calls[name](body, timeout=30)
            latencies[name].append(time.perf_counter() - due)

        for i in range(20):
            for name in targets:
                await one(name, time.perf_counter(), bodies[i])
        for values in latencies.values():
            values.clear()
        names, tasks = list(targets), []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            order = names if i % 2 == 0 else names[::-1]
            for j, name in enumerate(order):
                due = start + (i + j / len(order)) / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(name, due, bodies[i % len(bodies)])))
        await asyncio.gather(*tasks)
    finally:
        for ch in channels.values():
            await ch.close()
    return latencies


async def grpc_throughput(target: str, body: bytes, seconds: float, concurrency: int) -> float:
    """ModelInfer calls per second from `concurrency` callers, each one call at a time."""
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(INFER)
        for _ in range(20):
            await call(body, timeout=30)
        done = 0
        end = time.perf_counter() + seconds

        async def caller() -> None:
            nonlocal done
            while time.perf_counter() < end:
                await call(body, timeout=30)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


async def interleaved(
    urls: dict[str, str], bodies: list[bytes], rate: float, seconds: float
) -> dict[str, list[float]]:
    """Latencies (s) per target, each sent `rate` requests per second for `seconds`, the
    targets' requests spread evenly over each period; each timed from when it was due."""
    latencies: dict[str, list[float]] = {name: [] for name in urls}
    connector = aiohttp.TCPConnector(limit=128)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(name: str, due: float, body: bytes) -> None:
            async with session.post(
                urls[name], data=body, headers={"Content-Type": "application/json"}
            ) as r:
                await r.read()
                assert r.status == 200, r.status
            latencies[name].append(time.perf_counter() - due)

        for i in range(20):  # warm the connection pools
            for name in urls:
                await one(name, time.perf_counter(), bodies[i])
        for values in latencies.values():
            values.clear()
        names, tasks = list(urls), []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            order = names if i % 2 == 0 else names[::-1]
            for j, name in enumerate(order):
                due = start + (i + j / len(order)) / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(name, due, bodies[i % len(bodies)])))
        await asyncio.gather(*tasks)
    return latencies


def cpu_ticks() -> tuple[int, int] | None:
    """(stolen, total) CPU ticks since boot, or None where /proc/stat is not Linux's."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7], sum(fields)) if len(fields) > 7 else None


def steal_between(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of CPU time stolen by the hypervisor between two `cpu_ticks()`."""
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


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


class Rounds:
    """One transport's latency rounds: every round, and the quiet ones pooled."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.every: dict[str, list[float]] = {"direct": [], "tapped": []}
        self.quiet: dict[str, list[float]] = {"direct": [], "tapped": []}
        self.added: list[tuple[float, float]] = []  # each round's (p50, p99) difference

    def add(self, n: int, got: dict[str, list[float]], steal: float | None, limit: float) -> None:
        noisy = steal is not None and steal > limit
        mark = "  (set aside: stolen CPU)" if noisy else ""
        print(f"{n:<3} {self.name:<4} {_share(steal):>6} {_row(got)}{mark}", flush=True)
        self.added.append(_added(got))
        for name, values in got.items():
            self.every[name] += values
            if not noisy:
                self.quiet[name] += values

    def summary(self) -> tuple[float, float, str]:
        if self.quiet["direct"]:
            p50, p99 = _added(self.quiet)
            return p50, p99, "quiet rounds pooled"
        # a pooled p99 over rounds this noisy is one stall's; the median round is steadier
        p50, p99 = (float(np.median([a[i] for a in self.added])) for i in (0, 1))
        return p50, p99, "no quiet round: median of the rounds' differences; re-run quieter"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", default="mlserver", choices=["mlserver", "kserve", "echo"])
    ap.add_argument("--rate", type=float, default=200, help="requests/s, to each of the two")
    ap.add_argument("--rounds", type=int, default=6, help="latency rounds")
    ap.add_argument("--seconds", type=float, default=5, help="per latency round")
    ap.add_argument("--wrk-rounds", type=int, default=2, help="direct/tapped throughput pairs")
    ap.add_argument("--wrk-seconds", type=float, default=10, help="per throughput phase")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections")
    ap.add_argument("--sample-rate", type=float, default=1.0, help="the tap's; goal is at 1.0")
    ap.add_argument("--durability", choices=["full", "normal"], default="full")
    ap.add_argument("--latency-only", action="store_true", help="skip the throughput phases")
    ap.add_argument("--grpc", action="store_true", help="the gRPC tap too, beside HTTP")
    ap.add_argument(
        "--max-steal", type=float, default=0.05, help="rounds with more stolen CPU are set aside"
    )
    args = ap.parse_args()
    if args.grpc and args.upstream == "echo":
        raise SystemExit("--grpc needs a model server with a gRPC port: mlserver or kserve")
    ensure_wrk()
    rng = np.random.default_rng(1)
    bodies = [request_body(rng) for _ in range(1000)]
    print(
        f"upstream: {args.upstream}; {args.rate:g} requests/s to each of direct and tapped,"
        f" interleaved; {args.rounds} rounds of {args.seconds:g} s; sampling {args.sample_rate:.0%}"
    )
    print(f"{'round':8} {'steal':>6} {'direct p50/p99':>16} {'tapped p50/p99':>16} {'added':>14}")
    transports = [Rounds("http")] + ([Rounds("grpc")] if args.grpc else [])
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        server = None
        if args.upstream == "echo":
            echo, up_url = start_echo(tmp)
            model = "credit"
        else:
            server = start_upstream(args.upstream, tmp / "upstream")
            up_url, model = server.url, server.model
        grpc_upstream = server.grpc_target if args.grpc and server else None
        agent, _, taps = start_agent(
            write_config(tmp, up_url, args.sample_rate, args.durability, grpc_upstream),
            {"AIMS_BENCH_TOKEN": TOKEN},
            proxies=1 + args.grpc,
        )
        path = f"/v2/models/{model}/infer"
        grpc_bodies = [grpc_body(rng, model) for _ in range(1000)]
        try:
            targets = {"direct": up_url + path, "tapped": taps["credit"] + path}
            grpc_targets = {"direct": grpc_upstream or "", "tapped": taps.get("grpc:credit", "")}
            first = cpu_ticks()
            for n in range(1, args.rounds + 1):
                for rounds in transports:
                    before = cpu_ticks()
                    if rounds.name == "http":
                        run = interleaved(targets, bodies, args.rate, args.seconds)
                    else:
                        run = interleaved_grpc(grpc_targets, grpc_bodies, args.rate, args.seconds)
                    got = asyncio.run(run)
                    rounds.add(n, got, steal_between(before, cpu_ticks()), args.max_steal)
            whole = _share(steal_between(first, cpu_ticks()))
            for rounds in transports:
                print(f"all {rounds.name:<4} {whole:>6} {_row(rounds.every)}")
                if rounds.quiet["direct"]:
                    print(f"quiet {rounds.name:<4} {'':>4} {_row(rounds.quiet)}")
            rps: dict[tuple[str, str], list[float]] = {}
            for _ in range(0 if args.latency_only else args.wrk_rounds):
                for name, url in targets.items():
                    got_rps = wrk(url, bodies[0], args.wrk_seconds, args.connections, tmp)
                    rps.setdefault(("http", name), []).append(got_rps)
                for name, target in grpc_targets.items() if args.grpc else ():
                    run_rps = grpc_throughput(
                        target, grpc_bodies[0], args.wrk_seconds, args.connections
                    )
                    rps.setdefault(("grpc", name), []).append(asyncio.run(run_rps))
        finally:
            agent.terminate()
            agent.wait(30)
            if server is not None:
                server.stop()
            else:
                echo.terminate()
                echo.wait(10)
    for rounds in transports:
        p50, p99, how = rounds.summary()
        print(
            f"{rounds.name}: added by the tap ({how}): p50 {p50:.3f} ms, p99 {p99:.3f} ms"
            "   (goal: 1, 3)"
        )
    if args.latency_only:
        return
    for rounds in transports:
        d = float(np.mean(rps[(rounds.name, "direct")]))
        t = float(np.mean(rps[(rounds.name, "tapped")]))
        print(
            f"{rounds.name}: max throughput ({args.connections} connections): direct {d:,.0f}/s,"
            f" tapped {t:,.0f}/s; tapped / direct: {t / d:.2f}   (goal: 0.80)"
        )


def _added(lat: dict[str, list[float]]) -> tuple[float, float]:
    """Tapped minus direct, at p50 and p99 (ms)."""
    return (
        pct(lat["tapped"], 50) - pct(lat["direct"], 50),
        pct(lat["tapped"], 99) - pct(lat["direct"], 99),
    )


def _row(lat: dict[str, list[float]]) -> str:
    d50, d99, t50, t99 = (pct(lat[n], q) for n in ("direct", "tapped") for q in (50, 99))
    return f"{d50:7.2f} {d99:8.2f} {t50:7.2f} {t99:8.2f} {t50 - d50:6.2f} {t99 - d99:7.2f}"


if __name__ == "__main__":
    main()
