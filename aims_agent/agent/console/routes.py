"""Signing in and out: `/login` sends the browser to the provider (state, nonce and the PKCE
verifier kept in the session), `/auth/callback` takes the code back, checks everything and
starts the person's session, `/logout` (a form, with its CSRF token) ends it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from aims_agent.agent.api.common import read_body
from aims_agent.agent.console import forms, signin
from aims_agent.config import ConsoleSignInConfig
from aims_agent.errors import AimsError


def _failures() -> tuple[type[Exception], ...]:
    """What a failed sign-in raises: Authlib's and joserfc's errors (a bad state, code,
    signature, nonce or claim)."""
    from authlib.common.errors import AuthlibBaseError
    from joserfc.errors import JoseError

    return (AuthlibBaseError, JoseError, KeyError, ValueError)


def sign_in_routes(
    app: FastAPI,
    cfg: ConsoleSignInConfig,
    provider: Any,
    *,
    error_page: Callable[..., HTMLResponse],
    page: Callable[..., str],
) -> None:
    import httpx

    failed = _failures()
    either: tuple[type[Exception], ...] = (httpx.HTTPError, *failed)

    def callback_url(request: Request) -> str:
        if cfg.public_url:
            return cfg.public_url.rstrip("/") + "/auth/callback"
        return str(request.url_for("callback"))

    def unreachable(request: Request, exc: Exception) -> HTMLResponse:
        return error_page(
            request, 503, "Identity provider unreachable",
            f"Cannot reach {cfg.issuer}: {type(exc).__name__}. Try again shortly.",
            **{"Retry-After": "5"},
        )  # fmt: skip

    @app.get("/login", response_model=None)
    async def login(request: Request, target: str = Query("", alias="next")) -> Response:
        root = request.scope.get("root_path", "")
        request.session["next"] = signin.safe_next(target, root)
        try:
            redirect: Response = await provider.authorize_redirect(request, callback_url(request))
        except either as exc:
            return unreachable(request, exc)
        return redirect

    @app.get("/auth/callback", name="callback", response_model=None)
    async def callback(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        target = signin.safe_next(request.session.get("next"), root)
        try:
            token = await provider.authorize_access_token(request)
            issuer = (await provider.load_server_metadata()).get("issuer")
        except httpx.HTTPError as exc:
            return unreachable(request, exc)
        except failed as exc:
            return error_page(
                request, 401, "Sign-in failed",
                f"The identity provider's answer was refused: {exc}. Sign in again.",
            )  # fmt: skip
        claims = token.get("userinfo")
        if issuer != cfg.issuer or not claims or claims.get("iss") != cfg.issuer:
            return error_page(
                request, 401, "Sign-in failed",
                f"The ID token was not issued by {cfg.issuer}. Sign in again.",
            )  # fmt: skip
        signin.sign_in(request, claims, cfg)
        return RedirectResponse(target, status_code=303)

    @app.post("/logout", response_model=None)
    async def logout(request: Request) -> Response:
        who = signin.person(request)
        try:
            values = forms.parse(await read_body(request, forms.FORM_BYTES))
        except AimsError:
            values = {}
        if who is None or not signin.csrf_ok(who, values.get("csrf")):
            return error_page(request, 403, "Form refused", "The sign-out form did not come "
                              "from this session.")  # fmt: skip
        request.session.clear()
        root = request.scope.get("root_path", "")
        return RedirectResponse(f"{root}/signed-out", status_code=303)

    @app.get("/signed-out", response_class=HTMLResponse)
    async def signed_out(request: Request) -> HTMLResponse:
        return HTMLResponse(page("signed_out.html", request, ledger=None))
