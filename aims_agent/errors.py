"""The one error hierarchy of aims-agent.

AimsError
├── ConfigError (ValueError)              the config file is unreadable or invalid
├── ReferenceDataError (ValueError)       reference data is missing, unreadable or off-schema
├── UnknownAliasError (LookupError)       a registry was asked for an alias it does not know
├── UnknownModelError (LookupError)       a request named a model the agent does not monitor
├── RecordError (ValueError)              an ingested record does not fit the model's schema
├── PayloadError (ValueError)             a request body cannot be decoded at all
│   ├── PayloadTooLargeError              the body is over the configured limit
│   └── ProtocolError                     a model-server exchange cannot be decoded
├── InvalidPayload                        raised inside protocol decoders (-> ProtocolError)
├── PeriodError (ValueError)              a reporting period that is not understood
├── CanonicalJSONError (ValueError)       a value without a canonical JSON form (NaN, ...)
├── SigningKeyError (ValueError)          a ledger signing or public key cannot be read
├── AuthError                             a request's credentials (HTTP 401)
│   ├── ForbiddenError                    valid credentials without the scope (HTTP 403)
│   └── IdentityProviderError             the OpenID Connect issuer's keys cannot be had (503)
├── NonconformityError                    a change to the nonconformity register
│   ├── LifecycleError                    the record's state does not allow it (HTTP 409)
│   ├── SegregationOfDutiesError          this actor may not make this change (HTTP 403)
│   └── NonconformityNotFoundError (LookupError)
├── StorageError (RuntimeError)           the evidence store failed or is closed
│   ├── StaleWindowError                  a write computed on a window a failed write left behind
│   └── BackpressureError                 storage is behind; the client should retry later
├── LedgerError (RuntimeError)            an entry cannot be appended to the evidence ledger
├── ReportError (RuntimeError)            Evidently's HTML report could not be rendered
├── ReportWriteError (RuntimeError)       a period report file could not be written
├── ClientGoneError (ConnectionError)     a proxied client left before its request was complete
└── HttpError                             an HTTP answer with a status and a body of its own
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


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


class PayloadTooLargeError(PayloadError):
    """The request body is larger than the configured limit."""


class ProtocolError(PayloadError):
    """A request/response pair cannot be decoded: which protocol, where in the JSON, and why."""

    def __init__(self, protocol: str, location: str, reason: str) -> None:
        self.protocol = protocol
        self.location = location
        self.reason = reason
        super().__init__(f"{protocol}: {location}: {reason}")


class InvalidPayload(AimsError):
    """Raised inside a protocol decoder; the decoder's wrapper turns it into a ProtocolError
    naming the protocol."""

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(location, reason)
        self.location = location
        self.reason = reason


class PeriodError(AimsError, ValueError):
    """A period that is none of YYYY, YYYY-Qn, YYYY-MM, YYYY-MM-DD..YYYY-MM-DD."""


class CanonicalJSONError(AimsError, ValueError):
    """The value has no canonical JSON form (NaN, a non-string key, an unknown type...)."""


class SigningKeyError(AimsError, ValueError):
    """A signing or public key cannot be read."""


class AuthError(AimsError):
    """The request carries no valid credentials."""


class ForbiddenError(AuthError):
    """The credentials are valid but lack the scope the request needs."""


class IdentityProviderError(AuthError):
    """The OpenID Connect issuer's discovery document or JWKS cannot be fetched (HTTP 503)."""


class NonconformityError(AimsError):
    """A change to the nonconformity register that cannot be made."""


class LifecycleError(NonconformityError):
    """A change that the record's state does not allow (HTTP 409)."""


class SegregationOfDutiesError(NonconformityError):
    """The change is one this actor may not make: reviewing their own corrective action, or a
    machine closing a record the agent opened (HTTP 403)."""


class NonconformityNotFoundError(NonconformityError, LookupError):
    """No such nonconformity (HTTP 404)."""


class StorageError(AimsError, RuntimeError):
    """The evidence store failed; the underlying driver error is chained."""


class StaleWindowError(StorageError):
    """A write computed from a window that an earlier failed write left ahead of storage."""


class BackpressureError(StorageError):
    """Too many writes are waiting for storage: refuse new data instead of growing memory."""

    def __init__(self, pending: int, retry_after: float) -> None:
        self.pending, self.retry_after = pending, retry_after
        super().__init__(f"{pending} batches are waiting for storage; retry in {retry_after:g}s")


class LedgerError(AimsError, RuntimeError):
    """An entry cannot be appended: unknown kind, or content without a canonical JSON form."""


class LedgerTamperedError(LedgerError):
    """The evidence ledger does not verify: a read that needs verified evidence refuses
    (CLI exit 1, HTTP 409), naming the first bad entry."""

    def __init__(self, message: str, *, first_problem: str = "") -> None:
        super().__init__(message)
        self.first_problem = first_problem


class ReportError(AimsError, RuntimeError):
    """Evidently's report could not be rendered (Evidently missing, bad data, timeout)."""


class ReportWriteError(AimsError, RuntimeError):
    """A report file could not be written."""


class ClientGoneError(AimsError, ConnectionError):
    """The client disconnected before its request body was complete."""


class HttpError(AimsError):
    """An HTTP answer of its own: `status`, a message and extra fields of the JSON body."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        self.status, self.message, self.extra = status, message, extra
        super().__init__(message)
