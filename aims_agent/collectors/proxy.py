"""The reverse-proxy tap: an ASGI app in front of the model server.

Every request is forwarded to the upstream over pooled keep-alive connections and its response
passed back unchanged: status, headers and the raw body bytes, whatever the content encoding.
A response of up to 1 MiB with a Content-Length is read whole first, larger or unsized ones
stream. Only hop-by-hop headers are dropped, `X-Forwarded-For` / `-Host` are added, and the
request id header (default `X-Request-ID`) is generated when the client sent none and echoed on
the response. An upstream that cannot be reached answers 502, one that does not answer in time
504, one that breaks off a response not yet passed on 502, each with the error in a JSON body.
No cookie jar: the tap never keeps one client's cookies for another.

The upstream client is aiohttp's: on one core it carries several times the requests per
second of httpx's async client (measured with `wrk` against a trivial upstream), which decides
whether the tap keeps up with the model server.

One tap may serve several models (a multi-model server on one port): each call goes to the
model its path names (`/v2/models/{name}/...`, `/v1/models/{name}:predict`) or whose
`inference_path` it is (`collectors.tap.Routes`); a call naming no configured model passes
through unsampled and is counted under the model label "".

A sampled exchange with a 2xx answer is queued after its response has been sent and decoded
later by the tap's drain (`collectors.tap_drain`), so decoding and storage are never on the
response path. The queue is bounded in bytes: when it is full, or storage pushes back, the
sample is dropped and counted; the request itself never waits for the monitor. The exchange
keeps what decoding needs besides the bodies: both content encodings, the binary data
extension's `Inference-Header-Content-Length`s, and the request id the client sent or, when it
sent none, the one the tap made up and returned.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import aiohttp
import msgspec
from yarl import URL

from aims_agent.collectors import protocols
from aims_agent.collectors.protocols._core import clean_path
from aims_agent.collectors.tap import UNROUTED, Exchange, ExchangeQueue, Routes
from aims_agent.config import ProxyConfig
from aims_agent.errors import ClientGoneError
from aims_agent.metrics import Metrics

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# RFC 9110 7.6.1, plus the proxy headers a client may not forward
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_MODEL_IN_PATH = re.compile(r"/v[12]/models/([^/:]+)")
_json = msgspec.json.Encoder()
_WHOLE = 1 << 20  # responses up to this Content-Length are read whole before answering
_JSON_LENGTH = b"inference-header-content-length"  # the binary data extension's


_OUTCOMES = (
    "forwarded",
    "upstream_unreachable",
    "upstream_timeout",
    "upstream_broken",
    "too_large",
    "client_gone",
)


class _Counters:
    """One model's (or the unrouted calls') series, bound once."""

    def __init__(self, metrics: Metrics, model: str) -> None:
        self.requests = {o: metrics.proxy_requests.labels(model, o) for o in _OUTCOMES}
        self.samples = {
            o: metrics.proxy_samples.labels(model, o)
            for o in ("not_sampled", "not_inference", "not_2xx", "dropped", "unknown_model")
        }
        self.latency = metrics.proxy_upstream.labels(model)


class Tap:
    """The ASGI app of one listener's proxy, for the models behind it. `start()` opens the
    upstream pool, `close()` ends it; sampled exchanges wait in `queue`."""

    def __init__(
        self,
        models: Mapping[str, ProxyConfig],
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
        chance: Callable[[], float] = random.random,
    ) -> None:
        self.routes = Routes(models)
        self.cfg = cfg = self.routes.first  # the listener's settings, the same for all
        self.clock, self.chance, self.metrics = clock, chance, metrics
        self.upstream = cfg.upstream.rstrip("/")
        self.queue = ExchangeQueue(cfg.max_queued_bytes)
        self._id_header = cfg.id_header.lower().encode("latin-1")
        self._counters = {name: _Counters(metrics, name) for name in models}
        self._owner = UNROUTED if self.routes.shared else next(iter(models))
        self._counters.setdefault(self._owner, _Counters(metrics, self._owner))
        self._paths = {
            c.inference_path.rstrip("/"): name
            for name, c in models.items()
            if c.inference_path is not None
        }
        self._session: aiohttp.ClientSession | None = None

    # lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.cfg
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=cfg.max_connections, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(
                total=None, connect=cfg.connect_timeout_seconds, sock_read=cfg.timeout_seconds
            ),
            auto_decompress=False,  # the raw bytes go back to the client
            cookie_jar=aiohttp.DummyCookieJar(),  # one client's cookies are never another's
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            trust_env=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # routing ---------------------------------------------------------------------------------

    def route(self, method: str, path: str) -> tuple[str | None, str | None]:
        """(model, protocol) of a call: the model it is for (None: a model not configured) and
        the protocol to decode it with (None: not an inference call)."""
        if not self.routes.shared:
            return self._owner, protocol_for(self.cfg, method, path)
        clean = clean_path(path)
        model = self._paths.get(clean)
        if model is None:
            found = _MODEL_IN_PATH.search(clean)
            model = self.routes.model_named(found.group(1)) if found else None
        if model is not None:
            return model, protocol_for(self.routes.models[model], method, path)
        inference = method == "POST" and protocols.detect(clean) is not None
        return None, "unrouted" if inference else None

    # the ASGI app ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # served with lifespan off; websockets are not proxied
            return
        method: str = scope["method"]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        target = raw_path + (b"?" + query if query else b"")
        model, protocol = self.route(method, scope["path"])
        counters = self._counters[self._owner if model is None else model]

        headers: list[tuple[str, str]] = []
        request_id: bytes | None = None
        drop = HOP_BY_HOP
        for name, value in scope["headers"]:
            if name == b"connection":  # headers named in Connection are hop-by-hop too
                drop = drop | {t.strip().lower() for t in value.split(b",")}
        for name, value in scope["headers"]:
            if name in drop or name == b"host":
                if name == b"host":
                    headers.append(("x-forwarded-host", value.decode("latin-1")))
                continue
            if name == self._id_header:
                request_id = value
            headers.append((name.decode("latin-1"), value.decode("latin-1")))
        client = scope.get("client")
        if client:
            headers.append(("x-forwarded-for", client[0]))
        generated = request_id is None
        if request_id is None:
            request_id = os.urandom(16).hex().encode()
            headers.append((self.cfg.id_header, request_id.decode()))
        echo = (self._id_header, request_id)

        try:
            body = await self._read_body(receive)
        except ClientGoneError:  # a partial request is never forwarded
            counters.requests["client_gone"].inc()
            return
        if body is None:
            counters.requests["too_large"].inc()
            await _error(send, 413, f"request body exceeds {self.cfg.max_body_bytes} bytes", echo)
            return

        sampled = False
        if protocol is None:
            counters.samples["not_inference"].inc()
        elif model is None:
            counters.samples["unknown_model"].inc()
        elif self.chance() < self.routes.models[model].sample_rate:
            sampled = True
        else:
            counters.samples["not_sampled"].inc()

        assert self._session is not None, "Tap.start() was not awaited"
        url = URL(self.upstream + target.decode("latin-1"), encoded=True)
        started = time.perf_counter()
        try:
            upstream = await self._session.request(
                method, url, headers=headers, data=body, allow_redirects=False
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            await _upstream_failed(send, exc, echo, "unreachable", counters)
            return
        counters.latency.observe(time.perf_counter() - started)

        out, echoed = [], False
        for k, v in upstream.raw_headers:
            lower = k.lower()
            if lower not in HOP_BY_HOP:
                out.append((k, v))
                echoed = echoed or lower == self._id_header
        if not echoed:
            out.append(echo)
        keep = sampled and 200 <= upstream.status < 300
        start = {"type": "http.response.start", "status": upstream.status, "headers": out}
        length = upstream.content_length
        try:
            if length is not None and length <= _WHOLE:
                # read first: an upstream that fails mid-body is still a clean 502 / 504
                try:
                    whole = await upstream.read()
                except (TimeoutError, aiohttp.ClientError) as exc:
                    await _upstream_failed(send, exc, echo, "broken", counters)
                    return
                await send(start)
                await send({"type": "http.response.body", "body": whole, "more_body": False})
            else:
                whole = await _stream(upstream, start, send, keep, counters)
        finally:
            upstream.release()
        counters.requests["forwarded"].inc()
        if sampled and not keep:
            counters.samples["not_2xx"].inc()
        if keep and model is not None and protocol is not None:  # (keep implies both)
            ex = Exchange(
                model=model,
                protocol=protocol,
                path=scope["path"],
                request=body,
                response=whole,
                received_at=self.clock(),
                request_id=None if generated else request_id.decode("latin-1"),
                echoed_id=request_id.decode("latin-1") if generated else None,
                request_encoding=_header(scope["headers"], b"content-encoding") or "",
                response_encoding=upstream.headers.get("Content-Encoding", ""),
                header_lengths=(
                    _length(_header(scope["headers"], _JSON_LENGTH)),
                    _length(upstream.headers.get(_JSON_LENGTH.decode())),
                ),
            )
            if not self.queue.put(ex):
                counters.samples["dropped"].inc()

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole request body, or None (after reading it to the end) if it is too large.
        Raises ClientGoneError if the client left before sending all of it."""
        chunks, size, limit = [], 0, self.cfg.max_body_bytes
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGoneError
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if size > limit:
            return None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _upstream_failed(
    send: Send, exc: Exception, echo: tuple[bytes, bytes], otherwise: str, counters: _Counters
) -> None:
    """Answer 504 for a timeout, else 502 for an upstream `otherwise` (unreachable, or a
    response broken off before any of it was passed on), and count it."""
    if isinstance(exc, TimeoutError):
        counters.requests["upstream_timeout"].inc()
        await _error(send, 504, f"upstream timed out: {_describe(exc)}", echo)
    else:
        counters.requests[f"upstream_{otherwise}"].inc()
        await _error(send, 502, f"upstream {otherwise}: {_describe(exc)}", echo)


