"""Everything a config must pass before the agent starts on it: the one path that `validate`,
`run` and `check` share, so a config that `validate` accepts starts.

The config loader validates the file on its own (types, bounds, paths, controls); here each
check kind adds what it needs of its settings (`checks.config_problems`).
"""

from __future__ import annotations

from pathlib import Path

from aims_agent.checks.base import config_problems
from aims_agent.config import Config, load_config
from aims_agent.errors import ConfigError


def problems(cfg: Config) -> list[str]:
    """Every problem of a loaded config, each with its YAML path."""
    found: list[str] = []
    for i, model in enumerate(cfg.models):
        for j, check in enumerate(model.checks):
            found += config_problems(f"models[{i}].checks[{j}]", check, model.schema_)
    return found


def load(path: Path) -> Config:
    """Read, validate and preflight a config file; ConfigError lists every problem."""
    cfg = load_config(path)
    if found := problems(cfg):
        raise ConfigError(found)
    return cfg
