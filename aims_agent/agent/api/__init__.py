"""The HTTP surface: ingest, read-only evidence views, the nonconformity register, operations.

    ingest.py            POST records, labels, KServe logger events         (ingest scope)
    evidence.py          monitoring records, attachments, SoA                (read scope)
    nonconformities.py   the register, and working a record                 (read / write)
    operations.py        models, run a check now, /metrics, /healthz, /readyz
    auth.py, common.py   bearer tokens and scopes; JSON answers and the error -> status map

Routes that accept data or return evidence need a bearer token with the right scope; /metrics
and the probes do not, so Prometheus and the kubelet can reach them. Errors are JSON:
`{"error": "...", "errors": [{"index", "id", "field", "reason"}]}`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException

from aims_agent import __version__
from aims_agent.agent.api import evidence, ingest, nonconformities, operations, reviews
from aims_agent.agent.api.auth import Auth, resolve_tokens
from aims_agent.agent.api.common import (
    error_response,
    http_error_response,
    validation_error_response,
)
from aims_agent.agent.api.oidc import OidcVerifier
from aims_agent.config import TokenConfig
from aims_agent.errors import AimsError

if TYPE_CHECKING:
    from aims_agent.agent.runtime import Runtime

__all__ = ["create_app", "resolve_tokens"]


def create_app(
    runtime: Runtime,
    tokens: Mapping[bytes, TokenConfig],
    *,
    ready: Callable[[], bool] = lambda: True,
) -> FastAPI:
    """The FastAPI app over a built runtime. Lifecycle (scheduler, shutdown) is the server's."""
    app = FastAPI(
        title="aims-agent",
        version=__version__,
        description="Runtime AI monitoring evidence for ISO/IEC 42001",
    )
    app.add_exception_handler(AimsError, error_response)
    app.add_exception_handler(StarletteHTTPException, http_error_response)
    app.add_exception_handler(RequestValidationError, validation_error_response)
    oidc = runtime.cfg.agent.oidc
    auth = Auth(tokens, OidcVerifier(oidc) if oidc else None)
    app.include_router(ingest.router(runtime, auth))
    app.include_router(evidence.router(runtime, auth))
    app.include_router(nonconformities.router(runtime, auth))
    app.include_router(reviews.router(runtime, auth))
    app.include_router(operations.router(runtime, auth, ready))
    app.openapi = lambda: documented_errors(app)  # type: ignore[method-assign]
    return app


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "additionalProperties": True,
}


def documented_errors(app: FastAPI) -> dict[str, Any]:
    """FastAPI's OpenAPI document, with the error body the app really sends (`{"error": ...}`)
    where FastAPI documents its own `{"detail": ...}` for a 422."""
    if app.openapi_schema is None:
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = doc.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in schemas:
            schemas["HTTPValidationError"] = ERROR_SCHEMA
            schemas.pop("ValidationError", None)
        app.openapi_schema = doc
    return app.openapi_schema
