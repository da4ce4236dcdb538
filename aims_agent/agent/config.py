"""The agent's YAML config: pydantic models, loading, and errors that name the YAML path.

A config is validated once at load; everything after that trusts it. Relative paths (reference
data, evidence directory) are resolved against the config file's folder. Tokens are given as
the names of environment variables, never inline.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from aims_agent.errors import ConfigError

Scope = Literal["ingest", "read", "write"]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenConfig(_Strict):
    name: str = Field(min_length=1)
    env: str = Field(description="name of the environment variable holding the token")
    scopes: tuple[Scope, ...] = ("ingest", "read")

    @field_validator("env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if not _ENV_NAME.match(v):
            raise ValueError(f"must be an environment variable name, got {v!r}")
        return v


class SchedulerConfig(_Strict):
    coalesce: bool = True
    misfire_grace_seconds: float = Field(30.0, gt=0)
    max_instances: int = Field(1, ge=1)
    workers: int = Field(2, ge=1, le=64)


class AgentConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    evidence_dir: Path = Path("aims-evidence")
    storage_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file under evidence_dir"
    )
    environment: str = "production"
    tokens: tuple[TokenConfig, ...] = Field(min_length=1)
    max_body_bytes: int = Field(16 * 1024 * 1024, gt=0)
    shutdown_timeout_seconds: float = Field(10.0, gt=0)
    durability: Literal["full", "normal"] = Field(
        "full",
        description="full: fsync before acknowledging; normal: survives a crash of the agent",
    )
    scheduler: SchedulerConfig = SchedulerConfig()


class SchemaConfig(_Strict):
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    prediction: str = "prediction"
    prediction_type: Literal["categorical", "numeric"] = "categorical"
    score: str | None = None
    label: str | None = None
    sensitive: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _names(self) -> Self:
        if not self.numeric and not self.categorical:
            raise ValueError("numeric, categorical: at least one feature is required")
        names = [*self.numeric, *self.categorical, self.prediction, *self.sensitive]
        names += [n for n in (self.score, self.label) if n]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"column names must be unique, repeated: {', '.join(dupes)}")
        return self


class WindowConfig(_Strict):
    span_seconds: float = Field(3600.0, gt=0)
    max_sample: int = Field(100_000, gt=0, le=10_000_000)
    label_ttl_seconds: float | None = Field(
        7 * 86400.0, gt=0, description="labels later than this after the record are expired"
    )


class ReferenceConfig(_Strict):
    path: Path
    format: Literal["auto", "csv", "parquet"] = "auto"


class ColumnTest(_Strict):
    test: str | None = None
    threshold: float | None = Field(None, gt=0)


class _CheckBase(_Strict):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    schedule_seconds: float = Field(60.0, gt=0)
    min_samples: int = Field(30, ge=1)
    severity: Literal["major", "minor", "observation"] = "minor"
    consecutive_breaches: int = Field(
        1, ge=1, description="breaching runs in a row before a nonconformity opens"
    )
    controls: tuple[str, ...] | None = Field(
        None, description="Annex A control ids; default from the control mapping"
    )


class DriftCheckConfig(_CheckBase):
    """Drift of each column against the reference; breaches on the share of drifted features."""

    kind: Literal["drift"] = "drift"
    threshold: float = Field(0.5, gt=0, le=1, description="share of drifted features that breaches")
    warn: float | None = Field(None, gt=0, le=1)
    include_prediction: bool = True
    columns: dict[str, ColumnTest] = {}
    multiple_testing: Literal["none", "bonferroni", "benjamini-hochberg"] = Field(
        "none", description="correction across the p-value tests of one run"
    )
    report_on_breach: bool = Field(
        True, description="attach Evidently's HTML report when a breach opens a nonconformity"
    )

    @model_validator(mode="after")
    def _warn_below(self) -> Self:
        if self.warn is not None and self.warn >= self.threshold:
            raise ValueError(f"warn: must be < threshold ({self.threshold}), got {self.warn}")
        return self


class Limit(_Strict):
    """Bounds on one metric: breach outside [min, max], warn inside the warn band before it.

    With `relative: true` the bounds are relative changes against the reference's own value of
    the metric (`min: -0.05` breaches when accuracy falls more than 5 % below the reference's).
    """

    min: float | None = None
    max: float | None = None
    warn_margin: float | None = Field(None, gt=0, description="warn this close to a bound")
    relative: bool = False

    @model_validator(mode="after")
    def _some_bound(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError("min, max: at least one bound is required")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min: must be <= max ({self.max}), got {self.min}")
        return self


class QualityCheckConfig(_CheckBase):
    """Per-feature data quality: missing values, values out of range, unseen categories."""

    kind: Literal["data_quality"] = "data_quality"
    max_missing_share: float = Field(0.1, ge=0, le=1)
    max_out_of_range_share: float = Field(0.05, ge=0, le=1)
    max_unseen_category_share: float = Field(0.05, ge=0, le=1)
    max_rejected_share: float = Field(0.01, ge=0, le=1, description="records refused by ingest")
    warn_fraction: float = Field(0.8, gt=0, le=1, description="warn at this fraction of a max")
    bounds: dict[str, Limit] = Field(
        {}, description="configured value ranges per feature; default: the reference's min and max"
    )


class PerformanceCheckConfig(_CheckBase):
    """Model performance on the window's labelled records."""

    kind: Literal["performance"] = "performance"
    task: Literal["classification", "regression"] = "classification"
    positive_label: str = "1"
    metrics: dict[str, Limit] = Field(min_length=1)


class FairnessCheckConfig(_CheckBase):
    """Group fairness of predictions (and of errors, where labels are known)."""

    kind: Literal["fairness"] = "fairness"
    sensitive: tuple[str, ...] | None = Field(None, description="default: the schema's")
    positive_label: str = "1"
    min_group_size: int = Field(30, ge=1)
    metrics: dict[str, Limit] = Field(
        default_factory=lambda: {
            "demographic_parity_ratio": Limit(min=0.8),  # the four-fifths rule
            "equalized_odds_difference": Limit(max=0.1),
        },
        min_length=1,
    )


CheckConfig = Annotated[
    DriftCheckConfig | QualityCheckConfig | PerformanceCheckConfig | FairnessCheckConfig,
    Field(discriminator="kind"),
]


class ModelConfig(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    version: str = Field(min_length=1)
    ai_system_id: str = Field(min_length=1)
    reference: ReferenceConfig
    schema_: SchemaConfig = Field(alias="schema")
    window: WindowConfig = WindowConfig()
    checks: tuple[CheckConfig, ...] = Field(min_length=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def checks_by_id(self) -> dict[str, CheckConfig]:
        return {c.id: c for c in self.checks}

    @model_validator(mode="after")
    def _check_ids(self) -> Self:
        ids = [c.id for c in self.checks]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"checks: ids must be unique, repeated: {', '.join(dupes)}")
        return self


class Config(_Strict):
    agent: AgentConfig
    models: tuple[ModelConfig, ...] = Field(min_length=1)
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _unique_models(self) -> Self:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"models: names must be unique, repeated: {', '.join(dupes)}")
        return self

    def model(self, name: str) -> ModelConfig:
        return next(m for m in self.models if m.name == name)

    @property
    def storage_url(self) -> str:
        return self.agent.storage_url or f"sqlite:///{self.agent.evidence_dir / 'aims.db'}"

    def fingerprint(self) -> str:
        """SHA-256 of the validated config; monitoring records carry it as the config hash."""
        body = self.model_dump_json(by_alias=True, exclude={"source"})
        return hashlib.sha256(body.encode()).hexdigest()


@cache
def annex_a_ids() -> frozenset[str]:
    text = resources.files("aims_agent.configs").joinpath("iso42001_annex_a.json").read_text()
    data = json.loads(text)
    ids = {c["id"] for c in data["annex_a_controls"]} | {c["id"] for c in data["clauses"]}
    return frozenset(ids)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"drift", "data_quality", "performance", "fairness"}:  # union tags
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
}


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
    """Checks that need the whole config or the disk: control ids, column names, reference files."""
    problems: list[str] = []
    known = annex_a_ids()
    for i, model in enumerate(cfg.models):
        s = model.schema_
        columns = {*s.numeric, *s.categorical, s.prediction, *s.sensitive}
        columns |= {n for n in (s.score, s.label) if n}
        if not model.reference.path.is_file():
            problems.append(f"models[{i}].reference.path: file not found: {model.reference.path}")
        for j, check in enumerate(model.checks):
            for control in check.controls or ():
                if control not in known:
                    problems.append(
                        f"models[{i}].checks[{j}].controls: "
                        f"unknown ISO/IEC 42001 control {control!r}"
                    )
            where = f"models[{i}].checks[{j}]"
            problems += _KIND_PROBLEMS[check.kind](where, check, s, columns)
    return problems


