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
Content-Security-Policy allows nothing else. This version is read-only and, without an identity
provider to sign people in, answers loopback clients only, and says so on every page.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from aims_agent.agent.console import views
from aims_agent.agent.console.chart import history_chart
from aims_agent.config import Config
from aims_agent.errors import LedgerTamperedError, PeriodError, StorageError
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
}
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
ENV = Environment(
    loader=PackageLoader("aims_agent.agent.console", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html", "svg"), default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters["words"] = lambda v: "-" if v is None else str(v).replace("_", " ")
ENV.filters["num"] = lambda v: f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else v)


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_console(cfg: Config, store: Store, *, clock: Callable[[], float] = time.time) -> FastAPI:
    """The console as an ASGI app (mount it, or serve it alone)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    verified: dict[bool, tuple[Any, float]] = {}  # last verification, monotonic time
    css = resources.files("aims_agent.agent.console").joinpath("static/console.css").read_bytes()

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if not _loopback(request.client.host if request.client else None):
            response: Response = error_page(
                request, 403, "Loopback only", "No identity provider is configured: the console "
                "answers this machine only (open it through a port-forward or an SSH tunnel).",
            )  # fmt: skip
        else:
            response = await call_next(request)
        response.headers.update(HEADERS)
        return response

    def page(name: str, request: Request, **context: Any) -> str:
        root = request.scope.get("root_path", "")
        return ENV.get_template(name).render(root=root, **context)

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

    @app.get("/nonconformities/{nc_id}", response_class=HTMLResponse)
    async def record(request: Request, nc_id: str) -> Response:
        got = await read(request, lambda conn: views.nonconformity(conn, nc_id))
        if isinstance(got, Response):
            return got
        data, ledger = got
        if data is None:
            return not_found(request, f"no nonconformity {nc_id!r}")
        return HTMLResponse(page("nc.html", request, ledger=ledger, **data))

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
