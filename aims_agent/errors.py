"""The one error hierarchy of aims-agent.

AimsError
├── ConfigError (ValueError)          the config file is unreadable or invalid
├── ReferenceDataError (ValueError)   reference data is missing, unreadable or off-schema
├── UnknownAliasError (LookupError)   a registry was asked for an alias it does not know
├── UnknownModelError (LookupError)   a request named a model the agent does not monitor
├── RecordError (ValueError)          an ingested record does not fit the model's schema
├── PayloadError (ValueError)         a request body cannot be decoded at all
├── StorageError (RuntimeError)       the evidence store failed or is closed
│   └── BackpressureError             storage is behind; the client should retry later
└── ReportError (RuntimeError)        an evidence report could not be rendered
                                      (exporters.evidently_report)
"""

from __future__ import annotations

from collections.abc import Iterable


class AimsError(Exception):
    """Base of every error aims-agent raises on purpose."""


class ConfigError(AimsError, ValueError):
    """The configuration is invalid; `problems` lists each one with its YAML path."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ReferenceDataError(AimsError, ValueError):
    """Reference data cannot be loaded or does not match the model's schema."""


class UnknownAliasError(AimsError, LookupError):
    """A registry lookup failed; the message lists the known aliases."""

    def __init__(self, kind: str, alias: str, known: Iterable[str]) -> None:
        self.alias = alias
        super().__init__(f"unknown {kind} {alias!r}; known: {', '.join(sorted(known))}")


class UnknownModelError(AimsError, LookupError):
    """A request named a model that is not in the config."""


class RecordError(AimsError, ValueError):
    """One record does not fit the schema: which record, which field, why."""

    def __init__(self, *, index: int, record_id: str | None, field: str, reason: str) -> None:
        self.index = index
        self.record_id = record_id
        self.field = field
        self.reason = reason
        super().__init__(f"record {index} (id={record_id!r}) field {field!r}: {reason}")


class PayloadError(AimsError, ValueError):
    """The request body is not JSON / NDJSON of the expected shape."""


class StorageError(AimsError, RuntimeError):
    """The evidence store failed; the underlying driver error is chained."""


class StaleWindowError(StorageError):
    """A write computed from a window that an earlier failed write left ahead of storage."""


class BackpressureError(StorageError):
    """Too many writes are waiting for storage: refuse new data instead of growing memory."""

    def __init__(self, pending: int, retry_after: float) -> None:
        self.pending, self.retry_after = pending, retry_after
        super().__init__(f"{pending} batches are waiting for storage; retry in {retry_after:g}s")
