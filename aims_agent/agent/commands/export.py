"""`aims-agent export oscal`: a period's evidence as an OSCAL assessment-results document.

Reads the evidence store the config names (committed evidence only, so the agent may keep
running), writes the document atomically and prints its SHA-256 and path as `sha256sum` does,
so `sha256sum -c` can check the file later.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from aims_agent.agent.commands import open_evidence

NAME = "export"
HELP = "export a period's evidence (OSCAL assessment results)"


def arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="export_format", required=True)
    o = sub.add_parser(
        "oscal",
        help="OSCAL 1.2 assessment results (JSON): check runs as observations, "
        "nonconformities as findings and risks",
    )
    o.add_argument("--config", required=True)
    o.add_argument(
        "--period", required=True, help="UTC: YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD..YYYY-MM-DD"
    )
    o.add_argument("--model", help="one model's evidence (default: all models)")
    o.add_argument(
        "--out", help="file to write (default: aims-assessment-results-PERIOD[-MODEL].json)"
    )
    o.add_argument(
        "--allow-unverified",
        action="store_true",
        help="export even if the evidence ledger does not verify, stamped UNVERIFIED",
    )


def run(args: argparse.Namespace) -> int:
    from aims_agent.errors import LedgerTamperedError, PeriodError, StorageError
    from aims_agent.exporters.ledger_check import check_store, stamp_oscal
    from aims_agent.exporters.oscal import assessment_results
    from aims_agent.exporters.period import period_bounds, period_label
    from aims_agent.exporters.report import write_atomic

    try:
        start, end = period_bounds(args.period)
    except PeriodError as exc:
        print(exc, file=sys.stderr)
        return 2
    cfg, store = open_evidence(args.config, args.model)
    try:
        state = check_store(
            store, evidence_dir=cfg.agent.evidence_dir, allow_unverified=args.allow_unverified
        )
        doc = store.read(lambda conn: assessment_results(conn, cfg, start, end, args.model))
        doc = stamp_oscal(doc, state)
    except (StorageError, LedgerTamperedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    data = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()
    suffix = f"-{args.model}" if args.model else ""
    label = period_label(args.period)
    out = Path(args.out or f"aims-assessment-results-{label}{suffix}.json")
    try:
        write_atomic(out, data)
    except OSError as exc:
        print(f"--out: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"{hashlib.sha256(data).hexdigest()}  {out}")
    return 0
