"""A plain JSON model server on the standard library only (any Python 3.11+ runs it).

    python json_server.py MODEL_JSON --port PORT [--host 127.0.0.1] [--delay SECONDS]

``MODEL_JSON`` is the ``model.json`` that ``train.py`` writes: the logistic regression's
coefficients, so a request costs no sklearn call (this server is also a benchmark upstream).

- ``POST /predict`` ``{"id": ..., "rows": [{"x1": .., "x2": .., "x3": ..}, ...]}`` ->
  ``{"id": ..., "results": [{"label": 0|1, "probability": p}, ...]}`` where ``p`` is P(label=1)
  and ``id`` is echoed as sent (``null`` when absent); a bad body gets 400 ``{"error": "..."}``.
- ``GET /health`` -> ``{"status": "ok"}``.
- ``--delay`` (or ``AIMS_UPSTREAM_DELAY``) sleeps that many seconds before each /predict answer.

HTTP/1.1 with keep-alive, one thread per connection, bound to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Model:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.features: list[str] = list(spec["features"])
        self.coef: list[float] = [float(c) for c in spec["coef"]]
        self.intercept = float(spec["intercept"])

    def score(self, row: dict[str, Any]) -> dict[str, Any]:
        z = self.intercept
        for name, weight in zip(self.features, self.coef, strict=True):
            value = row[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, got {value!r}")
            z += weight * value
        # sklearn's predict is decision_function > 0, i.e. probability > 0.5
        p = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
        return {"label": int(z > 0), "probability": p}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "aims-json-upstream/1"
    model: Model
    delay = 0.0

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: a benchmark upstream should not spend its time logging

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"error": f"no route GET {self.path}"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path != "/predict":
            self._send(404, {"error": f"no route POST {self.path}"})
            return
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or not isinstance(body.get("rows"), list):
                raise ValueError('body must be an object with a "rows" list')
            results = [self.model.score(row) for row in body["rows"]]
        except (ValueError, KeyError, TypeError) as exc:
            self._send(400, {"error": f"{type(exc).__name__}: {exc}"})
            return
        if self.delay > 0:
            time.sleep(self.delay)
        self._send(200, {"id": body.get("id"), "results": results})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", type=Path, help="model.json written by train.py")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--delay", type=float, default=float(os.environ.get("AIMS_UPSTREAM_DELAY") or 0)
    )
    opts = parser.parse_args()
    Handler.model = Model(json.loads(opts.model.read_text()))
    Handler.delay = opts.delay
    server = ThreadingHTTPServer((opts.host, opts.port), Handler)
    server.daemon_threads = True
    print(f"json upstream listening on http://{opts.host}:{opts.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
