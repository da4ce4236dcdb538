"""The governance console: server-rendered pages over the evidence store, for the people who run
the AI management system (AIMS owner, risk officer, internal auditor, control owner).

`aims-agent console --config FILE` serves it alone (one console can read the shared PostgreSQL
store of a fleet of agents); `console: {enabled: true}` mounts it at /console of the agent's
own port. Every page has a stable URL to paste into an audit working paper:

    /console/                                   overview: models, checks, open work, incidents
    /console/controls                           Annex A controls x models, freshness, the SoA
    /console/models/{model}/checks/{check}      a check's runs against its thresholds
    /console/nonconformities?model=&status=&severity=&source=&overdue=1
    /console/nonconformities/{nc_id}            one record and its dated history, with people
    /console/audit-pack                         a period's report, OSCAL, ledger state, SHA-256s

Each page verifies the evidence ledger first, as the API's reads do (a broken chain is a 409
page naming the first bad entry; `?allow_unverified=true` shows it stamped UNVERIFIED) and
states the ledger head, its signature and when it was verified. Jinja2 templates with
autoescaping, one stylesheet served by the app, no script, no request leaving the page: the
Content-Security-Policy allows nothing else.

With `console.sign_in` people sign in through an OpenID Connect provider (`signin`): viewers
read, governance works nonconformities through the lifecycle forms (`forms`: the API's rules
and refusals, a CSRF token on every form), admins also read an unverified ledger. Without it
the console is read-only, answers loopback clients only, and says so on every page.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

import msgspec
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from aims_agent.agent.api.common import read_body
from aims_agent.agent.console import forms, signin, views
from aims_agent.agent.console.chart import history_chart
from aims_agent.agent.console.pages import ENV
from aims_agent.config import Config
from aims_agent.errors import (
    AimsError,
    LedgerTamperedError,
    PayloadError,
    PayloadTooLargeError,
    PeriodError,
    StorageError,
)
from aims_agent.exporters import lifecycle
from aims_agent.storage.store import Store

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# a page reuses the ledger verification of the last few seconds (the page states when it was
# done): re-checking 10,000 nonconformities' digests costs ~100 ms, the whole page budget
VERIFIED_FOR = 5.0
# what a page says when it cannot show what was asked (the error pages' status and title)
FAILURES: dict[type[Exception], tuple[int, str]] = {
    PeriodError: (422, "Period not understood"),
    LedgerTamperedError: (409, "Evidence ledger does not verify"),
    StorageError: (503, "Evidence store unavailable"),
    PayloadError: (400, "Form not understood"),
    PayloadTooLargeError: (413, "Form too large"),
}
# what anybody may open without signing in, when people sign in
OPEN = frozenset({"/login", "/auth/callback", "/signed-out", "/static/console.css"})
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_console(
    cfg: Config,
    store: Store,
    *,
    clock: Callable[[], float] = time.time,
    environ: Mapping[str, str] | None = None,
    on_change: Callable[[], None] | None = None,
) -> FastAPI:
    """The console as an ASGI app (mount it, or serve it alone). `environ` holds the sign-in
    secrets (default: the process's environment); `on_change` runs after a record closes."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    verified: dict[bool, tuple[Any, float]] = {}  # last verification, monotonic time
    css = resources.files("aims_agent.agent.console").joinpath("static/console.css").read_bytes()
    auth = cfg.console.sign_in
    env = os.environ if environ is None else environ
    provider, session_key = None, ""
    if auth is not None:
        session_key, client_secret = signin.secrets_of(cfg, env)
        provider = signin.oauth_client(auth, client_secret)

    def refuse(request: Request) -> Response | None:
        """Who may not have this page: without sign-in, anyone not on this machine and every
        change; with it, anyone not signed in (sent to sign in) or without a console role."""
        root = request.scope.get("root_path", "")
        path = request.url.path.removeprefix(root) or "/"
        if auth is None:
            if not _loopback(request.client.host if request.client else None):
                return error_page(
                    request, 403, "Loopback only", "No identity provider is configured: the "
                    "console answers this machine only (open it through a port-forward or an "
                    "SSH tunnel).",
                )  # fmt: skip
            if request.method not in ("GET", "HEAD"):
                return error_page(request, 403, "Read-only", "Nobody signs in here, so nothing "
                                  "can be changed.")  # fmt: skip
            return None
        if path in OPEN:
            return None
        found = signin.person(request)
        if found is None:
            if request.method in ("GET", "HEAD"):
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"{root}/login?next={quote(target)}", status_code=303)
            return error_page(request, 401, "Not signed in", "Sign in, then try again.")
        request.state.person = found
        if not found.roles and path != "/logout":  # anyone signed in may sign out
            return error_page(
                request, 403, "No console role", f"{found.actor.label} is signed in, but the "
                f"identity provider gives no console role (claim {auth.roles_claim!r}).",
            )  # fmt: skip
        wants = request.query_params.get("allow_unverified") == "true"
        if wants and not found.may("unverified"):
            return error_page(request, 403, "Admins only", "Reading a ledger that does not "
                              "verify needs the admin role.")  # fmt: skip
        return None

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = refuse(request) or await call_next(request)
        response.headers.update(HEADERS)
        return response

    if auth is not None:
        from starlette.middleware.sessions import SessionMiddleware

        app.add_middleware(
            SessionMiddleware,
            secret_key=session_key,
            session_cookie=signin.SESSION_COOKIE,
            max_age=int(auth.session_hours * 3600),
            same_site="lax",
            https_only=auth.secure_cookie,
        )

    def page(name: str, request: Request, **context: Any) -> str:
        root = request.scope.get("root_path", "")
        who = getattr(request.state, "person", None)
        return ENV.get_template(name).render(root=root, person=who, signin=auth is not None,
                                             **context)  # fmt: skip

    async def read(request: Request, fn: Callable[[Any], Any]) -> tuple[Any, Any] | Response:
        """Verify the ledger, then read; a broken chain or a failing store is a page saying so."""
        from aims_agent.exporters.ledger_check import check_store

        allow = request.query_params.get("allow_unverified") == "true"
        try:
            state, at = verified.get(allow, (None, 0.0))
            if state is None or time.monotonic() - at > VERIFIED_FOR:
                state = await asyncio.to_thread(
                    check_store, store, evidence_dir=cfg.agent.evidence_dir,
                    allow_unverified=allow,
                )  # fmt: skip
                verified[allow] = (state, time.monotonic())
            data = await asyncio.to_thread(store.read, fn)
        except (LedgerTamperedError, StorageError) as exc:
            return failure(request, exc)
        return data, state.statement()

    def error_page(
        request: Request, status: int, title: str, message: str, **headers: str
    ) -> HTMLResponse:
        body = page(
            "error.html", request, status=status, title=title, message=message, ledger=None,
            unverified_link=status == 409,
        )  # fmt: skip
        return HTMLResponse(body, status_code=status, headers=headers)

    def failure(request: Request, exc: Exception) -> HTMLResponse:
        status, title = next(v for kind, v in FAILURES.items() if isinstance(exc, kind))
        headers = {"Retry-After": "5"} if status == 503 else {}
        return error_page(request, status, title, str(exc), **headers)

    def not_found(request: Request, what: str) -> HTMLResponse:
        return error_page(request, 404, "Not found", what)

    if auth is not None and provider is not None:
        from aims_agent.agent.console.routes import sign_in_routes

        sign_in_routes(app, auth, provider, error_page=error_page, page=page)

    @app.get("/static/console.css", include_in_schema=False)
    async def stylesheet() -> Response:
        return Response(css, media_type="text/css")

    @app.get("/", response_class=HTMLResponse)
    async def overview(request: Request) -> Response:
        now = clock()
        got = await read(request, lambda conn: views.overview(conn, cfg, now))
        if isinstance(got, Response):
            return got
        data, ledger = got
        return HTMLResponse(page("overview.html", request, ledger=ledger, **data))

    @app.get("/controls", response_class=HTMLResponse)
    async def controls(request: Request) -> Response:
        now = clock()
        got = await read(request, lambda conn: views.controls(conn, cfg, now))
        if isinstance(got, Response):
            return got
        soa, ledger = got
        hours = cfg.console.freshness_hours
        return HTMLResponse(page("controls.html", request, ledger=ledger, soa=soa, hours=hours))

    @app.get("/models/{model}/checks/{check_id}", response_class=HTMLResponse)
    async def check(request: Request, model: str, check_id: str) -> Response:
        m = next((x for x in cfg.models if x.name == model), None)
        c = next((x for x in m.checks if x.id == check_id), None) if m else None
        if m is None or c is None:
            return not_found(request, f"no check {check_id!r} of a model {model!r} configured")
        got = await read(request, lambda conn: views.check_history(conn, m, check_id))
        if isinstance(got, Response):
            return got
        data, ledger = got
        svg = history_chart(data["runs"], label=f"{model} / {check_id}")
        return HTMLResponse(
            page("check.html", request, ledger=ledger, model=m, check=c, chart=svg, **data)
        )

    @app.get("/nonconformities", response_class=HTMLResponse)
    async def register(
        request: Request,
        model: str = "",
        status: str = "",
        severity: str = "",
        source: str = "",
        overdue: bool = False,
        page_no: int = Query(1, alias="page", ge=1, le=1_000_000),
    ) -> Response:
        now = clock()
        filters = {"model": model, "status": status, "severity": severity, "source": source}
        got = await read(
            request,
            lambda conn: views.nonconformities(conn, now, overdue=overdue, page=page_no, **filters),
        )
        if isinstance(got, Response):
            return got
        (rows, total), ledger = got
        pages = max(1, -(-total // views.PAGE))
        query = urlencode({**filters, **({"overdue": 1} if overdue else {})})
        return HTMLResponse(
            page("ncs.html", request, ledger=ledger, ncs=rows, total=total, filters=filters,
                 overdue=overdue, models=[m.name for m in cfg.models], page_no=page_no,
                 pages=pages, query=query)
        )  # fmt: skip

    async def show_record(
        request: Request, nc_id: str, problem: forms.Problem | None = None,
        values: Mapping[str, str] | None = None,
    ) -> Response:  # fmt: skip
        got = await read(request, lambda conn: views.nonconformity(conn, nc_id))
        if isinstance(got, Response):
            return got
        data, ledger = got
        if data is None:
            return not_found(request, f"no nonconformity {nc_id!r}")
        who: signin.Person | None = getattr(request.state, "person", None)
        status = data["nc"]["status"]
        form = who is not None and who.may("work") and status not in lifecycle.TERMINAL
        body = page(
            "nc.html", request, ledger=ledger, form=form, csrf=who.csrf if who else "",
            allowed=lifecycle.TRANSITIONS[status],
            steps=[(a, a.replace("_", " ")) for a in lifecycle.TRANSITIONS[status]],
            problem=problem, values=forms.current(data["nc"]) if values is None else values,
            done=request.query_params.get("done"), **data,
        )  # fmt: skip
        return HTMLResponse(body, status_code=problem.status if problem else 200)

    @app.get("/nonconformities/{nc_id}", response_class=HTMLResponse)
    async def record(request: Request, nc_id: str) -> Response:
        return await show_record(request, nc_id)

    @app.post("/nonconformities/{nc_id}", response_class=HTMLResponse)
    async def work(request: Request, nc_id: str) -> Response:
        """One lifecycle step from the record's form, as the API's PATCH makes it."""
        who: signin.Person = request.state.person
        try:
            values = forms.parse(await read_body(request, forms.FORM_BYTES))
        except AimsError as exc:
            return failure(request, exc)
        if not signin.csrf_ok(who, values.get("csrf")):
            return error_page(request, 403, "Form refused", "The form did not come from this "
                              "session (it expired, or another site sent it): reload the "
                              "record and try again.")  # fmt: skip
        if not who.may("work"):
            why = f"{who.actor.label} ({who.role_names}) may read but not work nonconformities."
            return error_page(request, 403, "Not allowed", why)
        try:
            found = await asyncio.to_thread(store.read, lambda c: views.nonconformity(c, nc_id))
            record = forms.current(found["nc"]) if found else {}
            change = forms.change_of(values, record, reviewer=who.actor.label, now=clock())
            done = await store.write(
                lifecycle.apply(
                    nc_id, change, actor=who.actor, now=clock(),
                    duties=cfg.agent.segregation_of_duties,
                )
            )  # fmt: skip
        except msgspec.ValidationError as exc:
            return await show_record(request, nc_id, forms.invalid(exc), values)
        except tuple(forms.REFUSALS) as exc:
            return await show_record(request, nc_id, forms.refused(exc), values)
        except StorageError as exc:
            return failure(request, exc)
        verified.clear()  # the ledger moved on: state the new head
        if done.status in lifecycle.TERMINAL and on_change is not None:
            await asyncio.to_thread(on_change)
        events = quote(",".join(done.events))
        root = request.scope.get("root_path", "")
        return RedirectResponse(f"{root}/nonconformities/{nc_id}?done={events}", status_code=303)

    @app.get("/audit-pack", response_class=HTMLResponse)
    async def audit(request: Request) -> Response:
        this_month = time.strftime("%Y-%m", time.gmtime(clock()))
        return HTMLResponse(page("audit.html", request, ledger=None, period=this_month))

    @app.get("/audit-pack.zip", response_model=None)
    async def audit_zip(request: Request, period: str = "") -> Response:
        from aims_agent.exporters.audit_pack import audit_pack

        allow = request.query_params.get("allow_unverified") == "true"
        try:
            name, body = await asyncio.to_thread(
                audit_pack, store, cfg, period, now=clock(), allow_unverified=allow
            )
        except (PeriodError, LedgerTamperedError, StorageError) as exc:
            return failure(request, exc)
        return Response(
            body,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return app
