"""Payload loggers: the request and the response of an inference, sent by the serving platform
after the fact as two events, paired here and decoded like a tapped exchange.

Senders, as their sources write them:

- KServe's InferenceService logger (kserve/kserve `pkg/logger`): CloudEvents in binary mode,
  `ce-type` `org.kubeflow.serving.inference.request` / `.response`, both halves with the same
  `ce-id` (the request's `Ce-Id` header, else a fresh UUID). `Ce-Time` is when the request came
  in / the response went out; `Ce-Metadata` a JSON object of the request headers the logger
  keeps (`metadataHeaders`), such as `{"X-Request-Id": ["abc"]}`. The bodies are the model
  server's own: a response may be gzipped (MLServer compresses large answers) and say so
  nowhere, and the content type is the request's for both halves.
- Seldon Core's executor logger (SeldonIO/seldon-core v1 `executor/logger`): `ce-type`
  `io.seldon.serving.inference.request` / `.response`, a fresh `ce-id` per half; the halves
  share `Ce-Requestid` (the Seldon-Puid the client got back) and `Ce-Modelid` (the graph node);
  `Ce-Protocol` is `seldon`, `tensorflow`, `v2` or `kfserving`; a gRPC call's body is protobuf.
- TrustyAI's consumer endpoint, as ModelMesh's payload processor posts to it: JSON
  `{"id", "kind": "request" | "response", "modelid", "data": base64 of the gRPC
  ModelInferRequest / ModelInferResponse}`.

`collectors.logger_pairs` pairs the halves and decodes each inference.
"""

from __future__ import annotations

import base64
import binascii
import gzip
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import unquote

import msgspec

from aims_agent.errors import PayloadError

Half = Literal["request", "response"]
_TYPES: dict[str, tuple[str, Half]] = {
    "org.kubeflow.serving.inference.request": ("kserve", "request"),
    "org.kubeflow.serving.inference.response": ("kserve", "response"),
    "io.seldon.serving.inference.request": ("seldon", "request"),
    "io.seldon.serving.inference.response": ("seldon", "response"),
}
# Seldon's Ce-Protocol -> decoder, for JSON bodies and protobuf (gRPC) ones
_SELDON: dict[str, tuple[str | None, str | None]] = {
    "seldon": ("seldon", None),
    "tensorflow": ("kserve-v1", None),
    "v2": ("oip-v2", "oip-v2-grpc"),
    "kfserving": ("oip-v2", "oip-v2-grpc"),
}
_GZIP = b"\x1f\x8b"
_MAX_ID = 256
_json = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One half of an inference, as a logger sent it."""

    key: str  # what pairs the two halves
    half: Half
    body: bytes  # content encoding undone
    protocol: str | None = None  # the decoder the sender names; None: told by the body
    time: float | None = None  # when it happened, per the sender (epoch seconds)
    request_id: str | None = None  # the id the client knows (its X-Request-Id, Seldon's puid)
    event_id: str | None = None  # ce-id: the client's Ce-Id header, or made up by the logger
    model: str | None = None  # the sender's model name (Seldon's modelid, ModelMesh's modelid)


@dataclass(frozen=True, slots=True)
class Pair:
    request: Event
    response: Event


def parse_cloudevent(headers: Mapping[str, str], body: bytes, *, id_header: str) -> Event:
    """A KServe or Seldon logger CloudEvent in binary mode; PayloadError names what is wrong.

    `id_header` is the request header (kept in `Ce-Metadata`) that holds the client's id."""
    ce_id, ce_type = headers.get("ce-id"), headers.get("ce-type") or ""
    if not ce_id:
        raise PayloadError("missing ce-id header: not a CloudEvent in binary mode")
    sender, half = _TYPES.get(ce_type, (None, None))
    if sender is None or half is None:
        raise PayloadError(f"ce-type {ce_type[:100]!r} is not one of {', '.join(_TYPES)}")
    body = _decompressed(body, headers.get("content-encoding", ""))
    protobuf = "protobuf" in headers.get("content-type", "")
    when = _time(headers.get("ce-time"))
    if sender == "seldon":
        request_id = _text(headers.get("ce-requestid"))
        model = _text(headers.get("ce-modelid"))
        json_protocol, grpc_protocol = _SELDON.get(
            (headers.get("ce-protocol") or "").lower(), (None, None)
        )
        protocol = grpc_protocol if protobuf else json_protocol
        if protobuf and protocol is None:
            raise PayloadError(
                "a Seldon protobuf payload of a protocol other than v2 is not decoded"
            )
        return Event(
            key=f"{model or ''}\x00{request_id or ce_id}",  # ce-id differs between the halves
            half=half,
            body=body,
            protocol=protocol,
            time=when,
            request_id=request_id,
            event_id=_text(ce_id),
            model=model,
        )
    return Event(
        key=ce_id[:_MAX_ID],
        half=half,
        body=body,
        protocol="oip-v2-grpc" if protobuf else None,
        time=when,
        request_id=_metadata_id(headers.get("ce-metadata"), id_header),
        event_id=_text(ce_id),
    )


