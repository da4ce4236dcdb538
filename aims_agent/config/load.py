"""Loading a config file: YAML, validation, and problems reported with their YAML paths.

`load_config` is the only way a config enters the agent; every problem is collected and
reported at once (`models[0].checks[1].threshold: must be > 0, got -1`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from aims_agent.config.model import Config
from aims_agent.controls import controls_by_id
from aims_agent.errors import ConfigError


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {
            "drift",
            "data_quality",
            "performance",
            "fairness",
            "intended_use",
        }:  # union tags
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


_MESSAGES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "too_short": "must have at least {min_length} item(s)",
    "string_too_short": "must not be empty",
    "finite_number": "must be a finite number",
}
# the longest duration any `*_seconds` setting may have: ten years (a schedule of 1e12 seconds
# would overflow the scheduler's date arithmetic when the agent starts)
MAX_SECONDS = 10 * 365 * 86_400


def _durations(value: Any, path: str) -> list[str]:
    """`path: must be <= ...` for every `*_seconds` setting beyond MAX_SECONDS."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            child = getattr(value, name)
            where = f"{path}.{name}" if path else name
            if name.endswith("_seconds") and isinstance(child, int | float):
                if child > MAX_SECONDS:
                    found.append(f"{where}: must be <= {MAX_SECONDS} (ten years), got {child:g}")
            else:
                found += _durations(child, where)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found += _durations(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += _durations(item, f"{path}.{key}")
    return found


def _fmt(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _problem(err: Any) -> str:
    loc = _path(tuple(err["loc"]))
    template = _MESSAGES.get(err["type"])
    if template is not None:
        msg = template.format(**{k: _fmt(v) for k, v in err.get("ctx", {}).items()})
    else:
        msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] not in {"missing", "extra_forbidden", "value_error"} and "input" in err:
        shown = err["input"]
        if not isinstance(shown, dict | list):
            msg += f", got {shown!r}" if isinstance(shown, str) else f", got {shown}"
    # model-level validators report "field: message" themselves; join it onto the location
    if ": " in msg and err["type"] == "value_error" and not msg.startswith("must"):
        head, _, rest = msg.partition(": ")
        if " " not in head.strip():
            return f"{loc}.{head}: {rest}" if loc else f"{head}: {rest}"
    return f"{loc}: {msg}" if loc else msg


def _semantic_problems(cfg: Config) -> list[str]:
    """Checks that need the whole config or the disk: control ids and reference files. What a
    check kind needs of its settings is for the check itself to say (`checks.problems`)."""
    problems: list[str] = _durations(cfg, "")
    known = controls_by_id()
    for i, model in enumerate(cfg.models):
        if not model.reference.path.is_file():
            problems.append(f"models[{i}].reference.path: file not found: {model.reference.path}")
        for j, check in enumerate(model.checks):
            for control in check.controls or ():
                if control not in known:
                    problems.append(
                        f"models[{i}].checks[{j}].controls: "
                        f"unknown ISO/IEC 42001 control {control!r}"
                    )
    return problems


def parse_config(data: object, *, base_dir: Path) -> Config:
    """Validate a config mapping; raise ConfigError listing every problem with its YAML path."""
    if not isinstance(data, dict):
        raise ConfigError([f"config must be a mapping, got {type(data).__name__}"])
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # a failing item also makes pydantic call its list too short: report only the item
        deeper = [tuple(e["loc"]) for e in errors]
        errors = [
            e
            for e in errors
            if not (
                e["type"] == "too_short"
                and any(
                    len(d) > len(e["loc"]) and d[: len(e["loc"])] == tuple(e["loc"]) for d in deeper
                )
            )
        ]
        raise ConfigError([_problem(e) for e in errors]) from exc
    cfg = _resolve_paths(cfg, base_dir)
    problems = _semantic_problems(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def _resolve_paths(cfg: Config, base: Path) -> Config:
    def resolve(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    agent = cfg.agent.model_copy(update={"evidence_dir": resolve(cfg.agent.evidence_dir)})

    def resolve_model(m: Any) -> Any:
        update: dict[str, Any] = {
            "reference": m.reference.model_copy(update={"path": resolve(m.reference.path)})
        }
        if m.log_tail is not None:
            update["log_tail"] = m.log_tail.model_copy(update={"path": resolve(m.log_tail.path)})
        return m.model_copy(update=update)

    models = tuple(resolve_model(m) for m in cfg.models)
    return cfg.model_copy(update={"agent": agent, "models": models})


def load_config(path: Path) -> Config:
    """Read and validate a YAML config file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        byte = exc.object[exc.start]
        raise ConfigError(
            [f"{path}: line {line}: not UTF-8 text (byte 0x{byte:02x}); save it as UTF-8"]
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from exc
    cfg = parse_config(data, base_dir=path.parent.resolve())
    return cfg.model_copy(update={"source": path.resolve()})
