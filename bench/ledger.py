"""Verifying a 1,000,000-entry evidence ledger: the whole store, and 1,000 new entries after it.

The ledger is the agent's own (SQLite, as the agent writes it): monitoring records whose bodies
are the real record of a drift run (about 2 KB each, canonical JSON), chained one after the
other, with nonconformities opened, recurring and worked through their events by the real
write path every `--nc-every` records. Building it takes a few minutes the first time; `--db`
keeps it for the next run.

Then, as a user pays it:
- full: `check_store(full=True)`, what `aims-agent evidence verify` and the first report of a
  store run: every entry's hash and link, every record's content hash and columns, every
  nonconformity rebuilt from its events. Goal: under 60 s.
- incremental: 1,000 new entries written by the agent's write path (monitoring records and
  nonconformity events), then `check_store()` as `report`, `export` and the API run it before
  reading: the stored head re-hashed, the new entries and their records checked, the
  nonconformities rebuilt. Goal: under 100 ms.

    python bench/ledger.py [--entries 1000000] [--db /var/tmp/ledger.db] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FULL_GOAL_S, INCREMENTAL_GOAL_MS, NEW = 60.0, 100.0, 1000
BASE = 1_796_000_000.123456  # 2026-11: times with microseconds, as the agent's are


def _run(verdict: str, value: float, t: float, model: str = "m") -> Any:
    from aims_agent.records import (
        Assessment,
        CheckRun,
        ControlTags,
        Measurement,
        Threshold,
        WindowInfo,
    )

    def m(feature: str | None, v: float, headline: bool) -> Measurement:
        return Measurement(
            check_id="drift",
            kind="drift",
            metric="drift_share" if headline else "drift_score",
            feature=feature,
            value=v,
            p_value=None if headline else 0.000012,
            method="share" if headline else "wasserstein",
            headline=headline,
            n_current=500,
            threshold=Threshold(breach=0.5 if headline else 0.1),
        )

    features = [m(f"f{i}", 0.02 * i, False) for i in range(8)]
    return CheckRun(
        run_id=f"run-{t}",
        model=model,
        check_id="drift",
        kind="drift",
        started_at=t,
        finished_at=t + 0.25,
        window=WindowInfo(start=t - 3600, end=t, seen=9000, sampled=5000),
        assessments=(
            Assessment(measurement=m(None, value, True), verdict=verdict),  # type: ignore[arg-type]
            *(Assessment(measurement=f, verdict="pass") for f in features),
        ),
        verdict=verdict,  # type: ignore[arg-type]
        controls=ControlTags(iso42001=("A.6.2.6", "A.7.4"), eu_ai_act=("Art. 72(2)",)),
    )


def _ctx() -> Any:
    from aims_agent.exporters.evidence import EvidenceContext

    return EvidenceContext(
        agent_version="0.1.0",
        config_hash="c" * 64,
        environment="prod",
        ai_system_id="AIS-1",
        model_version="2.0",
        reference_id="reference.parquet",
        reference_fingerprint="f" * 64,
        n_reference=100000,
        schedule_seconds=3600,
        definition="share of drifted features",
        severity="major",
    )


def _template() -> tuple[str, dict[str, str], str]:
    """A pass record's canonical body with placeholders, the digests of its fixed fields."""
    from aims_agent.exporters import ledger
    from aims_agent.exporters.canonical import canonical, json_safe
    from aims_agent.exporters.evidence import monitoring_record

    body = json_safe(
        monitoring_record(_run("pass", 0.1, BASE), _ctx(), record_id="@RID@", nc_id=None)
    )
    body["result"]["breach_streak"] = {"runs": 0, "to_open": 1}
    body["created_at"], body["executed_at"] = "@CREATED@", "@EXECUTED@"
    fields = ledger.field_digests(body, ("result",)) or {}
    return canonical(body).decode(), fields, body["check"]["run_id"]


def _digest(value: str) -> str:
    return hashlib.sha256(b'"' + value.encode() + b'"').hexdigest()[:8]


