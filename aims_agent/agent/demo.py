"""`aims-agent demo`: a model monitored end to end on this machine, in about a minute.

It trains a credit model, writes its reference data and the bundled config into the evidence
directory, starts the agent as a real process, sends live traffic through the HTTP ingest API,
injects drift partway, and narrates what the agent does: checks, verdicts, the breach and the
nonconformity it opens. It stops the agent with SIGTERM and leaves the evidence behind.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from aims_agent.agent import demo_data
from aims_agent.agent.process import start_agent

MODEL = "credit-risk"
PUBLIC_KEY = "ledger-signing.pub"


def say(t0: float, message: str) -> None:
    print(f"[{time.monotonic() - t0:5.1f}s] {message}", flush=True)


def _metric(text: str, name: str) -> float:
    """The value of the named series of `model`, 0 when it does not exist yet."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == {"model": MODEL}:
                return float(sample.value)
    return 0.0


def _describe(record: dict[str, Any]) -> str:
    result = record["result"]
    parts = [f"check {record['check']['id']}: {result['outcome'].upper()}"]
    heads = [m for m in result["measurements"] if m["headline"]]
    if record["check"]["kind"] == "drift" and heads and result["value"] is not None:
        head = heads[0]
        parts.append(
            f"drift share {result['value']:.2f} "
            f"({head['params']['drifted_features']}/{head['params']['features']} "
            f"features, window of {record['window']['records_sampled']} records)"
        )
        for role, title in (("feature", "drifted features"), ("output", "model output drift")):
            drifted = [
                f"{m['feature']} ({m['method']} {m['value']:.3f})"
                for m in result["measurements"]
                if m["verdict"] == "breach" and m["params"].get("role") == role
            ]
            if drifted:
                parts.append(f"{title}: " + ", ".join(drifted))
        return "  ".join(parts)
    shown = [m for m in heads if m["verdict"] in ("breach", "warn")]
    if not shown:
        judged = sum(m["verdict"] == "pass" for m in heads)
        return "  ".join(
            [*parts, f"{judged} of {len(heads)} metrics within thresholds"]
            + [
                f"{m['metric']}={m['value']:.3f}"
                for m in heads[:2]
                if len(heads) <= 3 and m["value"] is not None
            ]
        )
    parts += [
        f"{m['metric']}{'[' + m['feature'] + ']' if m['feature'] else ''}="
        f"{'-' if m['value'] is None else format(m['value'], '.3f')} ({m['verdict']})"
        for m in shown[:4]
    ]
    return "  ".join(parts)


@dataclass
class _Seen:
    """What the narration has already shown."""

    records: set[str] = field(default_factory=set)
    attachments: set[str] = field(default_factory=set)
    recurrences: dict[str, int] = field(default_factory=dict)  # nc id -> recurrences shown
    open_gauge: float = 0.0


def run_demo(*, duration: float, evidence_dir: Path, rate: int, seed: int) -> int:
    duration = max(20.0, duration)
    t0 = time.monotonic()
    rng = np.random.default_rng(seed)
    evidence_dir = evidence_dir.resolve()
    evidence_dir.mkdir(parents=True, exist_ok=True)

    train = demo_data.applicants(rng, 6000)
    model = demo_data.CreditModel(train)
    holdout = demo_data.applicants(rng, 3000)
    demo_data.write_reference(evidence_dir / "reference.csv", holdout, model.score(holdout))
    config = evidence_dir / "aims-agent.yaml"
    with resources.as_file(resources.files("aims_agent.configs").joinpath("demo.yaml")) as src:
        shutil.copyfile(src, config)
    say(
        t0,
        f"trained a logistic-regression credit model; reference data: {len(holdout.label)} "
        f"rows in {evidence_dir / 'reference.csv'}",
    )

    token = secrets.token_urlsafe(24)
    signing_key, public_hex = _signing_key(evidence_dir / PUBLIC_KEY)
    proc, url, _ = start_agent(
        config, {"AIMS_DEMO_TOKEN": token, "AIMS_DEMO_SIGNING_KEY": signing_key}
    )
    say(t0, f"agent running at {url}  (Prometheus metrics: {url}/metrics, API docs: {url}/docs)")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    seen = _Seen()
    drift_at = duration * 0.4
    labels_stop_at = duration * 0.5  # ground truth stops coming, as it does for many models
    borderline_at = duration * 0.6  # then a broker sends applicants near the decision boundary
    sent, tick = 0, 0.25
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            start = time.monotonic()
            next_report = start + 2
            drifting, labelled, borderline = False, True, False
            while (now := time.monotonic()) - start < duration:
                if not drifting and now - start >= drift_at:
                    drifting = True
                    say(
                        t0,
                        ">>> injecting drift: applicants younger, incomes x1.6, "
                        "region mix shifted to 'central'",
                    )
                if labelled and now - start >= labels_stop_at:
                    labelled = False
                    say(
                        t0,
                        ">>> labels stop arriving: the performance check runs out of labelled "
                        "records, the estimated performance (no labels needed) goes on",
                    )
                if not borderline and now - start >= borderline_at:
                    borderline = True
                    say(
                        t0,
                        ">>> a broker sends borderline applicants (scores 0.35-0.65): the model "
                        "decides them worse; without labels, only the estimate can tell",
                    )
                n = max(1, int(rate * tick))
                batch = demo_data.applicants(rng, n * (6 if borderline else 1), drift=drifting)
                scores = model.score(batch)
                if borderline:
                    keep = np.flatnonzero((scores >= 0.35) & (scores <= 0.65))[:n]
                    batch, scores = demo_data.subset(batch, keep), scores[keep]
                recs = demo_data.records(
                    batch, scores, start_id=sent, now=time.time(), labelled=labelled
                )
                body = "\n".join(json.dumps(r) for r in recs)
                resp = client.post(f"/v1/models/{MODEL}/records", content=body)
                resp.raise_for_status()
                _review(client, rng, recs)
                sent += len(recs)
                if now >= next_report:
                    next_report = now + 2
                    _report(client, t0, sent, seen)
                time.sleep(max(0.0, tick - (time.monotonic() - now)))
            _report(client, t0, sent, seen)
            _export(client, evidence_dir)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    say(t0, f"agent stopped (exit {proc.returncode})")
    print(f"\nEvidence is in {evidence_dir}:")
    print(
        "  aims.db                  SQLite store: monitoring records (clause 9.1), "
        "nonconformities and their events (clause 10.2)"
    )
    print("  monitoring-records.json  every check run, as the API serves it")
    print("  attachments/             Evidently HTML drift reports, hashed in the records")
    print("  nonconformities.json     the nonconformity register with event history")
    print("  reference.csv, aims-agent.yaml   the reference data and config the agent ran with")
    print(f"  {PUBLIC_KEY}       the public half of the key that signed the ledger's head")
    print(
        f"\nThe evidence ledger is signed (Ed25519). Public key: {public_hex}\n"
        "Keep it somewhere the evidence directory's owner cannot change, and verify with:\n"
        f"  aims-agent evidence verify --config {config} --public-key {evidence_dir / PUBLIC_KEY}"
    )
    if not seen.recurrences:
        print("\nNo nonconformity was opened: try a longer --duration.")
        return 1
    return 0


