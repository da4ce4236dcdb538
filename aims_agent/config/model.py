"""A monitored model (schema, window, reference, checks, collectors, privacy) and the whole
config."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal, Self

from pydantic import ConfigDict, Field, model_validator

from aims_agent.config._base import EnvName, Strict, repeated, unique
from aims_agent.config.agent import AgentConfig
from aims_agent.config.checks import CheckConfig
from aims_agent.config.collectors import (
    GrpcProxyConfig,
    KServeLoggerConfig,
    LogTailConfig,
    ProxyConfig,
    TapConfig,
    TrustyAIConfig,
)
from aims_agent.config.identity import ConsoleSignInConfig


class SchemaConfig(Strict):
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    prediction: str = "prediction"
    prediction_type: Literal["categorical", "numeric"] = "categorical"
    score: str | None = None
    scores: dict[str, str] = Field(
        {},
        description="a multiclass classifier's probability per class: {class label: column}; "
        "records carry them as scores: {class label: probability}",
    )
    label: str | None = None
    sensitive: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _names(self) -> Self:
        if not self.numeric and not self.categorical:
            raise ValueError("numeric, categorical: at least one feature is required")
        if self.scores and self.score:
            raise ValueError("scores: a binary score or per-class scores, not both")
        if self.scores and len(self.scores) < 2:
            raise ValueError(f"scores: at least two classes, got {len(self.scores)}")
        if self.scores and self.prediction_type != "categorical":
            raise ValueError("scores: per-class scores need prediction_type categorical")
        names = [*self.numeric, *self.categorical, self.prediction, *self.sensitive]
        names += [n for n in (self.score, self.label) if n]
        unique("column names", [*names, *self.scores.values()])
        return self


class WindowConfig(Strict):
    """The records a check run looks at: a tumbling window (consecutive, disjoint spans) or a
    sliding one (the last span, advancing every step); a uniform sample of at most
    `max_sample` records either way."""

    kind: Literal["tumbling", "sliding"] = "tumbling"
    span_seconds: float = Field(3600.0, gt=0)
    step_seconds: float | None = Field(
        None, gt=0, description="sliding: how often the window advances; span / 12 by default"
    )
    max_sample: int = Field(100_000, gt=0, le=10_000_000)
    label_ttl_seconds: float | None = Field(
        7 * 86400.0, gt=0, description="labels later than this after the record are expired"
    )

    @model_validator(mode="after")
    def _step_divides_span(self) -> Self:
        if self.step_seconds is None:
            return self
        if self.kind != "sliding":
            raise ValueError("step_seconds: only for kind: sliding")
        panes = self.span_seconds / self.step_seconds
        if abs(panes - round(panes)) > 1e-9 or not 2 <= round(panes) <= 1000:
            raise ValueError(
                f"step_seconds: must divide span_seconds ({self.span_seconds:g}) into 2 to "
                f"1000 steps, got {self.step_seconds:g}"
            )
        if self.max_sample < round(panes):
            raise ValueError(f"max_sample: must be at least the {round(panes)} steps of a span")
        return self

    @property
    def step(self) -> float:
        return self.step_seconds or self.span_seconds / 12


class ReferenceConfig(Strict):
    path: Path
    format: Literal["auto", "csv", "parquet"] = "auto"


class PrivacyConfig(Strict):
    """Personal data: fields hashed with a keyed hash, or dropped, before anything is stored."""

    hash: tuple[str, ...] = Field(
        (), description="`id` and / or categorical columns stored as HMAC-SHA256 of their value"
    )
    drop: tuple[str, ...] = Field(
        (), description="top-level record fields accepted and discarded, never stored"
    )
    key_env: EnvName | None = Field(None, description="environment variable holding the hash key")

    @model_validator(mode="after")
    def _key_for_hash(self) -> Self:
        if self.hash and not self.key_env:
            raise ValueError("key_env: required when fields are hashed")
        return self


class ModelConfig(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    version: str = Field(min_length=1)
    ai_system_id: str = Field(min_length=1)
    reference: ReferenceConfig
    schema_: SchemaConfig = Field(alias="schema")
    window: WindowConfig = WindowConfig()
    checks: tuple[CheckConfig, ...] = Field(min_length=1)
    kserve_logger: KServeLoggerConfig | None = None
    log_tail: LogTailConfig | None = None
    proxy: ProxyConfig | None = None
    grpc_proxy: GrpcProxyConfig | None = None
    trustyai: TrustyAIConfig | None = None
    privacy: PrivacyConfig | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def checks_by_id(self) -> dict[str, CheckConfig]:
        return {c.id: c for c in self.checks}

    @model_validator(mode="after")
    def _privacy_fields(self) -> Self:
        if self.privacy is None:
            return self
        categorical = {*self.schema_.categorical, *self.schema_.sensitive}
        if self.schema_.prediction_type == "categorical":
            categorical |= {self.schema_.prediction, *(n for n in [self.schema_.label] if n)}
        bad = [n for n in self.privacy.hash if n != "id" and n not in categorical]
        if bad:
            raise ValueError(
                f"privacy.hash: only id and categorical columns can be hashed, not {', '.join(bad)}"
            )
        fields = {
            *("id", "features", "prediction", "timestamp"),
            *("score", "scores", "label", "attributes"),
        }
        clash = [n for n in self.privacy.drop if n in fields]
        if clash:
            raise ValueError(f"privacy.drop: record fields cannot be dropped: {', '.join(clash)}")
        return self

    @model_validator(mode="after")
    def _check_ids(self) -> Self:
        unique("checks: ids", [c.id for c in self.checks])
        return self


class ConsoleConfig(Strict):
    """The governance console (`aims-agent console`, or mounted at /console in the agent)."""

    enabled: bool = Field(False, description="serve the console at /console of the agent's port")
    freshness_hours: float = Field(
        24.0, gt=0, le=24 * 366, description="evidence of a control older than this is stale"
    )
    sign_in: ConsoleSignInConfig | None = Field(
        None,
        description="OpenID Connect sign-in; without it the console is read-only and answers "
        "loopback clients only",
    )


class Config(Strict):
    agent: AgentConfig
    models: tuple[ModelConfig, ...] = Field(min_length=1)
    console: ConsoleConfig = ConsoleConfig()
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _across_models(self) -> Self:
        unique("models: names", [m.name for m in self.models])
        keep = self.agent.retention.samples_days * 86400
        long = [m.name for m in self.models if m.window.span_seconds > keep]
        if long:
            raise ValueError(
                f"agent.retention.samples_days: shorter than the window of {', '.join(long)}"
            )
        unique(
            "models: trustyai.model_id",
            [m.trustyai.model_id or m.name for m in self.models if m.trustyai is not None],
        )
        http, grpc = self.taps("proxy"), self.taps("grpc_proxy")
        for section, taps in (("proxy", http), ("grpc_proxy", grpc)):
            for address, shared in taps.items():
                _shareable(section, address, shared)
        addresses = [a for a in [*http, *grpc] if " " not in a]  # port 0: any free port
        if self.agent.port:
            addresses.append(f"{self.agent.host}:{self.agent.port}")
        if taken := repeated(addresses):
            raise ValueError(f"proxy.port: listen address used twice: {', '.join(taken)}")
        return self

    def taps(self, section: Literal["proxy", "grpc_proxy"]) -> dict[str, list[ModelConfig]]:
        """Models by the `host:port` their tap of this kind listens on; port 0 (any free port)
        is a tap of its own per model."""
        out: dict[str, list[ModelConfig]] = {}
        for m in self.models:
            tap: TapConfig | None = getattr(m, section)
            if tap is not None:
                address = f"{tap.host}:{tap.port}" if tap.port else f"{tap.host}:0 {m.name}"
                out.setdefault(address, []).append(m)
        return out

    def model(self, name: str) -> ModelConfig:
        return next(m for m in self.models if m.name == name)

    @property
    def storage_url(self) -> str:
        return self.agent.storage_url or f"sqlite:///{self.agent.evidence_dir / 'aims.db'}"

    def fingerprint(self) -> str:
        """SHA-256 of the validated config; monitoring records carry it as the config hash."""
        body = self.model_dump_json(by_alias=True, exclude={"source"})
        return hashlib.sha256(body.encode()).hexdigest()


def route_key(tap: TapConfig, model: str) -> str:
    """What tells a model's calls apart on a shared tap port: its `inference_path` if set, else
    the model name the calls carry (`upstream_model`, by default the monitored model's name)."""
    path = getattr(tap, "inference_path", None)
    return path.rstrip("/") if path else tap.upstream_model or model


def _shareable(section: str, address: str, models: list[ModelConfig]) -> None:
    """Models sharing a tap agree on its listener and have routes of their own."""
    if len(models) < 2:
        return
    taps: list[TapConfig] = [getattr(m, section) for m in models]
    first = taps[0]
    names = ", ".join(m.name for m in models)
    for name in first.LISTENER:
        if len({repr(getattr(t, name)) for t in taps}) > 1:
            raise ValueError(
                f"{section}.{name}: models {names} share {address} and must agree on it"
            )
    for m, t in zip(models, taps, strict=True):
        if getattr(t, "protocol", "") in ("json", "mlflow") and not getattr(
            t, "inference_path", None
        ):
            raise ValueError(
                f"{section}.inference_path: model {m.name} shares {address}; its calls carry no "
                "model name, so its inference_path tells them apart"
            )
    unique(
        f"{section}: routes of the models sharing {address}",
        [route_key(t, m.name) for m, t in zip(models, taps, strict=True)],
    )