def parse_partial(body: bytes) -> Event:
    """A ModelMesh payload partial as TrustyAI's `/consumer/kserve/v2` takes it."""
    try:
        doc = _json.decode(body)
    except msgspec.DecodeError as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None
    except RecursionError:
        raise PayloadError("body is not JSON: JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise PayloadError("body must be a JSON object with id, kind, modelid and data")
    kind, pid, data = doc.get("kind"), doc.get("id"), doc.get("data")
    if kind not in ("request", "response"):
        raise PayloadError(f"kind: must be request or response, got {str(kind)[:40]!r}")
    if not isinstance(pid, str) or not pid:
        raise PayloadError("id: a non-empty string is required")
    if not isinstance(data, str):
        raise PayloadError("data: base64 of the gRPC message is required")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError("data: not valid base64") from None
    model = doc.get("modelid")
    return Event(
        key=pid[:_MAX_ID],
        half=kind,
        body=raw,
        protocol="oip-v2-grpc",
        request_id=pid[:_MAX_ID],
        model=model if isinstance(model, str) else None,
    )


def _decompressed(body: bytes, encoding: str) -> bytes:
    """The body without gzip: said by Content-Encoding, or seen by its magic bytes (a logged
    response is the model server's, compressed or not, with no header saying which)."""
    if encoding.strip().lower() in ("gzip", "x-gzip") or body[:2] == _GZIP:
        try:
            return gzip.decompress(body)
        except (OSError, EOFError) as exc:
            raise PayloadError(f"gzip body cannot be decompressed: {exc}") from None
    if encoding.strip().lower() not in ("", "identity"):
        raise PayloadError(f"content-encoding {encoding[:40]!r} is not decoded")
    return body


def _time(value: str | None) -> float | None:
    """Ce-Time (RFC 3339) as epoch seconds; None if absent or unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(unquote(value).strip())
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


def _text(value: str | None) -> str | None:
    return unquote(value)[:_MAX_ID] if value else None


def _metadata_id(value: str | None, header: str) -> str | None:
    """The client's id in KServe's Ce-Metadata: `{"X-Request-Id": ["abc"]}` (header names as
    Go writes them; percent-encoded when the sender follows the CloudEvents HTTP binding)."""
    if not value:
        return None
    doc: Any = None
    for text in (value, unquote(value)):
        try:
            doc = _json.decode(text)
            break
        except (msgspec.DecodeError, RecursionError):
            continue
    if not isinstance(doc, dict):
        return None
    wanted = header.lower()
    for name, values in doc.items():
        if str(name).lower() == wanted:
            first = values[0] if isinstance(values, list) and values else values
            return first[:_MAX_ID] if isinstance(first, str) and first else None
    return None
