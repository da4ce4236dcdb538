"""`aims-agent export oscal`: a period's evidence as an OSCAL assessment-results document.

Reads the evidence store the config names (committed evidence only, so the agent may keep
running), writes the document atomically and prints its SHA-256 and path as `sha256sum` does,
so `sha256sum -c` can check the file later.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import uuid
from pathlib import Path

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


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync it, and rename it over `path`:
    a reader sees the old file or the new one, never a part."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def run(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url

    from aims_agent.agent.config_loader import load_config
    from aims_agent.errors import StorageError
    from aims_agent.exporters.oscal import assessment_results, parse_period
    from aims_agent.storage.store import Store

    try:
        start, end = parse_period(args.period)
    except ValueError as exc:
        print(f"--period: {exc}", file=sys.stderr)
        return 2
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
        doc = store.read(lambda conn: assessment_results(conn, cfg, start, end, args.model))
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    data = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()
    suffix = f"-{args.model}" if args.model else ""
    out = Path(args.out or f"aims-assessment-results-{args.period.strip()}{suffix}.json")
    try:
        write_atomic(out, data)
    except OSError as exc:
        print(f"--out: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"{hashlib.sha256(data).hexdigest()}  {out}")
    return 0
