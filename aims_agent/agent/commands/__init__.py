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
from typing import TYPE_CHECKING

from aims_agent.errors import AimsError

if TYPE_CHECKING:
    from aims_agent.config import Config
    from aims_agent.storage.store import Store


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


def open_evidence(config: str, model: str | None = None) -> tuple[Config, Store]:
    """The config and its evidence store, for the commands that read evidence. AimsError (exit
    2) names `--model` when the model is unknown, and `agent.storage_url` when a SQLite store
    does not exist, since opening it would create an empty one. Close the store after use."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    from aims_agent.agent.preflight import load as load_config
    from aims_agent.storage.store import Store

    cfg = load_config(Path(config), references=False)  # evidence is read, not checks run
    names = sorted(m.name for m in cfg.models)
    if model is not None and model not in names:
        raise AimsError(f"--model: unknown model {model!r}; known: {', '.join(names)}")
    url = make_url(cfg.storage_url)
    db = url.database if url.get_backend_name() == "sqlite" else None
    if db and db != ":memory:" and not Path(db).is_file():
        raise AimsError(f"agent.storage_url: no evidence database at {db}")
    return cfg, Store(cfg.storage_url)
