"""Payload-logger events as the senders' own sources build them, for the receiver's tests.

- KServe: kserve/kserve `pkg/logger/handler.go` and `worker.go` at commit aaac4e294dae (after
  v0.20.0-rc0; cloudevents sdk-go v2.16.2, binary mode). The request and response events share
  `Ce-Id` (the request's Ce-Id header, else a new UUID); `Ce-Time` is the request's arrival /
  the response's completion (RFC 3339, nanoseconds), `Ce-Recordedtime` when the event was made;
  `Ce-Metadata` is the JSON of the request headers listed in `metadataHeaders`, keyed by Go's
  canonical header names (handler_test.go `TestLoggerWithMetadata` parses it as plain JSON);
  both halves carry the request's Content-Type; the response body is the model server's bytes.
- Seldon Core: SeldonIO/seldon-core v1.18.2 `executor/logger/worker.go` (`sendCloudEvent`,
  cloudevents sdk-go v1, HTTPBinaryV1) with `executor/predictor/predictor_process.go`
  (`logPayload`): a new `Ce-Id` per half, `Ce-Requestid` the request's Seldon-Puid,
  `Ce-Modelid` the graph node, `Ce-Protocol` the deployment's protocol (seldon, tensorflow, v2,
  kfserving), `Ce-Time` the send time (`WithTimeNow`), Content-Type the payload's
  (`application/protobuf` for gRPC). Seldon Core v2 sends no CloudEvents of its own (its
  payloads go to Kafka), so these are the `io.seldon.serving.inference.*` events there are.
- TrustyAI: trustyai-explainability `explainability-service` at commit 8c01552ee774
  (v0.28.0+15): `ConsumerEndpoint` (`POST /consumer/kserve/v2`) reads an
  `InferencePartialPayload`, `{"id", "kind", "modelid", "data", "metadata"}`, `data` the
  base64 of the gRPC message (demo/logger/partial.py sends exactly these).
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime


def rfc3339(epoch: float) -> str:
    """Go's time.RFC3339Nano of a UTC time (sdk-go writes Ce-Time so)."""
    stamp = datetime.fromtimestamp(epoch, UTC)
    nanos = f"{stamp.microsecond * 1000:09d}".rstrip("0")
    return stamp.strftime("%Y-%m-%dT%H:%M:%S") + (f".{nanos}" if nanos else "") + "Z"


def kserve(
    half: str,
    ce_id: str,
    *,
    at: float,
    request_id: str | None = None,
    content_type: str = "application/json",
) -> dict[str, str]:
    """Headers of a KServe logger event (worker.go sendHttpCloudEvent)."""
    metadata = {"X-Request-Id": [request_id]} if request_id else {}
    return {
        "Content-Type": content_type,
        "Ce-Specversion": "1.0",
        "Ce-Id": ce_id,
        "Ce-Type": f"org.kubeflow.serving.inference.{half}",
        "Ce-Source": "http://localhost:9081/",
        "Ce-Time": rfc3339(at),
        "Ce-Recordedtime": rfc3339(at + 0.002),
        "Ce-Inferenceservicename": "credit-model",
        "Ce-Namespace": "models",
        "Ce-Component": "predictor",
        "Ce-Endpoint": "default",
        "Ce-Metadata": json.dumps(metadata, separators=(",", ":")),
    }


def seldon(
    half: str,
    puid: str,
    *,
    at: float,
    protocol: str = "seldon",
    model: str = "classifier",
    content_type: str = "application/json",
) -> dict[str, str]:
    """Headers of a Seldon Core executor logger event (worker.go sendCloudEvent)."""
    return {
        "Content-Type": content_type,
        "Ce-Specversion": "1.0",
        "Ce-Id": str(uuid.uuid4()),  # logPayload makes a new one for every half
        "Ce-Type": f"io.seldon.serving.inference.{half}",
        "Ce-Source": "http://localhost:8000/",
        "Ce-Time": rfc3339(at),
        "Ce-Modelid": model,
        "Ce-Requestid": puid,
        "Ce-Inferenceservicename": "iris",
        "Ce-Namespace": "seldon",
        "Ce-Endpoint": "default",
        "Ce-Protocol": protocol,
    }


def partial(kind: str, pid: str, message: bytes, model: str = "example-model-1") -> bytes:
    """A ModelMesh payload partial as TrustyAI's consumer takes it (demo/logger/partial.py)."""
    doc = {"modelid": model, "id": pid, "data": base64.b64encode(message).decode(), "kind": kind}
    return json.dumps(doc).encode()
