"""The agent section: listening, storage, tokens, scheduling, notifications, retention, ledger
and reports."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator

from aims_agent.config._base import EnvName, Strict, unique
from aims_agent.config.identity import OidcConfig, Scope, SegregationConfig


class TokenConfig(Strict):
    name: str = Field(min_length=1, max_length=128)
    env: EnvName = Field(description="name of the environment variable holding the token")
    scopes: tuple[Scope, ...] = ("ingest", "read")
    kind: Literal["machine", "person"] = Field(
        "machine", description="person: the token is one named person's (the actor is a person)"
    )
    email: str | None = Field(None, description="the person's email, for kind person")


class SchedulerConfig(Strict):
    coalesce: bool = True
    misfire_grace_seconds: float = Field(30.0, gt=0)
    max_instances: int = Field(1, ge=1)
    workers: int = Field(2, ge=1, le=64)


NcEvent = Literal["opened", "recurred", "escalated", "past_due", "closed", "rejected"]


class NotificationConfig(Strict):
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


class RetentionConfig(Strict):
    """How long data is kept: raw samples at most, evidence at least (EU AI Act Art. 19, 26(6))."""

    samples_days: float = Field(30.0, gt=0, description="sampled records are deleted after this")
    evidence_days: float = Field(
        183.0,
        ge=183.0,
        description="evidence and nonconformities are kept at least this long; the agent "
        "never deletes them",
    )


class LedgerConfig(Strict):
    """The Ed25519 signature of the evidence ledger's head (`aims-agent keygen` makes a key):
    the agent signs and publishes its head every `publish_minutes` (`aims_ledger_head_info`),
    and `evidence head --sign` signs it on demand."""

    signing_key_env: EnvName | None = Field(
        None,
        description="environment variable holding the Ed25519 private key: PEM (PKCS#8) or "
        "the raw 32-byte key as 64 hex digits",
    )
    signing_key_file: Path | None = Field(
        None,
        description="file holding the Ed25519 private key (PEM, as `aims-agent keygen` writes "
        "it); keep it outside the evidence directory",
    )
    publish_minutes: float = Field(
        15.0,
        gt=0,
        le=1440,
        description="how often the agent signs its head and publishes it (with a signing key)",
    )

    @model_validator(mode="after")
    def _one_key(self) -> Self:
        if self.signing_key_env is not None and self.signing_key_file is not None:
            raise ValueError("signing_key_env and signing_key_file: set one, not both")
        return self

    @property
    def signed(self) -> bool:
        return self.signing_key_env is not None or self.signing_key_file is not None


ReportFormat = Literal["html", "json", "md"]  # the keys of exporters.report.RENDERERS


class ReportsConfig(Strict):
    """Period reports (clause 9.3.2 management-review input); `aims-agent report` any time."""

    monthly: bool = Field(
        True, description="on the 1st at 00:05 UTC, write last month's report of all models"
    )
    formats: tuple[ReportFormat, ...] = Field(("html", "json"), min_length=1)


class AgentConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    evidence_dir: Path = Path("aims-evidence")
    storage_url: str | None = Field(
        None,
        description="SQLAlchemy URL: SQLite or PostgreSQL; default: SQLite file under evidence_dir",
    )
    environment: str = "production"
    tokens: tuple[TokenConfig, ...] = Field(
        (), description="static bearer tokens; at least one unless agent.oidc is set"
    )
    max_body_bytes: int = Field(16 * 1024 * 1024, gt=0)
    max_pending_writes: int = Field(
        256, ge=1, description="ingest answers 429 while this many writes wait for storage"
    )
    shutdown_timeout_seconds: float = Field(10.0, gt=0)
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="a client must send a request's headers within this time"
    )
    body_timeout_seconds: float = Field(
        60.0, gt=0, description="and its body within this time after the headers"
    )
    durability: Literal["full", "normal"] = Field(
        "full",
        description="full: fsync before acknowledging; normal: survives a crash of the agent",
    )
    scheduler: SchedulerConfig = SchedulerConfig()
    notifications: tuple[NotificationConfig, ...] = ()
    retention: RetentionConfig = RetentionConfig()
    ledger: LedgerConfig = LedgerConfig()
    reports: ReportsConfig = ReportsConfig()
    oidc: OidcConfig | None = None
    segregation_of_duties: SegregationConfig = SegregationConfig()

    @model_validator(mode="after")
    def _unique_targets(self) -> Self:
        unique("notifications: names", [n.name for n in self.notifications])
        if not self.tokens and self.oidc is None:
            raise ValueError("tokens: give at least one token, or agent.oidc (access tokens)")
        return self