def _review(client: httpx.Client, rng: np.random.Generator, recs: list[dict[str, Any]]) -> None:
    """Loan officers review most borderline decisions (score 0.4-0.6) and override some."""
    items = [
        {"id": r["id"], "reviewed": True, "overridden": bool(rng.random() < 0.1)}
        for r in recs
        if 0.4 <= r["score"] <= 0.6 and rng.random() < 0.85
    ]
    if items:
        body = "\n".join(json.dumps(i) for i in items)
        client.post(f"/v1/models/{MODEL}/feedback", content=body).raise_for_status()


def _signing_key(public: Path) -> tuple[str, str]:
    """A fresh Ed25519 key for this demo run: the private half only in the agent's environment
    (never on disk), the public half written to `public` (PEM) and returned as hex."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    pub = key.public_key()
    public.write_bytes(
        pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pem, pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def _report(client: httpx.Client, t0: float, sent: int, seen: _Seen) -> None:
    metrics = client.get("/metrics").text
    received = _metric(metrics, "aims_records_received_total")
    sampled = _metric(metrics, "aims_window_sampled_records")
    say(t0, f"sent {sent} records; agent received {received:.0f}, window sample {sampled:.0f}")
    records = client.get("/v1/monitoring-records", params={"model": MODEL, "limit": 20}).json()
    for rec in reversed(records):
        if rec["record_id"] not in seen.records:
            seen.records.add(rec["record_id"])
            say(t0, _describe(rec))
        for att in rec.get("attachments", []):
            if att["attachment_id"] not in seen.attachments:
                seen.attachments.add(att["attachment_id"])
                say(
                    t0,
                    f"    Evidently drift report attached to {rec['record_id']}: "
                    f"{att['path']} (sha256 {att['sha256'][:16]}...)",
                )
    for nc in reversed(client.get("/v1/nonconformities", params={"model": MODEL}).json()):
        known = seen.recurrences.get(nc["nc_id"])
        if known is None:
            say(
                t0,
                f"!!! nonconformity {nc['nc_id']} opened ({nc['severity']}): "
                f"{nc['nature']['observed']}; controls {', '.join(nc['requirement']['controls'])}",
            )
        elif nc["recurrences"] > known:
            say(
                t0,
                f"    nonconformity {nc['nc_id']}: breach recurred, {nc['recurrences']} "
                "recurrence(s) attached",
            )
        seen.recurrences[nc["nc_id"]] = nc["recurrences"]
    open_nc = _metric(metrics, "aims_nonconformities_open")
    if open_nc != seen.open_gauge:
        say(t0, f'    /metrics: aims_nonconformities_open{{model="{MODEL}"}} {open_nc:.0f}')
        seen.open_gauge = open_nc


def _export(client: httpx.Client, evidence_dir: Path) -> None:
    records = client.get("/v1/monitoring-records", params={"limit": 1000}).json()
    ncs = [
        client.get(f"/v1/nonconformities/{nc['nc_id']}").json()
        for nc in client.get("/v1/nonconformities").json()
    ]
    for name, data in (("monitoring-records.json", records), ("nonconformities.json", ncs)):
        tmp = evidence_dir / f".{name}.tmp"
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        tmp.replace(evidence_dir / name)
