"""`aims-agent soa`: the statement of applicability view, as JSON on stdout.

For each model (or one), every ISO/IEC 42001 Annex A control: whether the agent evidences it
(from the control mapping of the model's checks), why, by which checks, and the date and
verdict of the latest evidence. Reads committed evidence only; the agent may keep running.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NAME = "soa"
HELP = "statement of applicability: Annex A controls the agent evidences per model (JSON)"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True)
    p.add_argument("--model", help="one model (default: all models)")


def run(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url

    from aims_agent.agent.config_loader import load_config
    from aims_agent.errors import StorageError
    from aims_agent.exporters.soa import build_soa
    from aims_agent.storage.store import Store

    cfg = load_config(Path(args.config))
    names = sorted(m.name for m in cfg.models)
    if args.model is not None and args.model not in names:
        print(f"--model: unknown model {args.model!r}; known: {', '.join(names)}", file=sys.stderr)
        return 2
    url = make_url(cfg.storage_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        print(f"--config: no evidence store at {url.database}", file=sys.stderr)
        return 2
    store = Store(cfg.storage_url)
    try:
        doc = store.read(lambda conn: build_soa(conn, cfg, args.model))
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(json.dumps(doc, indent=2, ensure_ascii=False))
    return 0
