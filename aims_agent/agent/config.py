"""The agent's config as pydantic models: one agent section and one or more monitored models.

A config is validated once, by `config_loader.load_config`; everything after that trusts it.
Relative paths (reference data, evidence directory) are resolved against the config file's
folder. Tokens are given as the names of environment variables, never inline.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

Scope = Literal["ingest", "read", "write"]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _env_name(v: str) -> str:
    if not _ENV_NAME.match(v):
        raise ValueError(f"must be an environment variable name, got {v!r}")
    return v


EnvName = Annotated[str, AfterValidator(_env_name)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenConfig(_Strict):
    name: str = Field(min_length=1)
    env: EnvName = Field(description="name of the environment variable holding the token")
    scopes: tuple[Scope, ...] = ("ingest", "read")


class SchedulerConfig(_Strict):
    coalesce: bool = True
    misfire_grace_seconds: float = Field(30.0, gt=0)
    max_instances: int = Field(1, ge=1)
    workers: int = Field(2, ge=1, le=64)


NcEvent = Literal["opened", "recurred", "escalated", "past_due", "closed", "rejected"]


class NotificationConfig(_Strict):
    """A receiver of governance events (nonconformity events), delivered through a durable
    outbox: at least once, in order, retried with backoff until the receiver takes them."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["webhook", "slack", "alertmanager"] = Field(
        description="webhook: JSON signed with HMAC-SHA256; slack: an incoming-webhook message; "
        "alertmanager: POST /api/v2/alerts of the given Alertmanager base URL"
    )
    url: str = Field(pattern=r"^https?://")
    secret_env: EnvName | None = Field(
        None, description="webhook: environment variable holding the HMAC key (required)"
    )
    events: tuple[NcEvent, ...] | None = Field(None, description="default: all")
    timeout_seconds: float = Field(10.0, gt=0)
    backoff_seconds: float = Field(1.0, gt=0, description="first retry delay; doubles each time")
    max_backoff_seconds: float = Field(300.0, gt=0)

    @model_validator(mode="after")
    def _webhook_signs(self) -> Self:
        if self.kind == "webhook" and self.secret_env is None:
            raise ValueError("secret_env: required for kind webhook (deliveries are signed)")
        return self


class RetentionConfig(_Strict):
    """How long data is kept: raw samples at most, evidence at least (EU AI Act Art. 19, 26(6))."""

    samples_days: float = Field(30.0, gt=0, description="sampled records are deleted after this")
    evidence_days: float = Field(
        183.0,
        ge=183.0,
        description="evidence and nonconformities are kept at least this long; the agent "
        "never deletes them",
    )


class LedgerConfig(_Strict):
    """The evidence ledger's optional Ed25519 signature of its head (`evidence head --sign`)."""

    signing_key_env: EnvName | None = Field(
        None,
        description="environment variable holding the Ed25519 private key: PEM (PKCS#8) or "
        "the raw 32-byte key as 64 hex digits",
    )


ReportFormat = Literal["html", "json", "md"]  # the keys of exporters.report.RENDERERS


class ReportsConfig(_Strict):
    """Period reports (clause 9.3.2 management-review input); `aims-agent report` any time."""

    monthly: bool = Field(
        True, description="on the 1st at 00:05 UTC, write last month's report of all models"
    )
    formats: tuple[ReportFormat, ...] = Field(("html", "json"), min_length=1)


class AgentConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    evidence_dir: Path = Path("aims-evidence")
    storage_url: str | None = Field(
        None,
        description="SQLAlchemy URL: SQLite or PostgreSQL; default: SQLite file under evidence_dir",
    )
    environment: str = "production"
    tokens: tuple[TokenConfig, ...] = Field(min_length=1)
    max_body_bytes: int = Field(16 * 1024 * 1024, gt=0)
    max_pending_writes: int = Field(
        256, ge=1, description="ingest answers 429 while this many writes wait for storage"
    )
    shutdown_timeout_seconds: float = Field(10.0, gt=0)
    durability: Literal["full", "normal"] = Field(
        "full",
        description="full: fsync before acknowledging; normal: survives a crash of the agent",
    )
    scheduler: SchedulerConfig = SchedulerConfig()
    notifications: tuple[NotificationConfig, ...] = ()
    retention: RetentionConfig = RetentionConfig()
    ledger: LedgerConfig = LedgerConfig()
    reports: ReportsConfig = ReportsConfig()

    @model_validator(mode="after")
    def _unique_targets(self) -> Self:
        _unique("notifications: names", [n.name for n in self.notifications])
        return self


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
        _unique("column names", names)
        return self


class WindowConfig(_Strict):
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


class ReferenceConfig(_Strict):
    path: Path
    format: Literal["auto", "csv", "parquet"] = "auto"


