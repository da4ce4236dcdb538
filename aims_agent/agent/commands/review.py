"""`aims-agent review record|list`: keep a management review (clause 9.3.3) as evidence.

A client of the running agent, like `nc`: the review is recorded with the person or machine of
the token (`--token-env`, default AIMS_TOKEN; `write` scope to record). Its inputs are period
reports given as the files the agent wrote (hashed here) or as SHA-256 digests; the agent
refuses a digest it has no period report of.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

NAME = "review"
HELP = "record and list management reviews (clause 9.3.3) on a running agent"


def arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="review_command", required=True)
    for name, help_ in (
        ("record", "record a management review with its inputs, decisions and actions"),
        ("list", "the reviews recorded, of one period or all"),
    ):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--url", default="http://127.0.0.1:8000", help="the agent's API")
        s.add_argument("--token-env", default="AIMS_TOKEN", help="variable holding the token")
        if name == "list":
            s.add_argument("--period", help="2026, 2026-Q4, 2026-12 or D..D")
            continue
        s.add_argument("--date", required=True, help="when the review was held (YYYY-MM-DD)")
        s.add_argument("--attendee", action="append", default=[], required=True)
        s.add_argument(
            "--input",
            action="append",
            default=[],
            metavar="REPORT_FILE|SHA256",
            required=True,
            help="a period report the review considered: the file, or its SHA-256",
        )
        s.add_argument("--decision", action="append", default=[])
        s.add_argument(
            "--action",
            action="append",
            default=[],
            metavar="JSON",
            help='e.g. \'{"description": "retrain monthly", "owner": "ml", '
            '"due_date": "2027-01-31"}\' or plain text',
        )


def _input(value: str) -> dict[str, Any] | str:
    path = Path(value)
    if path.is_file():
        return {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "name": path.name}
    if len(value) == 64 and all(c in "0123456789abcdef" for c in value.lower()):
        return {"sha256": value.lower()}
    return f"--input {value!r}: neither a file nor a SHA-256"


def _review(args: argparse.Namespace) -> dict[str, Any] | str:
    inputs = []
    for value in args.input:
        item = _input(value)
        if isinstance(item, str):
            return item
        inputs.append(item)
    actions: list[Any] = []
    for raw in args.action:
        try:
            actions.append(json.loads(raw))
        except json.JSONDecodeError:
            actions.append({"description": raw})
    return {
        "date": args.date,
        "attendees": args.attendee,
        "inputs": inputs,
        "decisions": args.decision,
        "actions": actions,
    }


def run(args: argparse.Namespace) -> int:
    import httpx

    token = os.environ.get(args.token_env, "")
    if not token:
        print(f"--token-env: environment variable {args.token_env} is not set", file=sys.stderr)
        return 2
    headers = {"Authorization": f"Bearer {token}"}
    if args.review_command == "record":
        review = _review(args)
        if isinstance(review, str):
            print(review, file=sys.stderr)
            return 2
    try:
        with httpx.Client(base_url=args.url, headers=headers, timeout=30) as client:
            if args.review_command == "record":
                r = client.post("/v1/management-reviews", json=review)
            else:
                params = {"period": args.period} if args.period else {}
                r = client.get("/v1/management-reviews", params=params)
    except httpx.HTTPError as exc:
        print(f"--url: cannot reach the agent at {args.url}: {exc}", file=sys.stderr)
        return 1
    if r.status_code >= 400:
        try:
            message = r.json().get("error", r.text)
        except ValueError:
            message = r.text
        print(f"error ({r.status_code}): {message}", file=sys.stderr)
        return 2 if r.status_code < 500 else 1
    print(json.dumps(r.json(), indent=2, sort_keys=True))
    return 0
