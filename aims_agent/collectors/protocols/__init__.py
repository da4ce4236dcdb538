"""Decoders of model-server protocols: one request/response pair -> push-shaped prediction records.

Shared by the HTTP and gRPC taps and the payload-logger receiver. Pure functions of the
two bodies: no I/O, no clock. Each record is `{"id", "features": {name: value}, "prediction",
"score"?}`, one per row of a batch, ready for the push collector's schema validation (which
judges types and missing values; the decoders only judge the protocol).

Ids (README, "record ids"): the first of `request_id` (the id header the client sent), the
request body's `mapping.id_field`, the response body's, and `echoed_id` (the id a tap made up
and returned) is the record's id, the others its `aliases`: a label posted under any of them
joins it. With none, a digest of both bodies (stable across replays). A batch of more than one
row appends `-{row}` to each.
"""

from __future__ import annotations

from aims_agent.collectors.protocols import (
    kserve_v1,
    mlflow,
    oip_grpc,
    oip_v2,
    plain_json,
    seldon,
)
from aims_agent.collectors.protocols._core import Decoder, Mapping, clean_path
from aims_agent.errors import ProtocolError, UnknownAliasError

__all__ = ["PROTOCOLS", "Decoder", "Mapping", "ProtocolError", "decode", "detect"]

PROTOCOLS: dict[str, Decoder] = {
    d.name: d
    for d in (
        oip_v2.DECODER,
        kserve_v1.DECODER,
        mlflow.DECODER,
        plain_json.DECODER,
        seldon.DECODER,
        oip_grpc.DECODER,
    )
}


def decode(
    protocol: str,
    request: bytes,
    response: bytes,
    *,
    path: str,
    mapping: Mapping,
    request_id: str | None,
    echoed_id: str | None = None,
    header_lengths: tuple[int | None, int | None] = (None, None),
) -> list[dict[str, object]]:
    """The prediction records of one exchange; ProtocolError if it cannot be decoded.

    `path` is the request's URL path ("" if unknown); a path of the protocol's own API that is
    not an inference call (health, metadata, `:explain`) is refused. `header_lengths` are the
    request's and response's `Inference-Header-Content-Length` (binary data after the JSON).
    """
    decoder = PROTOCOLS.get(protocol)
    if decoder is None:
        raise UnknownAliasError("protocol", protocol, PROTOCOLS)
    return decoder(
        request,
        response,
        path=path,
        mapping=mapping,
        request_id=request_id,
        echoed_id=echoed_id,
        header_lengths=header_lengths,
    )


def detect(path: str) -> str | None:
    """The protocol whose inference route `path` is (query and prefixes allowed), or None."""
    clean = clean_path(path)
    for name, decoder in PROTOCOLS.items():
        if decoder.route is not None and decoder.route.search(clean):
            return name
    return None
