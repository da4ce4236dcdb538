"""The `aims-agent` command. Exit codes: 0 fine, 1 a check breached, 2 bad input or config."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from aims_agent import __version__
from aims_agent.agent import logs
from aims_agent.agent.commands import discover
from aims_agent.errors import AimsError, ConfigError

EXIT_OK, EXIT_USAGE = 0, 2


def cmd_validate(args: argparse.Namespace) -> int:
    from aims_agent.agent.preflight import load as load_config

    cfg = load_config(Path(args.file), os.environ)
    from aims_agent.exporters.ledger_signing import configured_key

    if configured_key(cfg.agent.ledger, os.environ) is None and cfg.agent.environment in (
        "production",
        "prod",
    ):
        print(
            f"{args.file}: warning: agent.ledger: environment {cfg.agent.environment} without a "
            "signing key: the evidence ledger's head is not signed, so a rewrite of the whole "
            "store cannot be told (aims-agent keygen, then agent.ledger.signing_key_file)",
            file=sys.stderr,
        )
    print(f"{args.file}: valid")
    print(f"  listen {cfg.agent.host}:{cfg.agent.port}, evidence in {cfg.agent.evidence_dir}")
    print(f"  storage {cfg.storage_url.split('@')[-1]}")
    for m in cfg.models:
        feats = len(m.schema_.numeric) + len(m.schema_.categorical)
        print(
            f"  model {m.name} {m.version} ({m.ai_system_id}): {feats} features, "
            f"window {m.window.span_seconds:g}s / {m.window.max_sample} records"
        )
        for c in m.checks:
            print(f"    check {c.id} ({c.kind}) every {c.schedule_seconds:g}s")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from aims_agent.agent.preflight import load as load_config
    from aims_agent.agent.server import serve

    logs.setup(args.log_level, args.log_format)
    cfg = load_config(Path(args.config), os.environ)
    serve(cfg, os.environ, announce=lambda line: print(line, flush=True))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from aims_agent.agent.demo import run_demo

    return run_demo(
        duration=args.duration, evidence_dir=Path(args.evidence_dir), rate=args.rate, seed=args.seed
    )


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": cmd_validate,
    "run": cmd_run,
    "demo": cmd_demo,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aims-agent", description=__doc__)
    p.add_argument("--version", action="version", version=f"aims-agent {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="check a config file and print what it sets up")
    v.add_argument("file")
    r = sub.add_parser("run", help="run the agent daemon")
    r.add_argument("--config", required=True)
    r.add_argument("--log-level", default="info", choices=logs.LEVELS)
    r.add_argument(
        "--log-format",
        default="text",
        choices=list(logs.FORMATS),
        help="text: readable lines; json: one JSON object per line (for log pipelines)",
    )
    d = sub.add_parser("demo", help="train a model, monitor it live, inject drift, show evidence")
    d.add_argument("--duration", type=float, default=60.0, help="seconds of traffic (>= 20)")
    d.add_argument("--evidence-dir", default="aims-demo-evidence")
    d.add_argument("--rate", type=int, default=400, help="records per second")
    d.add_argument("--seed", type=int, default=7)
    for command in discover().values():
        command.arguments(sub.add_parser(command.name, help=command.help))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    run = COMMANDS.get(args.command) or discover()[args.command].run
    try:
        return run(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    except AimsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
