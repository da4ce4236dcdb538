"""OpenID Connect access tokens and segregation of duties, against the real agent and a real
JWKS served over HTTP (discovery document and key set), with tokens this test signs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.conftest import base_config

pytestmark = pytest.mark.integration
AUDIENCE = "aims-agent"


class Issuer:
    """An OpenID Connect issuer: a discovery document and a JWKS whose keys can rotate."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}  # kid -> private key, published
        self.jwks_fetches = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks"}
                elif self.path == "/jwks":
                    issuer.jwks_fetches += 1
                    body = {"keys": [issuer.public(kid) for kid in issuer.keys]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def public(self, kid: str) -> dict[str, Any]:
        key = self.keys[kid]
        if isinstance(key, rsa.RSAPrivateKey):
            jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
            alg = "RS256"
        else:
            jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
            alg = "ES256"
        return {**jwk, "kid": kid, "use": "sig", "alg": alg}

    def token(
        self,
        sub: str,
        *,
        kid: str = "rsa-1",
        key: Any = None,
        scope: str = "aims:read aims:write",
        client: str = "governance-console",
        **claims: Any,
    ) -> str:
        signing = key or self.keys[kid]
        alg = "RS256" if isinstance(signing, rsa.RSAPrivateKey) else "ES256"
        now = int(time.time())
        payload = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": sub,
            "azp": client,
            "iat": now,
            "exp": now + 300,
            "scope": scope,
            **claims,
        }
        return jwt.encode(payload, signing, algorithm=alg, headers={"kid": kid})


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    iss = Issuer()
    iss.keys["rsa-1"] = rsa_key()
    yield iss
    iss.server.shutdown()
    iss.server.server_close()


@pytest.fixture
def agent(tmp_path, reference_csv, drifted_agent, issuer):
    data = base_config(reference_csv, tmp_path / "ev")
    data["agent"]["oidc"] = {
        "issuer": issuer.url,
        "audience": AUDIENCE,
        "jwks_refresh_cooldown_seconds": 1,
        "leeway_seconds": 0,
    }
    return drifted_agent(data, seed=8)


