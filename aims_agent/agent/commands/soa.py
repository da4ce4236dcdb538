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


def run(args: argparse.Namespace) -> int:
    from aims_agent.errors import StorageError
    from aims_agent.exporters.soa import build_soa

    cfg, store = open_evidence(args.config, args.model)
    try:
        doc = store.read(lambda conn: build_soa(conn, cfg, args.model))
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(json.dumps(doc, indent=2, ensure_ascii=False))
    return 0
