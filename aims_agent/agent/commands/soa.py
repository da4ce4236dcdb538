"""`aims-agent soa`: the statement of applicability view, as JSON on stdout.

For each model (or one), every ISO/IEC 42001 Annex A control: whether the agent evidences it
(from the control mapping of the model's checks), why, by which checks, and the date and
verdict of the latest evidence. Reads committed evidence only; the agent may keep running.
"""

from __future__ import annotations

import argparse
import json
import sys

from aims_agent.agent.commands import open_evidence

NAME = "soa"
HELP = "statement of applicability: Annex A controls the agent evidences per model (JSON)"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True)
    p.add_argument("--model", help="one model (default: all models)")
    p.add_argument(
        "--allow-unverified",
        action="store_true",
        help="show it even if the evidence ledger does not verify, stamped UNVERIFIED",
    )


def run(args: argparse.Namespace) -> int:
    from aims_agent.errors import LedgerTamperedError, StorageError
    from aims_agent.exporters.ledger_check import check_store, stamp_json
    from aims_agent.exporters.soa import build_soa

    cfg, store = open_evidence(args.config, args.model)
    try:
        state = check_store(
            store, evidence_dir=cfg.agent.evidence_dir, allow_unverified=args.allow_unverified
        )
        doc = stamp_json(store.read(lambda conn: build_soa(conn, cfg, args.model)), state)
    except (StorageError, LedgerTamperedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(json.dumps(doc, indent=2, ensure_ascii=False))
    return 0
