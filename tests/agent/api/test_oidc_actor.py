"""Who a token is: OpenID Connect claims to an Actor, scopes from the configured claim, static
tokens of machines and persons, and an issuer that cannot be reached (503, not 401)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from aims_agent.agent.api.auth import Auth, token_actor
from aims_agent.agent.api.common import status_of
from aims_agent.agent.api.oidc import OidcVerifier
from aims_agent.config import OidcConfig, TokenConfig
from aims_agent.errors import ForbiddenError, IdentityProviderError
from tests.conftest import free_port

ISSUER = "https://id.example.org/realms/ai"


def verifier(**cfg: object) -> OidcVerifier:
    return OidcVerifier(OidcConfig(issuer=ISSUER, audience="aims", **cfg))  # type: ignore[arg-type]


def test_claims_become_a_person_or_a_machine_and_its_client():
    v = verifier(machine_clients=["batch-scorer"])
    claims = {"iss": ISSUER, "sub": "u-1", "name": "Ana", "email": "ana@x", "azp": "console"}
    ana = v.actor(claims)
    assert (ana.kind, ana.subject, ana.name, ana.email, ana.client) == (
        "person", "u-1", "Ana", "ana@x", "console"
    )  # fmt: skip
    assert ana.issuer == ISSUER and ana.key == (ISSUER, "u-1") and ana.label == "Ana"
    # client credentials: sub is the client itself, or the client is declared a machine's
    assert v.actor({"iss": ISSUER, "sub": "ci", "client_id": "ci"}).kind == "machine"
    assert v.actor({"iss": ISSUER, "sub": "svc-9", "azp": "batch-scorer"}).kind == "machine"


def test_scopes_come_from_the_configured_claim_as_a_string_or_a_list():
    v = verifier(scopes_claim="roles", scopes={"read": "aims-read", "write": "aims-write"})
    assert v.scopes({"roles": ["aims-read", "other"]}) == {"read"}
    assert v.scopes({"roles": "aims-read aims-write"}) == {"read", "write"}
    assert v.scopes({"scope": "aims-read"}) == set()  # another claim grants nothing
    with pytest.raises(ForbiddenError, match="lacks the 'write' scope"):
        v.grant((v.actor({"iss": ISSUER, "sub": "u"}), frozenset({"read"})), "write")


def test_static_tokens_are_machines_unless_declared_a_persons():
    svc = token_actor(TokenConfig(name="pipeline", env="X"))
    dana = token_actor(TokenConfig(name="dana", env="Y", kind="person", email="dana@x"))
    assert (svc.kind, svc.client) == ("machine", "pipeline")
    assert (dana.kind, dana.email, dana.key) == ("person", "dana@x", (None, "dana"))


def test_an_issuer_that_cannot_be_reached_is_a_503_not_a_401():
    nowhere = f"http://127.0.0.1:{free_port()}"
    auth = Auth({}, OidcVerifier(OidcConfig(issuer=nowhere, audience="aims", timeout_seconds=2)))
    token = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.eyJzdWIiOiJ4In0.c2ln"  # RS256, kid k
    request = SimpleNamespace(headers={"authorization": f"Bearer {token}"}, query_params={})
    with pytest.raises(IdentityProviderError, match="oidc: cannot read") as caught:
        asyncio.run(auth.require("read")(request))  # type: ignore[arg-type]
    assert status_of(caught.value) == 503
