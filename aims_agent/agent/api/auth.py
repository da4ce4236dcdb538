"""Bearer tokens with scopes: `ingest` (send data), `read` (evidence), `write` (run checks,
work nonconformities). Static token values come from environment variables named in the
config; OpenID Connect access tokens (agent.oidc) are accepted beside them. Either way a
request's actor is an `Actor`: the person or machine, and the client it came through."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable, Mapping

from fastapi import Request

from aims_agent.agent.api.oidc import OidcVerifier, looks_like_jwt
from aims_agent.config import Config, Scope, TokenConfig
from aims_agent.errors import AuthError, ConfigError, ForbiddenError
from aims_agent.records import Actor


def resolve_tokens(cfg: Config, environ: Mapping[str, str]) -> dict[bytes, TokenConfig]:
    """Token values from the environment; a missing, repeated or shared variable is a config
    error (the same rule `validate` applies), never a skip."""
    from aims_agent.agent.preflight import token_problems

    if problems := token_problems(cfg, environ):
        raise ConfigError(problems)
    return {environ[tok.env].encode(): tok for tok in cfg.agent.tokens}


def token_actor(tok: TokenConfig) -> Actor:
    """The actor of a static token: a machine, or the person it was issued to."""
    return Actor(kind=tok.kind, subject=tok.name, name=tok.name, email=tok.email, client=tok.name)


class Auth:
    """Checks a request's bearer token against the configured ones (constant-time), then, if
    configured, as an OpenID Connect access token."""

    def __init__(
        self, tokens: Mapping[bytes, TokenConfig], oidc: OidcVerifier | None = None
    ) -> None:
        self.tokens = tokens
        self.oidc = oidc

    def require(
        self, scope: Scope, *, query_token: bool = False
    ) -> Callable[[Request], Awaitable[Actor]]:
        """A FastAPI dependency that returns the request's actor (of what the request
        records); `query_token` also accepts `?token=` for senders that cannot set headers
        (KServe's payload logger). Access logs are off, so URLs are not logged."""

        async def check(request: Request) -> Actor:
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
                    return token_actor(tok)
            if self.oidc is not None and looks_like_jwt(presented):
                found = self.oidc.remembered(presented)
                if found is None:  # verify in a thread: the key set may need fetching
                    found = await asyncio.to_thread(self.oidc.verified, presented)
                return self.oidc.grant(found, scope)
            raise AuthError("invalid bearer token")

        return check
