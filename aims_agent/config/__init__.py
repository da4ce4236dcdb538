"""The agent's config as pydantic models: one agent section and one or more monitored models.

A config is validated once, by `load_config`; everything after that trusts it. Relative paths
(reference data, evidence directory) are resolved against the config file's folder. Tokens are
given as the names of environment variables, never inline.

    agent.py       the agent section (listening, storage, tokens, scheduler, notifications, ...)
    model.py       a monitored model and the whole `Config`
    checks.py      one settings model per check kind
    collectors.py  proxy taps (HTTP, gRPC), KServe logger, log tail
    load.py        YAML -> validated `Config`, every problem with its YAML path
"""

from __future__ import annotations

from aims_agent.config.agent import (
    AgentConfig,
    LedgerConfig,
    NcEvent,
    NotificationConfig,
    ReportFormat,
    ReportsConfig,
    RetentionConfig,
    SchedulerConfig,
    TokenConfig,
)
from aims_agent.config.checks import (
    CheckConfig,
    ColumnTest,
    DriftCheckConfig,
    Envelope,
    EstimatedPerformanceCheckConfig,
    FairnessCheckConfig,
    IntendedUseCheckConfig,
    Limit,
    NeedsReview,
    OversightCheckConfig,
    PerformanceCheckConfig,
    QualityCheckConfig,
)
from aims_agent.config.collectors import (
    DecodeConfig,
    GrpcProxyConfig,
    KServeLoggerConfig,
    LogTailConfig,
    ProxyConfig,
    TapConfig,
    TrustyAIConfig,
)
from aims_agent.config.identity import (
    ConsoleRole,
    ConsoleSignInConfig,
    OidcConfig,
    Scope,
    SegregationConfig,
)
from aims_agent.config.load import load_config, parse_config
from aims_agent.config.model import (
    Config,
    ConsoleConfig,
    ModelConfig,
    PrivacyConfig,
    ReferenceConfig,
    SchemaConfig,
    WindowConfig,
)

__all__ = [
    "AgentConfig",
    "CheckConfig",
    "ColumnTest",
    "ConsoleConfig",
    "ConsoleRole",
    "ConsoleSignInConfig",
    "Config",
    "DecodeConfig",
    "DriftCheckConfig",
    "Envelope",
    "EstimatedPerformanceCheckConfig",
    "IntendedUseCheckConfig",
    "NeedsReview",
    "OversightCheckConfig",
    "FairnessCheckConfig",
    "GrpcProxyConfig",
    "KServeLoggerConfig",
    "LedgerConfig",
    "Limit",
    "LogTailConfig",
    "ModelConfig",
    "NcEvent",
    "OidcConfig",
    "NotificationConfig",
    "PerformanceCheckConfig",
    "PrivacyConfig",
    "ProxyConfig",
    "QualityCheckConfig",
    "ReferenceConfig",
    "ReportFormat",
    "ReportsConfig",
    "RetentionConfig",
    "SchedulerConfig",
    "SegregationConfig",
    "SchemaConfig",
    "Scope",
    "TapConfig",
    "TokenConfig",
    "TrustyAIConfig",
    "WindowConfig",
    "load_config",
    "parse_config",
]
