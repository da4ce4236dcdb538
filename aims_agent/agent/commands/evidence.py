"""`aims-agent evidence verify|head`: check the evidence ledger's hash chain, show or sign its head.

`verify` recomputes the chain from the evidence store the config names and checks every
record against it: exit 0 intact, 1 tampered (the first altered, removed or reordered entry is
named), 2 bad input. `head` prints the last entry's seq, hash and time with its signature;
`--sign` signs it with the key in the environment variable `agent.ledger.signing_key_env`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aims_agent.agent.commands import open_evidence
from aims_agent.errors import AimsError
from aims_agent.exporters.canonical import iso

NAME = "evidence"
HELP = "verify the evidence ledger (hash chain) and show or sign its head"
EXIT_OK, EXIT_TAMPERED, EXIT_USAGE = 0, 1, 2
SHOWN = 20  # problems listed in the text summary


def arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="evidence_command", required=True)
    v = sub.add_parser("verify", help="recompute the chain; exit 1 naming the first tampered entry")
    h = sub.add_parser("head", help="the ledger's head (seq, hash, time) and its signature")
    for s in (v, h):
        s.add_argument("--config", required=True)
        s.add_argument("--format", choices=["text", "json"], default="text")
    v.add_argument(
        "--public-key",
        metavar="FILE",
        help="Ed25519 public key (PEM or 64 hex digits) that must have signed the latest head",
    )
    v.add_argument(
        "--against",
        metavar="FILE|URL",
        help="a head published elsewhere (`evidence head --format json`, or the signed head "
        "alone): its signature must verify and the ledger must still hold it",
    )
    h.add_argument("--sign", action="store_true", help="sign the head with the configured key")


def _usage(message: str) -> int:
    print(message, file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:

    try:
        cfg, store = open_evidence(args.config)
    except AimsError as exc:
        return _usage(str(exc))
    try:
        return (
            _verify(args, cfg, store)
            if args.evidence_command == "verify"
            else _head(args, cfg, store)
        )
    finally:
        store.close()


def _verify(args: argparse.Namespace, cfg: Any, store: Any) -> int:
    from aims_agent.exporters.ledger_verify import VerifyReport, verify

    public_key = None
    if args.public_key:
        from aims_agent.errors import SigningKeyError
        from aims_agent.exporters.ledger_signing import load_public_key

        try:
            public_key = load_public_key(Path(args.public_key).read_bytes())
        except OSError as exc:
            return _usage(f"--public-key: cannot read {args.public_key}: {exc.strerror}")
        except SigningKeyError as exc:
            return _usage(f"--public-key: {exc}")
    published = None
    if args.against:
        try:
            published = _published(args.against)
        except ValueError as exc:
            return _usage(f"--against: {exc}")
    report: VerifyReport = store.read(
        lambda conn: verify(conn, evidence_dir=cfg.agent.evidence_dir, public_key=public_key)
    )
    against = None  # what is wrong with the published head, if one was given
    if published is not None:
        from aims_agent.exporters.ledger_signing import published_problem

        against = store.read(lambda conn: published_problem(conn, published, public_key))
    ok = report.ok and against is None
    if ok and report.head_hash is not None:  # a whole-store verify: later reads start here
        _remember(store, report)
    if args.format == "json":
        data = asdict(report)
        if report.signed_head is not None:
            data["signed_head"]["trusted"] = report.signature_trusted
        del data["signature_trusted"]
        if published is not None:
            data["published_head"] = {"source": args.against, "problem": against}
        data["ok"] = ok
        print(json.dumps(data, indent=2))
        return EXIT_OK if ok else EXIT_TAMPERED
    if against and report.ok:
        print(f"TAMPERED: {against}")
    print(_summary(report))
    if against and not report.ok:
        print(f"  {against}")
    elif published is not None and against is None:
        print(f"published head ({args.against}): on the chain, signature verifies")
    return EXIT_OK if ok else EXIT_TAMPERED


def _remember(store: Any, report: Any) -> None:
    from aims_agent.exporters.ledger_check import LedgerState, remember

    done = LedgerState(
        ok=True,
        head_seq=report.head_seq,
        head_hash=report.head_hash,
        signature="",
        signed_seq=None,
        signed_key=None,
        verified_at=time.time(),
        mode="full",
        checked=report.entries,
        first_problem=None,
    )
    store.submit(remember(done)).result()


def _published(source: str) -> dict[str, Any]:
    """The published head at a file or an http(s) URL, as JSON."""
    if source.startswith(("http://", "https://")):
        import httpx

        try:
            r = httpx.get(source, timeout=10.0, follow_redirects=True)
            r.raise_for_status()
            text = r.text
        except httpx.HTTPError as exc:
            raise ValueError(f"cannot fetch {source}: {exc}") from exc
    else:
        try:
            text = Path(source).read_text()
        except (OSError, UnicodeError) as exc:
            raise ValueError(f"cannot read {source}: {exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{source} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{source}: not a JSON object")
    return data


def _summary(report: Any) -> str:
    lines = []
    if report.ok:
        lines.append(f"ledger intact: {report.entries} entries, head {report.head_hash or '-'}")
    else:
        first, *rest = report.problems
        lines.append(f"TAMPERED: {first}")
        lines += [f"  {p}" for p in rest[: SHOWN - 1]]
        if report.problem_count > min(len(report.problems), SHOWN):
            lines.append(
                f"  ... and {report.problem_count - min(len(report.problems), SHOWN)} more"
            )
        lines.append(f"{report.entries} entries checked, {report.problem_count} problem(s)")
    s = report.signed_head
    if s is not None:
        how = "with the trusted key" if report.signature_trusted else "no trusted key given"
        lines.append(
            f"signed head: seq {s.seq}, signed {iso(s.signed_at)} by key {s.public_key[:16]}... "
            f"({how})"
        )
    return "\n".join(lines)


def _head(args: argparse.Namespace, cfg: Any, store: Any) -> int:
    from aims_agent.exporters.ledger import last_entry, latest_signed_head

    signed = None
    if args.sign:
        from aims_agent.exporters.ledger_signing import configured_key, sign_head

        try:
            key = configured_key(cfg.agent.ledger, os.environ)
        except AimsError as exc:
            return _usage(str(exc))
        if key is None:
            return _usage(
                "--sign: set agent.ledger.signing_key_file or signing_key_env "
                "(aims-agent keygen makes a key)"
            )
        signed = store.submit(sign_head(key, now=time.time())).result()
        if signed is None:
            return _usage("--sign: the ledger is empty, there is no head to sign")
    entry, latest = store.read(lambda conn: (last_entry(conn), latest_signed_head(conn)))
    if entry is None:
        print("{}" if args.format == "json" else "ledger is empty")
        return EXIT_OK
    if (
        signed is None
        and latest is not None
        and (latest.seq, latest.hash) == (entry.seq, entry.hash)
    ):
        signed = latest
    if args.format == "json":
        data = {"seq": entry.seq, "hash": entry.hash, "at": entry.at, "signature": None}
        if signed is not None:
            data["signature"] = asdict(signed)
        print(json.dumps(data, indent=2))
        return EXIT_OK
    print(f"head: seq {entry.seq}, hash {entry.hash}, at {iso(entry.at)}")
    if signed is None:
        print("signature: none (sign with --sign)")
    else:
        print(f"signature: {signed.signature}")
        print(f"  by key {signed.public_key}, signed {iso(signed.signed_at)}")
    return EXIT_OK
