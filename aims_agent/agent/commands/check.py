"""`aims-agent check`: run a model's checks once on a file, for CI pipelines and audits.

The evidence is written exactly as the daemon writes it (monitoring records, nonconformities)
unless `--dry-run`; the exit code is 1 when any check breaches, so a pipeline can stop on it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aims_agent.agent.oneshot import Outcome

NAME = "check"
HELP = "run a model's checks once on a file; exit 1 on a breach"
EXIT_OK, EXIT_BREACH = 0, 1


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True)
    p.add_argument("--model", help="the model to check (default: the config's only model)")
    p.add_argument("--current", required=True, help="CSV or Parquet with the schema's columns")
    p.add_argument("--reference", help="override the config's reference file")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--dry-run", action="store_true", help="print the results, store nothing")
    p.add_argument(
        "--report",
        action="store_true",
        help="attach Evidently's HTML drift report to each drift check's record",
    )


def _reuse_freed_memory() -> None:
    """Keep freed memory in the process for reuse. glibc hands blocks freed above a few MB
    back to the system at once, so each column's temporary arrays are mapped and zeroed
    afresh (page faults: half the drift check's time at 100k rows); this process exits
    soon after anyway. Nothing changes off glibc."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no C library by that name, or not glibc's
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    mallopt(m_trim_threshold, 1 << 30)
    mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest: blocks above it still mmap


def run(args: argparse.Namespace) -> int:
    if "numpy" not in sys.modules:  # one BLAS thread, set before numpy loads: free here
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if sys.platform == "linux":
        _reuse_freed_memory()
    from aims_agent.agent.oneshot import run_checks
    from aims_agent.errors import AimsError

    if args.report and args.dry_run:
        raise AimsError("--report: a report is attached to stored evidence; not with --dry-run")
    outcomes = run_checks(
        args.config,
        args.current,
        model=args.model,
        reference=args.reference,
        write=not args.dry_run,
        report=args.report,
        cache_reference=True,
    )
    if args.format == "json":
        print(json.dumps([o.record for o in outcomes], indent=2))
    else:
        print(table(outcomes, stored=not args.dry_run))
    breached = any(o.run.verdict == "breach" and not o.run.error for o in outcomes)
    return EXIT_BREACH if breached else EXIT_OK


def _fmt(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4g}"


def table(outcomes: list[Outcome], *, stored: bool = True) -> str:
    lines = [
        f"{'check':<24} {'verdict':<18} {'metric':<28} {'feature':<20} {'value':>10} "
        f"{'breach at':>12}"
    ]
    for o in outcomes:
        run = o.run
        lines.append(
            f"{run.check_id:<24} {run.verdict.upper():<18}"
            + (f" error: {run.error}" if run.error else "")
        )
        for a in run.assessments:
            m = a.measurement
            t = m.threshold
            bound = (
                "-"
                if t is None
                else (
                    ("<" if t.direction == "below" else ">")
                    + ("=" if t.inclusive else "")
                    + _fmt(t.breach)
                )
            )
            lines.append(
                f"  {'':<22} {a.verdict:<18} {m.metric:<28} {m.feature or '':<20} "
                f"{_fmt(m.value):>10} {bound:>12}"
            )
        if stored:
            lines.append(
                f"  evidence: {o.record['record_id']}"
                + (f", nonconformity {o.nonconformity_id}" if o.nonconformity_id else "")
            )
    if not stored:
        lines.append("(dry run: nothing stored)")
    return "\n".join(lines)
