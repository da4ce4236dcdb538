"""OpenID Connect access tokens: a JWT signed by a key of the issuer's JWKS (PyJWT's
PyJWKClient: keys cached, fetched again when a token names a key id it does not hold, so the
issuer can rotate), with `iss`, `aud`, `exp` and `sub` checked. Only the configured asymmetric
algorithms are accepted (never `none`, never HMAC with a public key)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import jwt

from aims_agent.config import OidcConfig, Scope
from aims_agent.errors import AuthError, ForbiddenError, IdentityProviderError
from aims_agent.records import Actor

VERIFIED_TOKENS = 4096  # tokens remembered after their first verification (least recent out)


def looks_like_jwt(token: str) -> bool:
    """A compact JWS: three base64url parts, the header a JSON object."""
    return token.count(".") == 2 and token.startswith("eyJ")


class OidcVerifier:
    """Verifies access tokens of one issuer; blocking (fetches keys), so call it in a thread."""

    def __init__(self, cfg: OidcConfig) -> None:
        self.cfg = cfg
        self._client: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._verified: OrderedDict[bytes, tuple[float, Actor, frozenset[Scope]]] = OrderedDict()

    def _jwks(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._client is None:
                url = self.cfg.jwks_url or self._discover()
                self._client = jwt.PyJWKClient(
                    url,
                    cache_keys=True,
                    cache_jwk_set=True,
                    lifespan=int(max(1, self.cfg.jwks_cache_seconds)),
                    timeout=int(max(1, self.cfg.timeout_seconds)),
                    cooldown_duration=self.cfg.jwks_refresh_cooldown_seconds,
                )
            return self._client

    def _discover(self) -> str:
        url = self.cfg.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            with urllib.request.urlopen(url, timeout=self.cfg.timeout_seconds) as r:  # noqa: S310
                doc = json.loads(r.read())
            return str(doc["jwks_uri"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IdentityProviderError(f"oidc: cannot read {url}: {exc}") from None

    def claims(self, token: str) -> dict[str, Any]:
        """The verified claims; AuthError naming what is wrong otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid bearer token: {exc}") from None
        if header.get("alg") not in self.cfg.algorithms:
            allowed = ", ".join(self.cfg.algorithms)
            raise AuthError(f"token algorithm {header.get('alg')!r} not accepted ({allowed})")
        try:
            key = self._jwks().get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as exc:
            raise IdentityProviderError(f"oidc: cannot fetch the issuer's keys: {exc}") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid bearer token: {exc}") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=list(self.cfg.algorithms),
                audience=self.cfg.audience,
                issuer=self.cfg.issuer,
                leeway=self.cfg.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid bearer token: {exc}") from None
        return claims

    def scopes(self, claims: Mapping[str, Any]) -> set[Scope]:
        granted = claims.get(self.cfg.scopes_claim) or ()
        values = set(granted.split() if isinstance(granted, str) else map(str, granted))
        return {scope for scope, value in self.cfg.scopes.items() if value in values}

    def actor(self, claims: Mapping[str, Any]) -> Actor:
        """The token's person (or machine, for a client-credentials token) and its client."""
        sub = str(claims["sub"])
        client = claims.get("azp") or claims.get("client_id")
        client = None if client is None else str(client)
        machine = client is not None and (sub == client or client in self.cfg.machine_clients)
        name, email = claims.get("name"), claims.get("email")
        return Actor(
            kind="machine" if machine else "person",
            subject=sub,
            name=None if name is None else str(name),
            email=None if email is None else str(email),
            client=client,
            issuer=str(claims["iss"]),
        )

    def remembered(self, token: str) -> tuple[Actor, frozenset[Scope]] | None:
        """The actor and scopes of a token verified before, while that holds: until it expires
        or the key set's cache lifetime passes, whichever is first. Never blocks."""
        key = hashlib.sha256(token.encode()).digest()
        with self._cache_lock:
            hit = self._verified.get(key)
            if hit is None or hit[0] <= time.time():
                return None
            self._verified.move_to_end(key)
            return hit[1], hit[2]

    def verified(self, token: str) -> tuple[Actor, frozenset[Scope]]:
        """Verify a token (blocking: may fetch keys) and remember what it says."""
        claims = self.claims(token)
        found = (self.actor(claims), frozenset(self.scopes(claims)))
        until = min(float(claims["exp"]), time.time() + self.cfg.jwks_cache_seconds)
        key = hashlib.sha256(token.encode()).digest()
        with self._cache_lock:
            self._verified[key] = (until, *found)
            while len(self._verified) > VERIFIED_TOKENS:
                self._verified.popitem(last=False)
        return found

    @staticmethod
    def grant(found: tuple[Actor, frozenset[Scope]], scope: Scope) -> Actor:
        """The actor, if the token grants `scope`; ForbiddenError otherwise."""
        actor, scopes = found
        if scope not in scopes:
            raise ForbiddenError(f"token of {actor.label!r} lacks the {scope!r} scope")
        return actor

    def authenticate(self, token: str, scope: Scope) -> Actor:
        """The actor of a verified token that grants `scope` (blocking)."""
        return self.grant(self.remembered(token) or self.verified(token), scope)
