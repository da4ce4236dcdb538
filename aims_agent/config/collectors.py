"""Where records come from: model-server payloads (proxy tap, KServe logger) and log tails."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Self

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
    """Receive payload loggers: KServe's InferenceService logger and Seldon Core's (CloudEvents,
    binary mode), and ModelMesh partials at TrustyAI's consumer path."""

    protocol: Literal["auto", "oip-v2", "kserve-v1", "seldon", "oip-v2-grpc"] = Field(
        "auto", description="auto: as the sender says, else by each request body"
    )
    id_header: str = Field(
        "X-Request-ID", min_length=1, description="request header (in Ce-Metadata) of the id"
    )
    pair_timeout_seconds: float = Field(60.0, gt=0, description="wait for the other half")
    max_pending: int = Field(10_000, ge=1, description="halves waiting for their pair, at most")
    max_pending_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="bytes of halves waiting; beyond: the oldest go"
    )
    max_event_age_seconds: float = Field(
        3600.0, gt=0, description="an older Ce-Time is clamped to this age (and counted)"
    )
    max_clock_skew_seconds: float = Field(
        60.0, ge=0, description="a Ce-Time further ahead of the agent's clock is taken as now"
    )


class TrustyAIConfig(Strict):
    """TrustyAI compatibility, opt in: ModelMesh payload partials taken at TrustyAI's consumer
    path `POST /consumer/kserve/v2` (decoded with the model's kserve_logger settings), and the
    fairness checks' statistical parity difference and disparate impact ratio published as
    `trustyai_spd` / `trustyai_dir` with TrustyAI's labels, so its dashboards work unchanged."""

    model_id: str | None = Field(
        None, min_length=1, description="ModelMesh's model id and the series' model label"
    )


class TapConfig(DecodeConfig):
    """What the HTTP and the gRPC tap share: where they listen, which calls are this model's,
    and how many of them are decoded.

    Several models may name the same host and port: one tap then serves them all and routes
    each call by the model it names (see `route_key`); their listener settings must agree.
    """

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    upstream_model: str | None = Field(
        None, description="decode only calls to this model name (on a shared port: its route)"
    )
    sample_rate: float = Field(1.0, ge=0, le=1, description="share of exchanges decoded")
    id_header: str = Field("X-Request-ID", min_length=1, pattern=r"^[A-Za-z0-9-]+$")
    timeout_seconds: float = Field(60.0, gt=0, description="longest wait for the upstream")
    max_queued_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="exchanges waiting for decoding; beyond: dropped"
    )

    # settings of the listener and its upstream, which models sharing a port must agree on
    LISTENER: ClassVar[tuple[str, ...]] = (
        "upstream",
        "id_header",
        "timeout_seconds",
        "max_queued_bytes",
    )

    def listener(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.LISTENER)


class ProxyConfig(TapConfig):
    """A reverse-proxy tap in front of the model server: every request is forwarded and its
    response returned unchanged; a sample of the exchanges is decoded off the response path."""

    upstream: str = Field(pattern=r"^https?://[^/?#]+/?$", description="http://host:port")
    protocol: Literal["auto", "oip-v2", "kserve-v1", "mlflow", "seldon", "json"] = Field(
        "auto", description="auto: by the URL path of each request"
    )
    inference_path: str | None = Field(
        None, description="decode only this URL path (required for json)"
    )
    connect_timeout_seconds: float = Field(5.0, gt=0)
    max_connections: int = Field(256, ge=1, description="pooled connections to the upstream")
    max_body_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="larger requests are refused with 413"
    )
    # plain JSON: dot-separated paths into the bodies (see collectors/protocols/plain_json.py)
    records_path: str | None = None
    features_path: str | None = None
    prediction_path: str | None = None
    score_path: str | None = None

    LISTENER: ClassVar[tuple[str, ...]] = (
        *TapConfig.LISTENER,
        "connect_timeout_seconds",
        "max_connections",
        "max_body_bytes",
    )

    @model_validator(mode="after")
    def _json_needs_path(self) -> Self:
        if self.protocol == "json" and self.inference_path is None:
            raise ValueError("inference_path: required when protocol is json")
        return self


class GrpcProxyConfig(TapConfig):
    """A gRPC tap for the Open Inference Protocol (`inference.GRPCInferenceService`): every
    call is forwarded with its metadata and deadline and answered with the upstream's message,
    status and trailers; a sample of the ModelInfer calls is decoded off the call path."""

    port: int = Field(8081, ge=0, le=65535)
    upstream: str = Field(
        pattern=r"^(\[[0-9A-Fa-f:.]+\]|[^/:\[\]]+):\d{1,5}$", description="host:port"
    )
    max_message_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="larger messages are refused (RESOURCE_EXHAUSTED)"
    )

    LISTENER: ClassVar[tuple[str, ...]] = (*TapConfig.LISTENER, "max_message_bytes")


class LogTailConfig(Strict):
    """Follow a JSONL prediction log whose lines are records as the push API takes them."""

    path: Path
    poll_seconds: float = Field(0.5, gt=0)
    fields: dict[str, str] = Field(
        {}, description="record field -> the log's key for it, e.g. {id: request_id}"
    )
