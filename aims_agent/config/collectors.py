"""Where records come from: model-server payloads (proxy tap, KServe logger) and log tails."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator

from aims_agent.config._base import Strict


class DecodeConfig(Strict):
    """Where a model server's payloads hold the prediction and the score."""

    prediction: str | None = Field(None, description="output holding the prediction")
    score: str | None = Field(None, description="output holding the score")
    score_index: int | None = Field(None, ge=0, description="probability column used as score")
    input: str | None = Field(None, description="oip-v2: input tensor with positional features")
    id_field: str = Field("id", min_length=1, description="body field holding the request id")


class KServeLoggerConfig(DecodeConfig):
    """Receive KServe's InferenceService payload logger (CloudEvents, binary mode)."""

    protocol: Literal["oip-v2", "kserve-v1"] = "oip-v2"
    pair_timeout_seconds: float = Field(60.0, gt=0, description="wait for the other half")
    max_pending: int = Field(10_000, ge=1, description="halves waiting for their pair, at most")


class ProxyConfig(DecodeConfig):
    """A reverse-proxy tap in front of the model server: every request is forwarded and its
    response returned unchanged; a sample of the exchanges is decoded off the response path."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    upstream: str = Field(pattern=r"^https?://[^/?#]+/?$", description="http://host:port")
    protocol: Literal["auto", "oip-v2", "kserve-v1", "mlflow", "json"] = Field(
        "auto", description="auto: by the URL path of each request"
    )
    upstream_model: str | None = Field(
        None, description="oip-v2 / kserve-v1: decode only calls to this model name"
    )
    inference_path: str | None = Field(
        None, description="decode only this URL path (required for json)"
    )
    sample_rate: float = Field(1.0, ge=0, le=1, description="share of exchanges decoded")
    id_header: str = Field("X-Request-ID", min_length=1, pattern=r"^[A-Za-z0-9-]+$")
    connect_timeout_seconds: float = Field(5.0, gt=0)
    timeout_seconds: float = Field(60.0, gt=0, description="read and write timeout upstream")
    max_connections: int = Field(256, ge=1, description="pooled connections to the upstream")
    max_body_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="larger requests are refused with 413"
    )
    max_queued_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="exchanges waiting for decoding; beyond: dropped"
    )
    # plain JSON: dot-separated paths into the bodies (see collectors/protocols/plain_json.py)
    records_path: str | None = None
    features_path: str | None = None
    prediction_path: str | None = None
    score_path: str | None = None

    @model_validator(mode="after")
    def _json_needs_path(self) -> Self:
        if self.protocol == "json" and self.inference_path is None:
            raise ValueError("inference_path: required when protocol is json")
        return self


class LogTailConfig(Strict):
    """Follow a JSONL prediction log whose lines are records as the push API takes them."""

    path: Path
    poll_seconds: float = Field(0.5, gt=0)
    fields: dict[str, str] = Field(
        {}, description="record field -> the log's key for it, e.g. {id: request_id}"
    )