def _drift_problems(where: str, check: Any, s: SchemaConfig, columns: set[str]) -> list[str]:
    return [
        f"{where}.columns.{c}: not a column of the schema"
        for c in check.columns
        if c not in columns
    ]


def _quality_problems(where: str, check: Any, s: SchemaConfig, columns: set[str]) -> list[str]:
    return [
        f"{where}.bounds.{c}: not a numeric feature of the schema"
        for c in check.bounds
        if c not in s.numeric
    ]


def _metric_problems(where: str, names: Any, known: Any) -> list[str]:
    return [
        f"{where}.metrics.{m}: unknown metric; known: {', '.join(sorted(known))}"
        for m in names
        if m not in known
    ]


def _performance_problems(where: str, check: Any, s: SchemaConfig, columns: set[str]) -> list[str]:
    from aims_agent.checks.performance import METRICS, NEEDS_SCORE

    problems = _metric_problems(where, check.metrics, METRICS[check.task])
    if not s.label:
        problems.append(f"{where}: a performance check needs schema.label")
    if not s.score:
        problems += [
            f"{where}.metrics.{m}: needs schema.score" for m in check.metrics if m in NEEDS_SCORE
        ]
    return problems


def _fairness_problems(where: str, check: Any, s: SchemaConfig, columns: set[str]) -> list[str]:
    from aims_agent.checks.fairness import METRICS, NEEDS_LABEL

    problems = _metric_problems(where, check.metrics, METRICS)
    if not s.label:
        problems += [
            f"{where}.metrics.{m}: needs schema.label" for m in check.metrics if m in NEEDS_LABEL
        ]
    attrs = check.sensitive if check.sensitive is not None else s.sensitive
    if not attrs:
        problems.append(f"{where}.sensitive: no sensitive attribute (set schema.sensitive)")
    problems += [
        f"{where}.sensitive.{a}: not in schema.sensitive" for a in attrs if a not in s.sensitive
    ]
    return problems


_KIND_PROBLEMS = {
    "drift": _drift_problems,
    "data_quality": _quality_problems,
    "performance": _performance_problems,
    "fairness": _fairness_problems,
}


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
    models = tuple(
        m.model_copy(
            update={"reference": m.reference.model_copy(update={"path": resolve(m.reference.path)})}
        )
        for m in cfg.models
    )
    return cfg.model_copy(update={"agent": agent, "models": models})


def load_config(path: Path) -> Config:
    """Read and validate a YAML config file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from exc
    cfg = parse_config(data, base_dir=path.parent.resolve())
    return cfg.model_copy(update={"source": path.resolve()})
