"""Everything a config must pass before the agent starts on it: the one path that `validate`,
`run` and `check` share, so a config that `validate` accepts starts.

The config loader validates the file on its own (encoding, types, finite and bounded numbers,
paths, controls); here each check kind adds what it needs of its settings
(`checks.config_problems`), every model's reference is read as `run` reads it (columns and
types), and, for the daemon, the token variables and Evidently are checked in the environment
it starts in.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path

from aims_agent.agent.reference import load_references
from aims_agent.checks.base import config_problems
from aims_agent.config import Config, DriftCheckConfig, load_config
from aims_agent.errors import ConfigError, ReferenceDataError


def problems(cfg: Config) -> list[str]:
    """Every problem of a loaded config's check settings, each with its YAML path."""
    found: list[str] = []
    for i, model in enumerate(cfg.models):
        for j, check in enumerate(model.checks):
            found += config_problems(f"models[{i}].checks[{j}]", check, model.schema_)
    return found


def token_problems(cfg: Config, environ: Mapping[str, str]) -> list[str]:
    """Each token's variable set, no variable named twice and no two variables holding the same
    value (either would give one token's requests the other's scopes). Values are never shown."""
    found: list[str] = []
    first_env: dict[str, int] = {}
    first_value: dict[str, int] = {}
    for i, tok in enumerate(cfg.agent.tokens):
        where = f"agent.tokens[{i}].env"
        if tok.env in first_env:
            found.append(f"{where}: {tok.env} is already agent.tokens[{first_env[tok.env]}].env")
            continue
        first_env[tok.env] = i
        value = environ.get(tok.env, "")
        if not value:
            found.append(f"{where}: environment variable {tok.env} is not set")
        elif value in first_value:
            other = cfg.agent.tokens[first_value[value]].env
            found.append(f"{where}: {tok.env} holds the same value as {other}")
        else:
            first_value[value] = i
    return found


MIN_SESSION_SECRET = 32  # characters of the key that signs the console's session cookies


def console_problems(cfg: Config, environ: Mapping[str, str]) -> list[str]:
    """The console's sign-in secrets, set in the environment (values never shown)."""
    auth = cfg.console.sign_in
    if auth is None:
        return []
    found = []
    secret = environ.get(auth.session_secret_env, "")
    if len(secret) < MIN_SESSION_SECRET:
        state = "is not set" if not secret else f"holds fewer than {MIN_SESSION_SECRET} characters"
        found.append(
            f"console.sign_in.session_secret_env: environment variable {auth.session_secret_env} "
            f"{state} (the key that signs session cookies: at least {MIN_SESSION_SECRET})"
        )
    if auth.client_secret_env is not None and not environ.get(auth.client_secret_env):
        found.append(
            f"console.sign_in.client_secret_env: environment variable {auth.client_secret_env} "
            "is not set"
        )
    return found


def daemon_problems(cfg: Config, environ: Mapping[str, str]) -> list[str]:
    """What only the daemon needs: its tokens, the console's secrets if it serves the console,
    and Evidently where a breach renders a report."""
    found = token_problems(cfg, environ)
    if cfg.console.enabled:
        found += console_problems(cfg, environ)
    if importlib.util.find_spec("evidently") is None:
        for i, model in enumerate(cfg.models):
            for j, check in enumerate(model.checks):
                if isinstance(check, DriftCheckConfig) and check.report_on_breach:
                    found.append(
                        f"models[{i}].checks[{j}].report_on_breach: Evidently is not installed "
                        "(pip install 'aims-agent[reports]'), or set it to false"
                    )
    return found


def reference_problems(cfg: Config) -> list[str]:
    """Every model's reference read as the agent reads it at start (in a child process)."""
    try:
        load_references(cfg.models)
    except ReferenceDataError as exc:
        message = str(exc)
        for i, model in enumerate(cfg.models):
            if message.startswith(f"{model.reference.path}:"):
                return [f"models[{i}].reference.path: {message}"]
        return [message]
    return []


def load(
    path: Path, environ: Mapping[str, str] | None = None, *, references: bool = True
) -> Config:
    """Read, validate and preflight a config file; ConfigError lists every problem. `environ`:
    the environment the daemon starts in (`validate`, `run`); `references=False` when the
    caller reads them next anyway."""
    cfg = load_config(path)
    found = problems(cfg)
    if environ is not None:
        found += daemon_problems(cfg, environ)
    if references and not found:
        found += reference_problems(cfg)
    if found:
        raise ConfigError(found)
    return cfg