def hs256_with_public_key(issuer: Issuer, now: int) -> str:
    """The algorithm-confusion attack: HMAC keyed with the issuer's public key (PEM)."""
    pem = (
        issuer.keys["rsa-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    def part(value: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    claims = {"iss": issuer.url, "aud": AUDIENCE, "sub": "alice", "exp": now + 300}
    signed = part({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}) + b"." + part(claims)
    mac = hmac.new(pem, signed, hashlib.sha256).digest()
    return (signed + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()


def person(issuer: Issuer, sub: str, **kw: Any) -> str:
    return issuer.token(sub, name=sub.title(), email=f"{sub}@example.org", **kw)


def test_tokens_are_verified_against_the_issuers_keys(agent, issuer):
    alice = person(issuer, "alice")
    with agent.client(token=alice) as c:
        assert c.get("/v1/nonconformities").status_code == 200
    now = int(time.time())
    bad = {
        "expired": issuer.token("alice", iat=now - 900, exp=now - 600),
        "wrong key": issuer.token("alice", key=rsa_key()),  # kid rsa-1, another key
        "wrong audience": issuer.token("alice", aud="someone-else"),
        "wrong issuer": issuer.token("alice", iss="https://evil.example"),
        "alg none": jwt.encode(
            {"iss": issuer.url, "aud": AUDIENCE, "sub": "alice", "exp": now + 300},
            None,
            algorithm="none",
            headers={"kid": "rsa-1"},
        ),
        "HS256 with the public key": hs256_with_public_key(issuer, now),
        "unknown key id": issuer.token("alice", kid="nobody", key=rsa_key()),
        "no sub": jwt.encode(
            {"iss": issuer.url, "aud": AUDIENCE, "exp": now + 300, "scope": "aims:read"},
            issuer.keys["rsa-1"],
            algorithm="RS256",
            headers={"kid": "rsa-1"},
        ),
    }
    for what, token in bad.items():
        with agent.client(token=token) as c:
            r = c.get("/v1/nonconformities")
            assert r.status_code == 401, (what, r.text)
            assert r.json()["error"] and token not in r.text
    reader = issuer.token("carol", scope="aims:read")
    with agent.client(token=reader) as c:
        assert c.patch("/v1/nonconformities/NC-x", json={"comment": "hi"}).status_code == 403
    # the issuer rotates: a token signed with a key published after the agent fetched the set
    time.sleep(1.1)  # the refresh cooldown the unknown key id above started
    fetches = issuer.jwks_fetches
    issuer.keys["ec-2"] = ec.generate_private_key(ec.SECP256R1())
    with agent.client(token=person(issuer, "bob", kid="ec-2")) as c:
        r = c.get("/v1/nonconformities")
        assert r.status_code == 200, r.text
    assert issuer.jwks_fetches == fetches + 1
    with agent.client(token=alice) as c:  # and the cached set serves the next requests
        assert c.get("/v1/nonconformities").status_code == 200
    assert issuer.jwks_fetches == fetches + 1
    # a token verified once is remembered, but never past its expiry
    brief = issuer.token("dora", exp=int(time.time()) + 2)
    with agent.client(token=brief) as c:
        assert c.get("/v1/nonconformities").status_code == 200
        time.sleep(2.5)
        assert c.get("/v1/nonconformities").status_code == 401


def test_people_work_records_and_duties_are_segregated(agent, issuer):
    issuer.keys["ec-1"] = ec.generate_private_key(ec.SECP256R1())
    alice, bob = person(issuer, "alice"), person(issuer, "bob", kid="ec-1")
    pipeline = issuer.token("pipeline", client="pipeline")  # client credentials: a machine
    action = {"description": "retrain", "owner": "ml-team", "due_date": "2026-12-31"}
    review = {"effective": True, "verified_by": "Bob", "evidence": "MR-1"}
    with agent.client() as c:
        r = c.post("/v1/models/m1/checks/drift/run").json()
        nc = r["nonconformity_id"]
        assert nc
        # the static token is a machine's: it works the record but cannot close it
        path = f"/v1/nonconformities/{nc}"
        assert c.patch(path, json={"status": "investigating"}).status_code == 200
        r = c.patch(path, json={"status": "rejected", "justification": "noise"})
        assert r.status_code == 403 and "only a person" in r.json()["error"]
    with agent.client(token=pipeline) as c:
        r = c.patch(path, json={"status": "rejected", "justification": "noise"})
        assert r.status_code == 403 and "only a person" in r.json()["error"]
    with agent.client(token=alice) as c:
        ok = c.patch(path, json={"status": "corrective_action", "corrective_action": action})
        assert ok.status_code == 200
        done = {**action, "status": "done"}
        assert c.patch(path, json={"status": "verifying", "corrective_action": done}).is_success
        r = c.patch(path, json={"effectiveness_review": review})
        assert r.status_code == 403
        assert "'Alice' recorded the corrective action as done" in r.json()["error"]
        assert c.patch(path, json={"status": "closed"}).status_code in (403, 409)
    with agent.client(token=bob) as c:
        r = c.patch(path, json={"status": "closed", "effectiveness_review": review})
        assert r.status_code == 200, r.text
        events = c.get(path).json()["events"]
    by = {(e["event"], e["by"]["subject"]) for e in events}
    assert {("corrective_action", "alice"), ("closed", "bob"), ("opened", "aims-agent")} <= by
    closed = next(e for e in events if e["event"] == "closed")
    assert closed["actor"] == "Bob" and closed["by"] == {
        "kind": "person",
        "subject": "bob",
        "name": "Bob",
        "email": "bob@example.org",
        "client": "governance-console",
        "issuer": issuer.url,
    }
    investigating = next(e for e in events if e["event"] == "investigating")
    assert investigating["by"]["kind"] == "machine" and investigating["actor"] == "writer"