class ColumnTest(_Strict):
    test: str | None = None
    threshold: float | None = Field(None, gt=0)


class DecodeConfig(_Strict):
    """Where a model server's payloads hold the prediction and the score."""

    prediction: str | None = Field(None, description="output holding the prediction")
    score: str | None = Field(None, description="output holding the score")
    score_index: int | None = Field(None, ge=0, description="probability column used as score")
    input: str | None = Field(None, description="oip-v2: input tensor with positional features")
    id_field: str = Field("id", min_length=1, description="body field holding the request id")


class KServeLoggerConfig(DecodeConfig):
    """Receive KServe's InferenceService payload logger (CloudEvents, binary mode)."""

    protocol: Literal["oip-v2", "kserve-v1"] = "oip-v2"
    pair_timeout_seconds: float = Field(60.0, gt=0, description="wait for the other half")
    max_pending: int = Field(10_000, ge=1, description="halves waiting for their pair, at most")


class ProxyConfig(DecodeConfig):
    """A reverse-proxy tap in front of the model server: every request is forwarded and its
    response returned unchanged; a sample of the exchanges is decoded off the response path."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    upstream: str = Field(pattern=r"^https?://[^/?#]+/?$", description="http://host:port")
    protocol: Literal["auto", "oip-v2", "kserve-v1", "mlflow", "json"] = Field(
        "auto", description="auto: by the URL path of each request"
    )
    upstream_model: str | None = Field(
        None, description="oip-v2 / kserve-v1: decode only calls to this model name"
    )
    inference_path: str | None = Field(
        None, description="decode only this URL path (required for json)"
    )
    sample_rate: float = Field(1.0, ge=0, le=1, description="share of exchanges decoded")
    id_header: str = Field("X-Request-ID", min_length=1, pattern=r"^[A-Za-z0-9-]+$")
    connect_timeout_seconds: float = Field(5.0, gt=0)
    timeout_seconds: float = Field(60.0, gt=0, description="read and write timeout upstream")
    max_connections: int = Field(256, ge=1, description="pooled connections to the upstream")
    max_body_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="larger requests are refused with 413"
    )
    max_queued_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="exchanges waiting for decoding; beyond: dropped"
    )
    # plain JSON: dot-separated paths into the bodies (see collectors/protocols/plain_json.py)
    records_path: str | None = None
    features_path: str | None = None
    prediction_path: str | None = None
    score_path: str | None = None

    @model_validator(mode="after")
    def _json_needs_path(self) -> Self:
        if self.protocol == "json" and self.inference_path is None:
            raise ValueError("inference_path: required when protocol is json")
        return self


class LogTailConfig(_Strict):
    """Follow a JSONL prediction log whose lines are records as the push API takes them."""

    path: Path
    poll_seconds: float = Field(0.5, gt=0)
    fields: dict[str, str] = Field(
        {}, description="record field -> the log's key for it, e.g. {id: request_id}"
    )


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
    effectiveness_windows: int = Field(
        3, ge=1, description="passing runs in a row after a breach that evidence the fix"
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


class PrivacyConfig(_Strict):
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


class ModelConfig(_Strict):
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
        fields = {"id", "features", "prediction", "timestamp", "score", "label", "attributes"}
        clash = [n for n in self.privacy.drop if n in fields]
        if clash:
            raise ValueError(f"privacy.drop: record fields cannot be dropped: {', '.join(clash)}")
        return self

    @model_validator(mode="after")
    def _check_ids(self) -> Self:
        _unique("checks: ids", [c.id for c in self.checks])
        return self


class Config(_Strict):
    agent: AgentConfig
    models: tuple[ModelConfig, ...] = Field(min_length=1)
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _across_models(self) -> Self:
        _unique("models: names", [m.name for m in self.models])
        keep = self.agent.retention.samples_days * 86400
        long = [m.name for m in self.models if m.window.span_seconds > keep]
        if long:
            raise ValueError(
                f"agent.retention.samples_days: shorter than the window of {', '.join(long)}"
            )
        ports = [(m.proxy.host, m.proxy.port) for m in self.models if m.proxy and m.proxy.port]
        ports.append((self.agent.host, self.agent.port))
        taken = _repeated([f"{h}:{p}" for h, p in ports if p])
        if taken:
            raise ValueError(f"proxy.port: listen address used twice: {', '.join(taken)}")
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


def _repeated(values: list[str]) -> list[str]:
    return sorted({v for v in values if values.count(v) > 1})


def _unique(what: str, values: list[str]) -> None:
    """ValueError `<what> must be unique, repeated: a, b` if any value comes twice."""
    if dupes := _repeated(values):
        raise ValueError(f"{what} must be unique, repeated: {', '.join(dupes)}")
