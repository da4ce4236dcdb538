"""The console with people signing in through a real OpenID provider on loopback (authorization
code + PKCE, roles from a claim, signed-cookie sessions) and working a nonconformity through
the lifecycle forms: the API's rules and refusals, a CSRF token on every form, roles enforced."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from aims_agent.agent.console import create_console
from aims_agent.config import ConsoleConfig, ConsoleSignInConfig
from aims_agent.errors import ConfigError

# a confidential client (secret at the token endpoint) that also sends PKCE: the test provider
# takes any client secret but, unlike most, neither checks the PKCE verifier nor serves public
# clients, so the test checks the verifier the token request carried against the challenge
SECRET = {"AIMS_CONSOLE_SESSION_SECRET": "s" * 40, "AIMS_CONSOLE_CLIENT_SECRET": "c" * 24}
CONSOLE = "https://console.test"


@pytest.fixture
def breach(drifted_api):
    """An agent's store with a breaching drift run and the nonconformity it opened."""
    api = drifted_api
    run = api.post("/v1/models/m1/checks/drift/run", scope="write").json()
    return api, run["nonconformity_id"]


class Client:
    """A browser's view of the console over HTTPS from another machine: its own cookie jar."""

    def __init__(self, app: Any) -> None:
        self.runner = asyncio.Runner()
        transport = httpx.ASGITransport(app=app, client=("203.0.113.5", 40000))
        self.http = httpx.AsyncClient(transport=transport, base_url=CONSOLE)
        self.cookies = self.http.cookies

    def get(self, path: str) -> httpx.Response:
        return self.runner.run(self.http.get(path))

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        return self.runner.run(self.http.post(path, data=data))

    def close(self) -> None:
        self.runner.run(self.http.aclose())
        self.runner.close()


@pytest.fixture
def console(breach, identity_provider) -> Callable[[], Client]:
    """`console()`: a browser-like client of the console (its own cookie jar) over that store."""
    api, _ = breach
    auth = ConsoleSignInConfig(
        issuer=identity_provider.url,
        client_id="aims-console",
        client_secret_env="AIMS_CONSOLE_CLIENT_SECRET",
    )
    cfg = api.runtime.cfg.model_copy(update={"console": ConsoleConfig(sign_in=auth)})
    app = create_console(cfg, api.runtime.store, environ=SECRET)
    clients: list[Client] = []

    def make() -> Client:
        clients.append(Client(app))
        return clients[-1]

    yield make
    for c in clients:
        c.close()


def sign_in(client: Client, sub: str, target: str = "/") -> httpx.Response:
    """Through the provider's login form as `sub`; the console's answer to the callback."""
    first = client.get(target)
    assert first.status_code == 303, first.text
    return through_provider(client, client.get(first.headers["location"]), sub)


def through_provider(client: Client, login: httpx.Response, sub: str) -> httpx.Response:
    assert login.status_code == 302
    authorize = login.headers["location"]
    with httpx.Client() as idp:
        form = idp.get(authorize)
        assert form.status_code == 200 and 'name="sub"' in form.text
        back = idp.post(authorize, data={"sub": sub})
    assert back.status_code == 302, back.text
    return client.get(back.headers["location"].removeprefix(CONSOLE))


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def step(client: Client, nc: str, **fields: str) -> httpx.Response:
    """Post the record's form as the page gives it (with its CSRF token)."""
    token = csrf(client.get(f"/nonconformities/{nc}").text)
    data = {k.replace("__", "."): v for k, v in fields.items()}
    return client.post(f"/nonconformities/{nc}", data={"csrf": token, **data})


