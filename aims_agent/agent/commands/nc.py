"""`aims-agent nc list|show|open|update`: work nonconformity records through the agent's API.

The CLI is a client of the running agent, so every change is authenticated with a token
(`--token-env`, default AIMS_TOKEN; `write` scope to update) and recorded with its actor, the
token's name, exactly as over HTTP.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

NAME = "nc"
HELP = "list, show, open and update nonconformity records (clause 10.2) of a running agent"
SOURCES = ("internal_audit", "external_audit", "incident", "complaint", "other")
SEVERITIES = ("major", "minor", "observation")
INCIDENTS = ("general", "widespread_or_critical_infrastructure", "death")
STATUSES = ("open", "investigating", "corrective_action", "verifying", "closed", "rejected")


def arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="nc_command", required=True)
    for name, help_ in (
        ("list", "nonconformity records, newest first"),
        ("show", "one record with its events"),
        ("open", "record a nonconformity found by an audit, an incident or a complaint"),
        ("update", "change the status and / or clause 10.2 fields"),
    ):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--url", default="http://127.0.0.1:8000", help="the agent's API")
        s.add_argument("--token-env", default="AIMS_TOKEN", help="variable holding the token")
        if name == "list":
            s.add_argument("--status", choices=STATUSES)
            s.add_argument("--model")
            s.add_argument("--format", choices=["table", "json"], default="table")
        elif name == "open":
            s.add_argument("--model", required=True, help="the model it concerns")
            s.add_argument("--source", required=True, choices=SOURCES, help="where it was found")
            s.add_argument("--reference", help="the audit report, ticket or case number")
            s.add_argument("--reported-by", help="who found or reported it")
            s.add_argument("--received-at", help="when it was reported (ISO 8601)")
            s.add_argument("--description", required=True, help="what was found")
            s.add_argument("--requirement", required=True, help="the requirement not met")
            s.add_argument("--control", action="append", default=[], help="e.g. A.6.2.6")
            s.add_argument("--severity", choices=SEVERITIES, default="minor")
            s.add_argument(
                "--serious-incident",
                choices=INCIDENTS,
                help="a possible serious incident (EU AI Act Art. 73) of this kind",
            )
            s.add_argument("--aware-at", help="when it became known (ISO 8601; default now)")
            s.add_argument("--comment")
        else:
            s.add_argument("nc_id")
        if name == "update":
            s.add_argument("--status", choices=STATUSES)
            s.add_argument(
                "--set",
                action="append",
                default=[],
                metavar="FIELD=JSON",
                help='a clause 10.2 field, e.g. --set \'corrective_action={"description": '
                '"retrain", "owner": "ml", "due_date": "2026-12-15"}\'',
            )
            s.add_argument("--justification", help="why a rejected record is a false alarm")
            s.add_argument("--comment")


def _change(args: argparse.Namespace) -> dict[str, Any] | str:
    change: dict[str, Any] = {}
    for item in args.set:
        field, sep, raw = item.partition("=")
        if not sep:
            return f"--set {item!r}: expected FIELD=JSON"
        try:
            change[field] = json.loads(raw)
        except json.JSONDecodeError:
            change[field] = raw  # a plain string, e.g. --set management_system_change=...
    for key in ("status", "justification", "comment"):
        if getattr(args, key):
            change[key] = getattr(args, key)
    return change or "nothing to update: give --status, --set, --justification or --comment"


def _found_by(nc: dict[str, Any]) -> str:
    detected = nc.get("detected_by") or {}
    return str(detected.get("check_id") or detected.get("type") or "-")


def _new(args: argparse.Namespace) -> dict[str, Any]:
    source = {"type": args.source}
    for key in ("reference", "reported_by", "received_at"):
        if getattr(args, key):
            source[key] = getattr(args, key)
    new: dict[str, Any] = {
        "model": args.model,
        "source": source,
        "description": args.description,
        "requirement": args.requirement,
        "controls": args.control,
        "severity": args.severity,
    }
    if args.serious_incident:
        incident = {"possible": True, "kind": args.serious_incident}
        if args.aware_at:
            incident["aware_at"] = args.aware_at
        new["serious_incident"] = incident
    if args.comment:
        new["comment"] = args.comment
    return new


def run(args: argparse.Namespace) -> int:
    import httpx

    token = os.environ.get(args.token_env, "")
    if not token:
        print(f"--token-env: environment variable {args.token_env} is not set", file=sys.stderr)
        return 2
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=args.url, headers=headers, timeout=30) as client:
            if args.nc_command == "list":
                params = {k: v for k in ("status", "model") if (v := getattr(args, k))}
                r = client.get("/v1/nonconformities", params=params)
            elif args.nc_command == "show":
                r = client.get(f"/v1/nonconformities/{args.nc_id}")
            elif args.nc_command == "open":
                r = client.post("/v1/nonconformities", json=_new(args))
            else:
                change = _change(args)
                if isinstance(change, str):
                    print(change, file=sys.stderr)
                    return 2
                r = client.patch(f"/v1/nonconformities/{args.nc_id}", json=change)
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
    data = r.json()
    if args.nc_command == "list" and args.format == "table":
        for nc in data:
            print(
                f"{nc['nc_id']}  {nc['status']:<17} {nc.get('severity', ''):<11} "
                f"{nc['model']}/{_found_by(nc)}  opened {nc['opened_at']}  "
                f"recurrences {nc['recurrences']}"
            )
    else:
        print(json.dumps(data, indent=2, sort_keys=True))
    return 0
