"""What a request pays to be authenticated: an OpenID Connect access token (RS256, ES256;
keys from a JWKS served over HTTP on loopback, cached after the first fetch) beside a static
token, through the API's own dependency (`Auth.require`), in one run: a token's first request
(its signature verified) and the next ones (remembered until it expires).

    python bench/auth.py [--n 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aims_agent.agent.api.auth import Auth  # noqa: E402
from aims_agent.agent.api.oidc import OidcVerifier  # noqa: E402
from aims_agent.config import OidcConfig, TokenConfig  # noqa: E402


def serve_jwks(keys: list[dict[str, object]]) -> tuple[ThreadingHTTPServer, str]:
    body = json.dumps({"keys": keys}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="requests per kind of token")
    n = parser.parse_args().n
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys = [
        {**json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "r", "alg": "RS256"},
        {**json.loads(ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "e", "alg": "ES256"},
    ]
    server, url = serve_jwks(keys)
    static = "s" * 32
    auth = Auth(
        {static.encode(): TokenConfig(name="svc", env="X", scopes=("read",))},
        OidcVerifier(OidcConfig(issuer=url, audience="aims-agent", jwks_url=url + "/jwks")),
    )
    check = auth.require("read")
    now = int(time.time())
    claims = {"iss": url, "aud": "aims-agent", "sub": "alice", "exp": now + 3600}
    claims["scope"] = "aims:read"
    tokens = {
        "static token": static,
        "OIDC RS256": jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "r"}),
        "OIDC ES256": jwt.encode(claims, ec_key, algorithm="ES256", headers={"kid": "e"}),
    }

    async def run(token: str) -> float:
        request = SimpleNamespace(headers={"authorization": f"Bearer {token}"}, query_params={})
        await check(request)  # type: ignore[arg-type]  # the first fetches the key set
        start = time.perf_counter()
        for _ in range(n):
            await check(request)  # type: ignore[arg-type]
        return (time.perf_counter() - start) / n

    def first(token: str) -> float:
        """A token's first request: its signature verified (keys cached)."""
        assert auth.oidc is not None
        start = time.perf_counter()
        for _ in range(n):
            auth.oidc._verified.clear()
            auth.oidc.authenticate(token, "read")
        return (time.perf_counter() - start) / n

    costs = {f"{name}, again": asyncio.run(run(token)) for name, token in tokens.items()}
    costs |= {f"{name}, first": first(token) for name, token in tokens.items() if "OIDC" in name}
    server.shutdown()
    base = costs["static token, again"]
    for name, cost in costs.items():
        print(f"{name:>18}: {cost * 1e6:8.1f} us per request  ({cost / base:6.1f} x static)")


if __name__ == "__main__":
    main()
