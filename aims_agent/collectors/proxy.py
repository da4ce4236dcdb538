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

A sampled exchange with a 2xx answer is queued after its response has been sent and decoded
later by the runtime's `drain_tap` task, so decoding and storage are never on the response path.
The queue is bounded in bytes: when it is full, or storage pushes back, the sample is dropped
and counted; the request itself never waits for the monitor.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import random
import re
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
from yarl import URL

from aims_agent.collectors import protocols
from aims_agent.collectors.protocols._core import clean_path
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


@dataclass(frozen=True, slots=True)
class Exchange:
    """One sampled request / response pair, waiting to be decoded."""

    protocol: str
    encoding: str  # the response's Content-Encoding ("" for none)
    path: str
    request_id: str | None  # the client's, or None when the proxy generated it
    request: bytes
    response: bytes  # as the upstream sent it; `decoded()` undoes its content encoding
    received_at: float

    def decoded(self) -> bytes:
        """The response body without its content encoding; ValueError if it cannot be undone."""
        if self.encoding in ("", "identity"):
            return self.response
        return _decompress(self.response, self.encoding)

    @property
    def size(self) -> int:
        return len(self.request) + len(self.response)


class Tap:
    """The ASGI app of one model's proxy. `start()` opens the upstream pool, `close()` ends it."""

    def __init__(
        self,
        cfg: ProxyConfig,
        model: str,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
        chance: Callable[[], float] = random.random,
    ) -> None:
        self.cfg, self.model, self.clock, self.chance = cfg, model, clock, chance
        self.metrics = metrics
        self.upstream = cfg.upstream.rstrip("/")
        self._id_header = cfg.id_header.lower().encode("latin-1")
        self._requests = {
            o: metrics.proxy_requests.labels(model, o)
            for o in (
                "forwarded",
                "upstream_unreachable",
                "upstream_timeout",
                "upstream_broken",
                "too_large",
                "client_gone",
            )
        }
        self._not_sampled = metrics.proxy_samples.labels(model, "not_sampled")
        self._not_inference = metrics.proxy_samples.labels(model, "not_inference")
        self._not_2xx = metrics.proxy_samples.labels(model, "not_2xx")
        self._dropped = metrics.proxy_samples.labels(model, "dropped")
        self._latency = metrics.proxy_upstream.labels(model)
        self._queue: deque[Exchange] = deque()
        self._queued_bytes = 0
        self._ready = asyncio.Event()
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

    # the queue of sampled exchanges ------------------------------------------------------------

    def take(self, limit: int) -> list[Exchange]:
        """Up to `limit` queued exchanges, oldest first."""
        out: list[Exchange] = []
        while self._queue and len(out) < limit:
            ex = self._queue.popleft()
            self._queued_bytes -= ex.size
            out.append(ex)
        if not self._queue:
            self._ready.clear()
        return out

    async def wait(self) -> None:
        """Until an exchange is queued."""
        await self._ready.wait()

    def __len__(self) -> int:
        return len(self._queue)

    def _enqueue(self, ex: Exchange) -> None:
        if self._queued_bytes + ex.size > self.cfg.max_queued_bytes:
            self._dropped.inc()
            return
        self._queue.append(ex)
        self._queued_bytes += ex.size
        self._ready.set()

    # routing ---------------------------------------------------------------------------------

    def protocol_for(self, method: str, path: str) -> str | None:
        """The protocol to decode this request with, or None when it is not an inference call
        of the monitored model (health, metadata, another model on the same server)."""
        if method != "POST":
            return None
        clean = clean_path(path)
        cfg = self.cfg
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

    # the ASGI app ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # served with lifespan off; websockets are not proxied
            return
        method: str = scope["method"]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        target = raw_path + (b"?" + query if query else b"")

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
            self._requests["client_gone"].inc()
            return
        if body is None:
            self._requests["too_large"].inc()
            await _error(send, 413, f"request body exceeds {self.cfg.max_body_bytes} bytes", echo)
            return

        protocol = self.protocol_for(method, scope["path"])
        sampled = protocol is not None and self.chance() < self.cfg.sample_rate
        if protocol is None:
            self._not_inference.inc()
        elif not sampled:
            self._not_sampled.inc()

        assert self._session is not None, "Tap.start() was not awaited"
        url = URL(self.upstream + target.decode("latin-1"), encoded=True)
        started = time.perf_counter()
        try:
            upstream = await self._session.request(
                method, url, headers=headers, data=body, allow_redirects=False
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            await self._upstream_failed(send, exc, echo, "unreachable")
            return
        self._latency.observe(time.perf_counter() - started)

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
                    await self._upstream_failed(send, exc, echo, "broken")
                    return
                await send(start)
                await send({"type": "http.response.body", "body": whole, "more_body": False})
            else:
                whole = await self._stream(upstream, start, send, keep)
        finally:
            upstream.release()
        self._requests["forwarded"].inc()
        if sampled and not keep:
            self._not_2xx.inc()
        if keep and protocol is not None:  # (keep implies a protocol; this tells mypy)
            self._enqueue(
                Exchange(
                    protocol=protocol,
                    encoding=upstream.headers.get("Content-Encoding", "").lower(),
                    path=scope["path"],
                    request_id=None if generated else request_id.decode("latin-1"),
                    request=body,
                    response=whole,
                    received_at=self.clock(),
                )
            )

    async def _upstream_failed(
        self, send: Send, exc: Exception, echo: tuple[bytes, bytes], otherwise: str
    ) -> None:
        """Answer 504 for a timeout, else 502 for an upstream `otherwise` (unreachable, or a
        response broken off before any of it was passed on), and count it."""
        if isinstance(exc, TimeoutError):
            self._requests["upstream_timeout"].inc()
            await _error(send, 504, f"upstream timed out: {_describe(exc)}", echo)
        else:
            self._requests[f"upstream_{otherwise}"].inc()
            await _error(send, 502, f"upstream {otherwise}: {_describe(exc)}", echo)

    async def _stream(
        self, upstream: aiohttp.ClientResponse, start: Message, send: Send, keep: bool
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
            self._requests["upstream_broken"].inc()
            raise  # the client sees the connection end mid-response
        return b"".join(captured)

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


def _describe(exc: BaseException) -> str:
    detail = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {detail}"[:500]


def _decompress(body: bytes, encoding: str) -> bytes:
    try:
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, zlib.error, EOFError) as exc:
        raise ValueError(str(exc)) from None
    raise ValueError(f"content-encoding {encoding!r} is not decoded")


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