def test_sign_in_is_code_flow_with_pkce_and_a_hardened_session_cookie(console, identity_provider):
    client = console()
    first = client.get("/nonconformities?status=open")
    assert first.status_code == 303
    assert first.headers["location"] == "/login?next=/nonconformities%3Fstatus%3Dopen"
    login = client.get(first.headers["location"])
    query = parse_qs(urlsplit(login.headers["location"]).query)
    assert query["response_type"] == ["code"] and query["client_id"] == ["aims-console"]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["nonce"] and query["state"]
    assert query["redirect_uri"] == [f"{CONSOLE}/auth/callback"]
    client.cookies.clear()
    before = len(identity_provider.token_requests)
    login = client.get(client.get("/nonconformities?status=open").headers["location"])
    challenge = parse_qs(urlsplit(login.headers["location"]).query)["code_challenge"][0]
    landed = through_provider(client, login, "alice")
    assert landed.status_code == 303
    assert landed.headers["location"] == "/nonconformities?status=open"
    # the token request carried the verifier of that challenge (S256), the secret in its header
    (sent,) = identity_provider.token_requests[before:]
    assert sent["grant_type"] == "authorization_code" and "client_secret" not in sent
    digest = hashlib.sha256(sent["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge
    cookie = landed.headers["set-cookie"].lower()
    for attribute in ("httponly", "secure", "samesite=lax", "max-age=28800"):
        assert attribute in cookie, attribute
    page = client.get("/nonconformities?status=open")
    assert page.status_code == 200
    assert "Signed in as <strong>Alice Auditor</strong>" in page.text and "governance" in page.text


def test_a_record_walks_from_open_to_closed_with_a_second_person(console, breach):
    api, nc = breach
    alice, bob = console(), console()
    sign_in(alice, "alice")
    sign_in(bob, "bob")
    assert (
        step(alice, nc, status="investigating", reaction__action="traffic halved").status_code
        == 303
    )
    # a refused step names the field, as the API does (422)
    r = step(alice, nc, status="corrective_action", corrective_action__description="retrain")
    assert r.status_code == 422
    assert "corrective_action.owner: is required" in r.text and 'aria-invalid="true"' in r.text
    assert 'value="retrain"' not in r.text and ">retrain</textarea>" in r.text  # kept for retry
    r = step(
        alice, nc, status="corrective_action", cause_analysis__root_cause="upstream schema change",
        corrective_action__description="retrain on the new schema",
        corrective_action__owner="ml-team", corrective_action__due_date="2031-01-31",
    )  # fmt: skip
    assert r.status_code == 303 and "/nonconformities/" in r.headers["location"]
    # the record's state does not allow it (409, with the steps it allows)
    r = step(alice, nc, status="closed")
    assert r.status_code == 409
    assert "from corrective_action it can go to verifying" in r.text
    assert step(alice, nc, corrective_action__status="done", status="verifying").status_code == 303
    # whoever did the action may not review it (segregation of duties, 403)
    r = step(alice, nc, effectiveness_review__effective="yes", effectiveness_review__evidence="x")
    assert r.status_code == 403 and "segregation of duties" in r.text
    r = step(
        bob, nc, status="closed", effectiveness_review__effective="yes",
        effectiveness_review__evidence="drift share back under 0.1 for 7 days",
    )  # fmt: skip
    assert r.status_code == 303
    page = bob.get(r.headers["location"]).text
    assert "Recorded:" in page and "closed" in page and "Work this nonconformity" not in page
    # the API tells the same story: each step by its person, through the console's client
    record = api.get(f"/v1/nonconformities/{nc}").json()
    assert record["status"] == "closed"
    assert record["effectiveness_review"]["verified_by"] == "Bob Reviewer"
    people = {e["by"]["subject"] for e in record["events"] if e["by"]["kind"] == "person"}
    assert people == {"alice", "bob"}
    by = next(e["by"] for e in record["events"] if e["event"] == "closed")
    assert by["client"] == "aims-console" and by["issuer"].startswith("http://localhost:")


def test_forms_need_the_sessions_csrf_token_and_the_governance_role(console, breach):
    _, nc = breach
    alice, vera, nora = console(), console(), console()
    sign_in(alice, "alice")
    sign_in(vera, "vera")
    no_token = alice.post(f"/nonconformities/{nc}", data={"status": "investigating"})
    assert no_token.status_code == 403 and "did not come from this session" in no_token.text
    foreign = alice.post(
        f"/nonconformities/{nc}", data={"csrf": csrf(vera.get("/").text), "status": "rejected"}
    )
    assert foreign.status_code == 403
    page = vera.get(f"/nonconformities/{nc}")
    assert page.status_code == 200 and "Work this nonconformity" not in page.text
    r = step(vera, nc, status="investigating")
    assert r.status_code == 403 and "may read but not work" in r.text
    assert "open" in alice.get(f"/nonconformities/{nc}").text  # nothing changed
    # reading an unverified ledger is for admins
    assert vera.get("/?allow_unverified=true").status_code == 403
    ada = console()
    sign_in(ada, "ada")
    assert ada.get("/?allow_unverified=true").status_code == 200
    # signed in, but the claim gives no console role
    sign_in(nora, "nora")
    r = nora.get("/")
    assert r.status_code == 403 and "no console role" in r.text
    out = nora.post("/logout", data={"csrf": csrf(r.text)})
    assert out.status_code == 303 and out.headers["location"] == "/signed-out"


def test_sessions_end_and_cannot_be_forged(console):
    alice = console()
    sign_in(alice, "alice")
    assert alice.get("/").status_code == 200
    value = alice.cookies["aims_console"]
    alice.cookies.set("aims_console", value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert alice.get("/").status_code == 303  # an altered cookie is nobody's session
    alice.cookies.clear()
    sign_in(alice, "alice")
    token = csrf(alice.get("/").text)
    out = alice.post("/logout", data={"csrf": token})
    assert out.status_code == 303 and out.headers["location"] == "/signed-out"
    assert alice.get("/").status_code == 303
    assert "Signed out" in alice.get("/signed-out").text


def test_a_forged_callback_and_an_open_redirect_are_refused(console):
    client = console()
    client.get("/login")
    forged = client.get("/auth/callback?code=abc&state=made-up")
    assert forged.status_code == 401 and "Sign-in failed" in forged.text
    for elsewhere in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        client.cookies.clear()
        landed = through_provider(client, client.get(f"/login?next={elsewhere}"), "alice")
        assert landed.status_code == 303 and landed.headers["location"] == "/", elsewhere


def test_missing_secrets_are_named(breach, identity_provider):
    api, _ = breach
    auth = ConsoleSignInConfig(
        issuer=identity_provider.url, client_id="c", client_secret_env="AIMS_CONSOLE_CLIENT"
    )
    cfg = api.runtime.cfg.model_copy(update={"console": ConsoleConfig(sign_in=auth)})
    with pytest.raises(ConfigError) as caught:
        create_console(cfg, api.runtime.store, environ={"AIMS_CONSOLE_SESSION_SECRET": "short"})
    text = str(caught.value)
    assert "console.sign_in.session_secret_env" in text and "fewer than 32" in text
    assert "console.sign_in.client_secret_env: environment variable AIMS_CONSOLE_CLIENT" in text
    assert "short" not in text.replace("fewer", "")


def test_validate_and_the_console_command_name_a_missing_secret(
    tmp_path, reference_csv, identity_provider, monkeypatch, capsys
):
    import yaml

    from aims_agent.agent.cli import main
    from aims_agent.storage.store import Store
    from tests.conftest import READ_TOKEN_ENV, TOKEN_ENV, base_config

    data = base_config(reference_csv, tmp_path / "ev")
    data["console"] = {
        "enabled": True,
        "sign_in": {"issuer": identity_provider.url, "client_id": "c"},
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    (tmp_path / "ev").mkdir()
    Store(f"sqlite:///{tmp_path / 'ev' / 'aims.db'}").close()
    monkeypatch.setenv(TOKEN_ENV, "a-writer-token-value")
    monkeypatch.setenv(READ_TOKEN_ENV, "a-reader-token-value")
    monkeypatch.delenv("AIMS_CONSOLE_SESSION_SECRET", raising=False)
    for args in (["validate", str(path)], ["console", "--config", str(path), "--port", "0"]):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert "console.sign_in.session_secret_env: environment variable " in err, args
        assert "AIMS_CONSOLE_SESSION_SECRET is not set" in err, args
