"""`aims-agent report`: a period's management-review input (ISO/IEC 42001 9.3.2).

Reads the evidence store the config names (committed evidence only, so the agent may keep
running), writes the report atomically, records its SHA-256 as an evidence attachment, and
prints the SHA-256 and path as `sha256sum` does, so `sha256sum -c` can check the file later.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aims_agent.agent.commands import open_evidence

NAME = "report"
HELP = "write a period report: check results, nonconformities, statement of applicability"


FORMATS = ("html", "json", "md")  # the report's renderers; a test keeps them in step


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True)
    p.add_argument(
        "--period", required=True, help="UTC: YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD..YYYY-MM-DD"
    )
    p.add_argument("--model", help="one model's report (default: all models)")
    p.add_argument("--format", choices=FORMATS, default="html")
    p.add_argument(
        "--out", help="file to write (default: EVIDENCE_DIR/reports/PERIOD[-MODEL].FORMAT)"
    )
    p.add_argument(
        "--allow-unverified",
        action="store_true",
        help="write the report even if the evidence ledger does not verify, stamped UNVERIFIED",
    )


def run(args: argparse.Namespace) -> int:
    from aims_agent.errors import (
        LedgerTamperedError,
        PeriodError,
        ReportWriteError,
        StorageError,
    )
    from aims_agent.exporters.period import period_bounds
    from aims_agent.exporters.report import write_report

    try:
        period_bounds(args.period)
    except PeriodError as exc:
        print(exc, file=sys.stderr)
        return 2
    cfg, store = open_evidence(args.config, args.model)
    try:
        written = write_report(
            store,
            cfg,
            args.period,
            fmt=args.format,
            model=args.model,
            out=Path(args.out) if args.out else None,
            allow_unverified=args.allow_unverified,
        )
    except ReportWriteError as exc:
        print(f"{'--out' if args.out else 'error'}: {exc}", file=sys.stderr)
        return 2
    except (StorageError, LedgerTamperedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"{written.sha256}  {written.path}")
    return 0
