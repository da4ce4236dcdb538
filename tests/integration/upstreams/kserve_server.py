"""A KServe custom model server for the joblib credit model; run with the upstream venv's python.

    python kserve_server.py --model_dir DIR --model_name credit --http_port PORT
                            [--grpc_port PORT] [--predict_fn predict|predict_proba]
                            [--delay SECONDS]

Subclasses ``kserve.Model`` the way KServe's own sklearnserver does, and serves, on 127.0.0.1
only (KServe binds 0.0.0.0 / [::] itself, so its REST server's host and its gRPC server's
address are overridden; gRPC only with ``--grpc_port``):

- v1 ``POST /v1/models/credit:predict`` ``{"instances": [[x1, x2, x3], ...]}`` (or rows as
  ``{"x1": .., "x2": .., "x3": ..}``) -> ``{"predictions": [0, 1, ...]}``; with
  ``--predict_fn predict_proba`` -> ``{"predictions": [[p0, p1], ...]}`` (KServe sklearnserver's
  PREDICT_PROBA behaviour);
- v2 ``POST /v2/models/credit/infer`` with one FP64 input of shape [n, 3] (or three inputs x1, x2,
  x3 of shape [n]) -> output ``predict`` (INT64 [n]), plus ``predict_proba`` (FP64 [n, 2]) when the
  request names it in ``outputs``, as MLServer's sklearn runtime does;
- readiness: ``GET /v1/models/credit`` and ``GET /v2/models/credit/ready``;
- with ``--grpc_port``, KServe's own gRPC server (``inference.GRPCInferenceService``) for v2,
  the same model behind it;
- ``--delay`` seconds before every prediction (to provoke deadlines and time-outs).
"""

# mypy: disable-error-code="import-not-found,import-untyped", allow-subclassing-any

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import joblib
import kserve
import kserve.model_server
import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.grpc import server as grpc_server
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.protocol.rest.server import RESTServer

FEATURES = ["x1", "x2", "x3"]
OUTPUTS = ("predict", "predict_proba")


class LoopbackRESTServer(RESTServer):
    """KServe's REST server, bound to 127.0.0.1 instead of 0.0.0.0."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.host = "127.0.0.1"


def loopback_grpc_server(*args: Any, **kwargs: Any) -> Any:
    """grpc.aio.server, except that KServe's `[::]:port` is bound on 127.0.0.1 instead."""
    server = _aio_server(*args, **kwargs)
    bind = server.add_insecure_port
    server.add_insecure_port = lambda address: bind(address.replace("[::]", "127.0.0.1"))
    return server


_aio_server = grpc_server.aio.server


class CreditModel(kserve.Model):
    def __init__(self, name: str, model_dir: Path, predict_fn: str, delay: float = 0.0) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.predict_fn = predict_fn
        self.delay = delay
        self.model: Any = None
        self.load()

    def load(self) -> bool:
        self.model = joblib.load(self.model_dir / "model.joblib")
        self.ready = True
        return self.ready

    @staticmethod
    def _v1_matrix(instances: Any) -> np.ndarray:
        if not isinstance(instances, list) or not instances:
            raise InvalidInput('"instances" must be a non-empty list')
        try:
            instances = [
                [row[f] for f in FEATURES] if isinstance(row, dict) else row for row in instances
            ]
        except KeyError as exc:
            raise InvalidInput(f"instance lacks feature {exc}") from exc
        matrix = np.asarray(instances, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(FEATURES):
            raise InvalidInput(f"instances must be rows of {len(FEATURES)} numbers")
        return matrix

    @staticmethod
    def _v2_matrix(request: InferRequest) -> np.ndarray:
        if len(request.inputs) == 1:
            return np.asarray(request.inputs[0].as_numpy(), dtype=np.float64).reshape(-1, 3)
        by_name = {i.name: i for i in request.inputs}
        try:
            columns = [np.asarray(by_name[f].as_numpy(), dtype=np.float64) for f in FEATURES]
        except KeyError as exc:
            raise InvalidInput(f"need one [n, 3] input or inputs {FEATURES}") from exc
        return np.stack([c.reshape(-1) for c in columns], axis=1)

    async def predict(
        self,
        payload: dict[str, Any] | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        if self.delay:
            await asyncio.sleep(self.delay)
        if isinstance(payload, InferRequest):
            matrix = self._v2_matrix(payload)
            wanted = [o.name for o in payload.request_outputs or []] or [self.predict_fn]
            outputs = []
            for name in wanted:
                if name not in OUTPUTS:
                    raise InvalidInput(f"unknown output {name!r}; known: {list(OUTPUTS)}")
                result = getattr(self.model, name)(matrix)
                datatype = "INT64" if name == "predict" else "FP64"
                outputs.append(
                    InferOutput(name=name, shape=list(result.shape), datatype=datatype, data=result)
                )
            return InferResponse(
                response_id=payload.id, model_name=self.name, infer_outputs=outputs
            )
        if not isinstance(payload, dict) or "instances" not in payload:
            raise InvalidInput('v1 body must be {"instances": [...]}')
        result = getattr(self.model, self.predict_fn)(self._v1_matrix(payload["instances"]))
        return {"predictions": result.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", type=Path, required=True)
    parser.add_argument("--predict_fn", default="predict", choices=OUTPUTS)
    parser.add_argument("--delay", type=float, default=0.0)
    opts, _ = parser.parse_known_args()
    kserve.model_server.RESTServer = LoopbackRESTServer
    grpc_server.aio.server = loopback_grpc_server
    model = CreditModel(opts.model_name, opts.model_dir, opts.predict_fn, opts.delay)
    grpc = "--grpc_port" in sys.argv
    kserve.ModelServer(http_port=opts.http_port, grpc_port=opts.grpc_port, enable_grpc=grpc).start(
        [model]
    )


if __name__ == "__main__":
    main()
