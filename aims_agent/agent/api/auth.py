"""Bearer tokens with scopes: `ingest` (send data), `read` (evidence), `write` (run checks,
work nonconformities). Token values come from environment variables named in the config."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping

from fastapi import Request

from aims_agent.config import Config, Scope, TokenConfig
from aims_agent.errors import AuthError, ConfigError, ForbiddenError


def resolve_tokens(cfg: Config, environ: Mapping[str, str]) -> dict[bytes, TokenConfig]:
    """Token values from the environment; a missing, repeated or shared variable is a config
    error (the same rule `validate` applies), never a skip."""
    from aims_agent.agent.preflight import token_problems

    if problems := token_problems(cfg, environ):
        raise ConfigError(problems)
    return {environ[tok.env].encode(): tok for tok in cfg.agent.tokens}


class Auth:
    """Checks a request's bearer token against the configured ones (constant-time)."""

    def __init__(self, tokens: Mapping[bytes, TokenConfig]) -> None:
        self.tokens = tokens

    def require(
        self, scope: Scope, *, query_token: bool = False
    ) -> Callable[[Request], Awaitable[str]]:
        """A FastAPI dependency that returns the token's name (the actor of what the request
        records); `query_token` also accepts `?token=` for senders that cannot set headers
        (KServe's payload logger). Access logs are off, so URLs are not logged."""

        async def check(request: Request) -> str:
            header = request.headers.get("authorization", "")
            scheme, _, presented = header.partition(" ")
            if query_token and not header:
                scheme, presented = "bearer", request.query_params.get("token", "")
            if scheme.lower() != "bearer" or not presented:
                raise AuthError("missing bearer token")
            for value, tok in self.tokens.items():
                if hmac.compare_digest(value, presented.encode()):
                    if scope not in tok.scopes:
                        raise ForbiddenError(f"token {tok.name!r} lacks the {scope!r} scope")
                    return tok.name
            raise AuthError("invalid bearer token")

        return check
