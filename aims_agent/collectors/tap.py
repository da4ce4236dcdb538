"""What the HTTP and the gRPC tap share: the sampled exchange, the bounded queue it waits in
until it is decoded off the call path, and the routing of one listener's calls to the models
behind it.

One tap listens for one or more models. With one model, every call of the tap's protocol is
that model's (unless `upstream_model` names another). With several, a call goes to the model
whose route (`config.route_key`: its `inference_path`, else `upstream_model`, else its name)
the call names; a call naming no configured model passes through unsampled and is counted
under the model label "".
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from aims_agent.config import TapConfig
from aims_agent.config.model import route_key

C = TypeVar("C", bound=TapConfig)
UNROUTED = ""  # the model label of calls that name no configured model


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """One sampled request / response pair of a model, waiting to be decoded."""

    model: str
    protocol: str
    path: str  # the URL path, or the gRPC method
    request: bytes
    response: bytes  # as the upstream sent it; `bodies()` undoes the content encodings
    received_at: float
    request_id: str | None = None  # the id header (or gRPC metadata) the client sent
    echoed_id: str | None = None  # the id the tap made up and returned, when the client sent none
    request_encoding: str = ""  # Content-Encoding ("" for none)
    response_encoding: str = ""
    header_lengths: tuple[int | None, int | None] = (None, None)  # binary data extension

    def bodies(self) -> tuple[bytes, bytes]:
        """Request and response without their content encodings; ValueError if one cannot be
        undone."""
        return decompress(self.request, self.request_encoding), decompress(
            self.response, self.response_encoding
        )

    @property
    def size(self) -> int:
        return len(self.request) + len(self.response)


def decompress(body: bytes, encoding: str) -> bytes:
    """`body` without its content encoding (gzip, deflate or none); ValueError otherwise."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    try:
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, zlib.error, EOFError) as exc:
        raise ValueError(f"{encoding} body cannot be decompressed: {exc}") from None
    raise ValueError(f"content-encoding {encoding[:40]!r} is not decoded")


class ExchangeQueue:
    """Sampled exchanges waiting to be decoded, bounded in bytes: `put` refuses what does not
    fit (the caller counts it dropped), so the calls themselves never wait for the monitor."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._queue: deque[Exchange] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()

    def put(self, ex: Exchange) -> bool:
        if self._bytes + ex.size > self.max_bytes:
            return False
        self._queue.append(ex)
        self._bytes += ex.size
        self._ready.set()
        return True

    def take(self, limit: int) -> list[Exchange]:
        """Up to `limit` queued exchanges, oldest first."""
        out: list[Exchange] = []
        while self._queue and len(out) < limit:
            ex = self._queue.popleft()
            self._bytes -= ex.size
            out.append(ex)
        if not self._queue:
            self._ready.clear()
        return out

    async def wait(self) -> None:
        """Until an exchange is queued."""
        await self._ready.wait()

    def __len__(self) -> int:
        return len(self._queue)


class Routes(Generic[C]):
    """The models one listener serves, by the route their calls name."""

    def __init__(self, models: Mapping[str, C]) -> None:
        if not models:
            raise ValueError("a tap serves at least one model")
        self.models = dict(models)
        self.by_key = {route_key(cfg, name): name for name, cfg in models.items()}
        self.first = next(iter(self.models.values()))  # listener settings are the same for all

    @property
    def shared(self) -> bool:
        return len(self.models) > 1

    def model_named(self, name: str | None) -> str | None:
        """The model whose calls carry the model name `name` (None: the call names none)."""
        if not self.shared:
            only, cfg = next(iter(self.models.items()))
            wanted = cfg.upstream_model
            return only if wanted is None or name is None or name == wanted else None
        return None if name is None else self.by_key.get(name)
