"""Sub-commands of `aims-agent` beyond the daemon's own, one module each.

A module here is a command: it defines `NAME`, `HELP`, `arguments(parser)` and
`run(args) -> int` (exit code), and imports what it needs inside `run`, so that `aims-agent`
starts fast whatever the command.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def discover() -> dict[str, Command]:
    """The commands of this package, by name."""
    out = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        out[module.NAME] = Command(module.NAME, module.HELP, module.arguments, module.run)
    return out
