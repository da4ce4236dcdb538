"""Who may use the API and who may do what: OpenID Connect access tokens beside the static
tokens, and the segregation of duties on the nonconformity register."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from aims_agent.config._base import EnvName, Strict

Scope = Literal["ingest", "read", "write"]
ConsoleRole = Literal["viewer", "governance", "admin"]


def _default_scopes() -> dict[Scope, str]:
    return {"ingest": "aims:ingest", "read": "aims:read", "write": "aims:write"}


class OidcConfig(Strict):
    """Access tokens (JWT) of an OpenID Connect issuer: signature by a key of the issuer's JWKS
    (cached, fetched again when a token names a key it does not hold: rotation), `iss`, `aud`,
    `exp` and `sub` required. The actor of a change is the token's person (`sub`, `name`,
    `email`) and the client it came through (`azp`, else `client_id`)."""

    issuer: str = Field(pattern=r"^https?://", description="the tokens' `iss`, exactly")
    audience: str = Field(min_length=1, description="the `aud` the tokens must carry")
    jwks_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="the issuer's key set; default: `jwks_uri` of the issuer's "
        "/.well-known/openid-configuration",
    )
    algorithms: tuple[Literal["RS256", "ES256"], ...] = Field(("RS256", "ES256"), min_length=1)
    scopes_claim: str = Field(
        "scope",
        description="the claim holding the granted scopes: a space-separated string or a list",
    )
    scopes: dict[Scope, str] = Field(
        default_factory=_default_scopes,
        description="the claim value that grants each of the agent's scopes",
    )
    machine_clients: tuple[str, ...] = Field(
        (),
        description="clients whose tokens are a machine's, not a person's (client credentials); "
        "a token whose `sub` is its client's id is a machine's anyway",
    )
    jwks_cache_seconds: float = Field(300.0, gt=0, description="how long fetched keys are kept")
    jwks_refresh_cooldown_seconds: float = Field(
        30.0,
        ge=0,
        description="a token naming an unknown key id fetches the key set again at most this "
        "often (so forged key ids cannot hammer the issuer)",
    )
    leeway_seconds: float = Field(30.0, ge=0, le=300, description="clock skew allowed on exp/nbf")
    timeout_seconds: float = Field(5.0, gt=0, description="fetching the discovery document / JWKS")


def _default_roles() -> dict[ConsoleRole, str]:
    return {"viewer": "aims-viewer", "governance": "aims-governance", "admin": "aims-admin"}


class ConsoleSignInConfig(Strict):
    """People sign in to the governance console through an OpenID Connect provider:
    authorization code flow with PKCE (S256), the ID token's signature, `iss`, `aud`, `exp` and
    nonce checked; the person's roles come from a claim. Sessions live in a signed cookie
    (`Secure`, `HttpOnly`, `SameSite=Lax`) that expires after `session_hours`.

    viewer: every page and the audit pack; governance: also works nonconformities through the
    lifecycle forms; admin: also reads pages of a ledger that does not verify."""

    issuer: str = Field(pattern=r"^https?://", description="the provider's issuer URL, exactly")
    client_id: str = Field(min_length=1, description="the console's client at the provider")
    client_secret_env: EnvName | None = Field(
        None,
        description="environment variable holding the client secret; none: a public client "
        "(PKCE alone)",
    )
    session_secret_env: EnvName = Field(
        "AIMS_CONSOLE_SESSION_SECRET",
        description="environment variable holding the key that signs session cookies "
        "(at least 32 characters)",
    )
    scope: str = Field("openid profile email", pattern=r"(^|\s)openid(\s|$)")
    roles_claim: str = Field(
        "roles",
        min_length=1,
        description="the ID token claim holding the person's roles (a list or a "
        "space-separated string; a dotted path such as realm_access.roles reaches into objects)",
    )
    roles: dict[ConsoleRole, str] = Field(
        default_factory=_default_roles,
        description="the claim value that gives each console role",
    )
    session_hours: float = Field(8.0, gt=0, le=24 * 7)
    public_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="the console's address as browsers reach it (behind a proxy); default: "
        "the address of the request",
    )
    secure_cookie: bool = Field(
        True,
        description="mark the session cookie Secure (browsers send it over HTTPS and to "
        "localhost only); turn off only for a trial over plain HTTP on another host",
    )
    timeout_seconds: float = Field(5.0, gt=0, description="calls to the provider")


class SegregationConfig(Strict):
    """Segregation of duties on the nonconformity register (on by default)."""

    reviewer_not_doer: bool = Field(
        True,
        description="whoever recorded the corrective action as done cannot record the "
        "effectiveness review or close the record",
    )
    person_closes_agent_records: bool = Field(
        True,
        description="a record the agent opened is closed or rejected only by a person "
        "(an OpenID Connect person token or a static token of kind person)",
    )
