"""Signing people in to the console: OpenID Connect authorization code flow with PKCE (Authlib's
Starlette client), sessions in a signed cookie (Starlette's SessionMiddleware: itsdangerous,
`HttpOnly`, `SameSite=Lax`, `Secure` unless configured off, expiring after `session_hours`),
roles from a configured claim, and a CSRF token per session for every form.

The session holds the person (subject, name, email, issuer), their console roles and the CSRF
token; the ID token itself is not kept. What a role may do is one registry (`GRANTS`).
"""

from __future__ import annotations

import hmac
import secrets
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import Request

from aims_agent.config import Config, ConsoleRole, ConsoleSignInConfig
from aims_agent.errors import ConfigError
from aims_agent.records import Actor

Permission = Literal["read", "work", "unverified"]
# what each role may do: read every page and the audit pack; work nonconformities through the
# lifecycle forms; read pages of a ledger that does not verify (`allow_unverified`)
GRANTS: dict[ConsoleRole, frozenset[Permission]] = {
    "viewer": frozenset({"read"}),
    "governance": frozenset({"read", "work"}),
    "admin": frozenset({"read", "work", "unverified"}),
}
SESSION_COOKIE = "aims_console"


@dataclass(frozen=True, slots=True)
class Person:
    """The signed-in person, as the session holds them."""

    actor: Actor
    roles: tuple[ConsoleRole, ...]
    csrf: str

    def may(self, permission: Permission) -> bool:
        return any(permission in GRANTS[role] for role in self.roles)

    @property
    def role_names(self) -> str:
        return ", ".join(self.roles) or "none"


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name, or by a dotted path into objects (`realm_access.roles`)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def roles_of(claims: Mapping[str, Any], cfg: ConsoleSignInConfig) -> tuple[ConsoleRole, ...]:
    """The console roles the claim gives (a list, or a space-separated string)."""
    granted = claim(claims, cfg.roles_claim) or ()
    values = set(granted.split() if isinstance(granted, str) else map(str, granted))
    return tuple(role for role, value in cfg.roles.items() if value in values)


def person(request: Request) -> Person | None:
    """The session's person, if someone is signed in."""
    data = request.session.get("person")
    if not isinstance(data, Mapping):
        return None
    roles: Sequence[ConsoleRole] = [r for r in data.get("roles", ()) if r in GRANTS]
    return Person(actor=Actor.from_dict(data["actor"]), roles=tuple(roles), csrf=str(data["csrf"]))


def sign_in(request: Request, claims: Mapping[str, Any], cfg: ConsoleSignInConfig) -> Person:
    """Start a session for the person of verified ID token claims (a new CSRF token)."""
    name, email = claims.get("name"), claims.get("email")
    actor = Actor(
        kind="person",
        subject=str(claims["sub"]),
        name=None if name is None else str(name),
        email=None if email is None else str(email),
        client=cfg.client_id,
        issuer=str(claims["iss"]),
    )
    found = Person(actor=actor, roles=roles_of(claims, cfg), csrf=secrets.token_urlsafe(32))
    request.session.clear()
    request.session["person"] = {
        "actor": actor.as_dict(),
        "roles": list(found.roles),
        "csrf": found.csrf,
    }
    return found


def csrf_ok(found: Person, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(found.csrf, presented)


def secrets_of(cfg: Config, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """The session-signing key and the client secret (None: a public client) from the
    environment; ConfigError naming each variable that is missing or too short."""
    from aims_agent.agent.preflight import console_problems

    if problems := console_problems(cfg, environ):
        raise ConfigError(problems)
    auth = cfg.console.sign_in
    assert auth is not None
    client = None if auth.client_secret_env is None else environ[auth.client_secret_env]
    return environ[auth.session_secret_env], client


def oauth_client(cfg: ConsoleSignInConfig, secret: str | None) -> Any:
    """Authlib's client for the provider (discovery on first use), PKCE with S256."""
    with warnings.catch_warnings():  # Authlib announces its next HTTP client at import
        warnings.simplefilter("ignore")
        from authlib.integrations.starlette_client import OAuth

    oauth = OAuth()
    oauth.register(
        "provider",
        client_id=cfg.client_id,
        client_secret=secret,
        server_metadata_url=cfg.issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={
            "scope": cfg.scope,
            "code_challenge_method": "S256",
            "timeout": cfg.timeout_seconds,
            "token_endpoint_auth_method": "client_secret_basic" if secret else "none",
        },
    )
    return oauth.provider


def safe_next(target: str | None, root: str) -> str:
    """Where to go after signing in: a path of this console only (no open redirect)."""
    home = root + "/"
    if not target or not target.startswith(home) or target.startswith("//") or "\\" in target:
        return home
    return target