async def _stream(
    upstream: aiohttp.ClientResponse, start: Message, send: Send, keep: bool, counters: _Counters
) -> bytes:
    """Pass a large or unsized response on as it arrives; returns it whole if `keep`."""
    captured: list[bytes] = []
    try:
        await send(start)
        async for chunk in upstream.content.iter_any():
            if keep:
                captured.append(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except (aiohttp.ClientError, TimeoutError):
        counters.requests["upstream_broken"].inc()
        raise  # the client sees the connection end mid-response
    return b"".join(captured)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _length(value: str | None) -> int | None:
    """An Inference-Header-Content-Length; a malformed one is taken as absent (the body is
    then read as JSON, and fails to decode if it is not)."""
    return int(value) if value is not None and value.strip().isdigit() else None


def protocol_for(cfg: ProxyConfig, method: str, path: str) -> str | None:
    """The protocol to decode a call of this model with, or None when it is not one of its
    inference calls (health, metadata, another model on the same server)."""
    if method != "POST":
        return None
    clean = clean_path(path)
    if cfg.inference_path is not None and clean != cfg.inference_path.rstrip("/"):
        return None
    name: str | None = cfg.protocol
    if name == "auto":
        name = protocols.detect(clean)
    elif cfg.inference_path is None:
        route = protocols.PROTOCOLS[cfg.protocol].route
        if route is not None and not route.search(clean):
            return None
    if name is not None and cfg.upstream_model is not None:
        found = _MODEL_IN_PATH.search(clean)
        if found is not None and found.group(1) != cfg.upstream_model:
            return None
    return name


def _describe(exc: BaseException) -> str:
    detail = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {detail}"[:500]


async def _error(send: Send, status: int, message: str, echo: tuple[bytes, bytes]) -> None:
    body = _json.encode({"error": message})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                echo,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