def build(db: Path, entries: int, nc_every: int) -> None:
    """Write the ledger: bulk monitoring records (the agent's bytes, computed here fast) and,
    every `nc_every` records, a breach through the agent's own write path."""
    import json

    from aims_agent.agent.judge import breach_rule
    from aims_agent.exporters import ledger
    from aims_agent.exporters.canonical import iso
    from aims_agent.exporters.evidence import record_run
    from aims_agent.exporters.lifecycle import apply, decode_change
    from aims_agent.records import Actor
    from aims_agent.storage.store import Store

    store = Store(f"sqlite:///{db}")
    store.close()
    text, fixed, _ = _template()
    person = Actor(kind="person", subject="ana", name="Ana", email="ana@example.org", client="ui")
    raw = sqlite3.connect(db)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=OFF")
    seq, prev, i, t0 = 0, ledger.GENESIS, 0, time.perf_counter()
    decide = breach_rule(1)
    while seq < entries:
        records, chain = [], []
        for _ in range(min(10000, entries - seq)):
            i += 1
            t = BASE + i * 60
            rid = f"MR-{i:032x}"
            created, executed = iso(t + 0.25), iso(t)
            body = (
                text.replace("@RID@", rid)
                .replace("@CREATED@", created)
                .replace("@EXECUTED@", executed)
            )
            sha = hashlib.sha256(body.encode()).hexdigest()
            seq += 1
            h = ledger.entry_hash(
                seq=seq,
                kind="monitoring_record",
                ref_id=rid,
                at=t + 0.25,
                content_sha256=sha,
                prev_hash=prev,
            )
            fields = {
                **fixed,
                "record_id": _digest(rid),
                "created_at": _digest(created),
                "executed_at": _digest(executed),
            }
            records.append((rid, "m", "drift", t, "pass", None, body))
            chain.append(
                (seq, "monitoring_record", rid, t + 0.25, sha, prev, h, json.dumps(fields))
            )
            prev = h
        with raw:
            raw.executemany("INSERT INTO monitoring_records VALUES (?,?,?,?,?,?,?)", records)
            raw.executemany(
                "INSERT INTO evidence_ledger "
                "(seq, kind, ref_id, at, content_sha256, prev_hash, hash, fields) "
                "VALUES (?,?,?,?,?,?,?,?)",
                chain,
            )
            raw.execute("DELETE FROM ledger_head")
            raw.execute("INSERT INTO ledger_head VALUES (1, ?, ?)", (seq, prev))
        if seq < entries and (seq // 10000) % max(1, nc_every // 10000) == 0:  # now and then
            # a breach, a recurrence and a person's change, by the agent's own write path
            store = Store(f"sqlite:///{db}")
            t = BASE + i * 60 + 30
            _, nc_id, _ = store.submit(
                record_run(_run("breach", 0.7, t, "m2"), _ctx(), decide)
            ).result()
            store.submit(record_run(_run("breach", 0.8, t + 1, "m2"), _ctx(), decide)).result()
            for change in (
                {"status": "investigating", "cause_analysis": {"root_cause": "new segment"}},
                {"status": "rejected", "justification": "seasonal, expected"},
            ):
                change_ = decode_change(json.dumps(change).encode())
                store.submit(apply(nc_id, change_, actor=person, now=t + 2)).result()
            store.close()
            row = raw.execute("SELECT seq, hash FROM ledger_head").fetchone()
            seq, prev = int(row[0]), str(row[1])
        if seq % 100000 < 10000:
            print(f"  built {seq:,} entries ({time.perf_counter() - t0:.0f} s)", flush=True)
    raw.close()


def add_new(store: Any, n: int) -> None:
    """n new entries by the agent's write path: passing runs, with a breach now and then."""
    from aims_agent.agent.judge import breach_rule
    from aims_agent.exporters.ledger import last_entry

    start = store.read(last_entry).seq
    decide = breach_rule(1)
    t = BASE + 10_000_000 + start
    k = 0
    while store.read(last_entry).seq - start < n:
        k += 1
        verdict = "breach" if k % 100 == 0 else "pass"
        store.submit(
            record_run(_run(verdict, 0.7 if verdict == "breach" else 0.1, t + k), _ctx(), decide)
        ).result()


def record_run(*args: Any) -> Any:
    from aims_agent.exporters.evidence import record_run as rr

    return rr(*args)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--db", type=Path, help="the ledger's SQLite file: built once, then reused")
    p.add_argument("--nc-every", type=int, default=10000, help="records between breaches")
    p.add_argument("--rounds", type=int, default=3, help="incremental rounds (median shown)")
    args = p.parse_args()

    from aims_agent.exporters.ledger import last_entry
    from aims_agent.exporters.ledger_check import check_store
    from aims_agent.storage.store import Store

    tmp = tempfile.TemporaryDirectory()
    db = args.db or Path(tmp.name) / "ledger.db"
    if not db.exists():
        print(f"building a {args.entries:,}-entry ledger in {db} ...", flush=True)
        build(db, args.entries, args.nc_every)
    store = Store(f"sqlite:///{db}")
    try:
        head = store.read(last_entry)
        print(f"ledger: {head.seq:,} entries, {db.stat().st_size / 1e9:.2f} GB")
        t = time.perf_counter()
        state = check_store(store, evidence_dir=None, full=True)
        full = time.perf_counter() - t
        if not state.ok:
            sys.exit(f"the ledger does not verify: {state.first_problem}")
        times = []
        for _ in range(args.rounds):
            add_new(store, NEW)
            t = time.perf_counter()
            state = check_store(store, evidence_dir=None)
            times.append((time.perf_counter() - t) * 1000)
            assert state.ok and state.mode == "incremental", state
        inc = sorted(times)[len(times) // 2]
    finally:
        store.close()
        tmp.cleanup()
    ok_full, ok_inc = full < FULL_GOAL_S, inc < INCREMENTAL_GOAL_MS
    verdict = {True: "PASS", False: "FAIL"}
    print(
        f"full verify, {head.seq:,} entries: {full:8.1f} s   goal {FULL_GOAL_S:.0f} s   "
        f"ratio {full / FULL_GOAL_S:.2f}  {verdict[ok_full]}"
    )
    rounds = ", ".join(f"{x:.0f}" for x in times)
    print(
        f"incremental verify, {NEW:,} new entries: {inc:8.1f} ms  goal {INCREMENTAL_GOAL_MS:.0f} "
        f"ms  ratio {inc / INCREMENTAL_GOAL_MS:.2f}  {verdict[ok_inc]}  (rounds: {rounds} ms)"
    )
    sys.exit(0 if ok_full and ok_inc else 1)


if __name__ == "__main__":
    main()
