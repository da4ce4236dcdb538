"""Real model servers on loopback, one per protocol, serving the same tiny scikit-learn model.

``start_upstream(kind, workdir)`` trains the credit model (``train.py``, in the upstream venv that
``scripts/upstreams.sh`` builds), writes what the server needs into ``workdir``, starts the server
on a free 127.0.0.1 port with its output in ``workdir/<kind>.log``, and returns once the server's
readiness endpoint answers 200. The model is a ``LogisticRegression`` on features x1, x2, x3
(columns in that order); label 1 means x1 + 0.1 * x2 > 0, more or less.

Kinds, their inference call and the request that gets both prediction and probability:

- ``"mlserver"``: MLServer + mlserver-sklearn, Open Inference Protocol v2. ``POST
  /v2/models/credit/infer`` with one FP64 input of shape [n, 3]. With no ``outputs`` in the
  request MLServer returns only ``predict`` (INT64, shape [n, 1]); to get probabilities too the
  request must name them: ``"outputs": [{"name": "predict"}, {"name": "predict_proba"}]`` adds
  ``predict_proba`` (FP64, shape [n, 2], row-major: P(0), P(1) per row). The model settings'
  ``parameters.extra.predict_fn`` (``predict_fn=`` here) only changes the single default output.
  Responses carry CloudEvents headers (``ce-id`` = request id) and are gzipped when the client
  accepts gzip and the body is large (MLServer's GZipMiddleware, 1000 bytes and up).
- ``"kserve"``: a ``kserve.Model`` subclass (``kserve_server.py``). v1 ``POST
  /v1/models/credit:predict`` ``{"instances": [[x1, x2, x3], ...]}`` (rows may also be objects)
  -> ``{"predictions": [labels]}``, or ``[[P(0), P(1)], ...]`` with ``predict_fn="predict_proba"``.
  Also v2 ``POST /v2/models/credit/infer``, with the same ``outputs`` rule as MLServer.
- Both ``"mlserver"`` and ``"kserve"`` also serve the Open Inference Protocol over gRPC
  (``inference.GRPCInferenceService``, ``ModelInfer`` and the health and metadata calls) on
  ``Upstream.grpc_target``; KServe's answers ``predict`` for a request naming no outputs.
- ``"mlflow"``: ``mlflow models serve --env-manager local`` of an ``mlflow.sklearn`` model with a
  signature x1, x2, x3 (double). ``POST /invocations`` with ``dataframe_split``,
  ``dataframe_records``, ``instances`` (as records) or ``inputs`` (as columns) ->
  ``{"predictions": [labels]}``; an MLflow model serves one method only, so probabilities need
  ``predict_fn="predict_proba"`` (-> ``{"predictions": [[P(0), P(1)], ...]}``).
- ``"json"``: ``json_server.py``, the standard library's ThreadingHTTPServer. ``POST /predict``
  ``{"id": .., "rows": [{"x1": .., "x2": .., "x3": ..}]}`` -> ``{"id": .., "results": [{"label":
  0|1, "probability": P(1)}]}``; ``delay=`` seconds before each answer, to provoke time-outs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import free_port

KINDS = ("mlserver", "kserve", "mlflow", "json")
MODEL = "credit"
FEATURES = ("x1", "x2", "x3")
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
VENV_ENV = "AIMS_UPSTREAMS_VENV"
"""Environment variable naming the upstream venv; default ``<repo>/.venv-upstreams``."""

INFER_PATHS = {
    "mlserver": f"/v2/models/{MODEL}/infer",
    "kserve": f"/v1/models/{MODEL}:predict",
    "mlflow": "/invocations",
    "json": "/predict",
}
READY_PATHS = {
    "mlserver": f"/v2/models/{MODEL}/ready",
    "kserve": f"/v1/models/{MODEL}",
    "mlflow": "/ping",
    "json": "/health",
}
# Keep the servers offline and quiet: no telemetry, no tracking server, unbuffered logs.
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_TRACKING_URI": "",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}


class UpstreamError(RuntimeError):
    """The upstream venv is missing, or a server exited or did not become ready in time."""


@dataclass
class Upstream:
    kind: str
    url: str
    model: str
    proc: subprocess.Popen[bytes]
    log: Path | None = None
    startup_seconds: float = 0.0
    extra_ports: list[int] = field(default_factory=list)
    _reaped: bool = field(default=False, init=False, repr=False)

    @property
    def grpc_target(self) -> str:
        """``host:port`` of the gRPC server (mlserver and kserve)."""
        if self.kind not in ("mlserver", "kserve"):
            raise ValueError(f"{self.kind} serves no gRPC")
        return f"127.0.0.1:{self.extra_ports[0]}"

    @property
    def infer_url(self) -> str:
        """The URL of this kind's inference call (see the module docstring for its body)."""
        return self.url + INFER_PATHS[self.kind]

    def output(self) -> str:
        """What the server has written to its log so far."""
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the server's process group, SIGKILL it after ``timeout``; always reaps."""
        if self._reaped:
            return
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Children (MLflow's uvicorn) must not outlive the server they were started by.
        _signal_group(self.proc.pid, signal.SIGKILL)
        self._reaped = True


def _signal_group(pgid: int, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def venv_dir() -> Path:
    return Path(os.environ.get(VENV_ENV) or REPO / ".venv-upstreams")


def upstream_python() -> Path:
    """The upstream venv's python; raises UpstreamError (so tests fail) when it is missing."""
    python = venv_dir() / "bin" / "python"
    if not python.exists():
        raise UpstreamError(f"no upstream venv at {venv_dir()}: run scripts/upstreams.sh first")
    return python


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{venv_dir() / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(QUIET_ENV)
    return env


def train(workdir: Path, *, mlflow: bool = False, predict_fn: str = "predict") -> Path:
    """Train the credit model into ``workdir/model`` with the upstream venv; returns that dir."""
    out = workdir / "model"
    cmd = [str(upstream_python()), str(HERE / "train.py"), str(out), "--predict-fn", predict_fn]
    if mlflow:
        cmd.append("--mlflow")
    done = subprocess.run(cmd, cwd=workdir, env=_env(), capture_output=True, timeout=300)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")
        raise UpstreamError(f"training failed ({done.returncode}):\n{output[-8000:]}")
    return out


def _command(
    kind: str,
    workdir: Path,
    model: Path,
    port: int,
    predict_fn: str | None,
    delay: float,
    also: tuple[str, ...] = (),
) -> tuple[list[str], list[int]]:
    """The server's command line (after writing its config) and any extra ports it binds."""
    python = str(upstream_python())
    bin_dir = venv_dir() / "bin"
    if kind == "mlserver":
        root = workdir / "mlserver"
        grpc_port = free_port()
        settings = {
            "host": "127.0.0.1",
            "http_port": port,
            "grpc_port": grpc_port,
            "metrics_endpoint": None,
            "parallel_workers": 0,
        }
        root.mkdir(parents=True, exist_ok=True)
        (root / "settings.json").write_text(json.dumps(settings, indent=2))
        for name in (MODEL, *also):  # a multi-model server: the same model under each name
            (root / name).mkdir(parents=True, exist_ok=True)
            (root / name / "model.joblib").write_bytes((model / "model.joblib").read_bytes())
            parameters: dict[str, object] = {"uri": "./model.joblib"}
            if predict_fn:
                parameters["extra"] = {"predict_fn": predict_fn}
            model_settings = {
                "name": name,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": parameters,
            }
            (root / name / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
        return [str(bin_dir / "mlserver"), "start", str(root)], [grpc_port]
    if kind == "kserve":
        grpc_port = free_port()
        cmd = [python, str(HERE / "kserve_server.py"), "--model_dir", str(model)]
        cmd += ["--model_name", MODEL, "--http_port", str(port), "--grpc_port", str(grpc_port)]
        cmd += ["--predict_fn", predict_fn or "predict", "--delay", str(delay)]
        return cmd, [grpc_port]
    if kind == "mlflow":
        cmd = [str(bin_dir / "mlflow"), "models", "serve", "-m", str(model / "mlflow-model")]
        cmd += ["--env-manager", "local", "-p", str(port), "-h", "127.0.0.1", "-w", "1"]
        return cmd, []
    if kind == "json":
        cmd = [python, str(HERE / "json_server.py"), str(model / "model.json")]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--delay", str(delay)]
        return cmd, []
    raise ValueError(f"unknown upstream kind {kind!r}; known: {KINDS}")


def _wait_ready(upstream: Upstream, deadline: float, path: str | None = None) -> None:
    url = upstream.url + (path or READY_PATHS[upstream.kind])
    with httpx.Client(timeout=2, trust_env=False) as client:
        while True:
            code = upstream.proc.poll()
            if code is not None:
                raise UpstreamError(
                    f"{upstream.kind} upstream exited with {code} before it was ready;"
                    f" its output:\n{upstream.output()[-8000:]}"
                )
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                upstream.stop()
                raise UpstreamError(
                    f"{upstream.kind} upstream not ready at {url} in time; its output:\n"
                    f"{upstream.output()[-8000:]}"
                )
            time.sleep(0.1)


def start_upstream(
    kind: str,
    workdir: Path,
    *,
    timeout: float = 90,
    predict_fn: str | None = None,
    delay: float = 0.0,
    also: tuple[str, ...] = (),
) -> Upstream:
    """Train, write and start a ``kind`` server on 127.0.0.1; return it once it is ready.

    ``predict_fn`` ("predict" or "predict_proba") picks the default output of mlserver, kserve
    and mlflow (see the module docstring); ``delay`` slows the json and kserve servers' answers;
    ``also`` (mlserver) serves the same model under these names too, each ready on return.
    Raises UpstreamError, with the server's output, if it exits or is not ready within
    ``timeout`` seconds (training included). A port taken between choosing and binding is retried.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown upstream kind {kind!r}; known: {KINDS}")
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + timeout
    model = train(workdir, mlflow=kind == "mlflow", predict_fn=predict_fn or "predict")
    for attempt in range(3):
        port = free_port()
        cmd, extra_ports = _command(kind, workdir, model, port, predict_fn, delay, also)
        log = workdir / f"{kind}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd,
                cwd=workdir,
                env=_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        upstream = Upstream(kind, f"http://127.0.0.1:{port}", MODEL, proc, log, 0.0, extra_ports)
        try:
            _wait_ready(upstream, deadline)
            for name in also:
                _wait_ready(upstream, deadline, f"/v2/models/{name}/ready")
        except UpstreamError as exc:
            upstream.stop()
            if attempt < 2 and "address already in use" in str(exc).lower():
                continue
            raise
        except BaseException:
            upstream.stop()
            raise
        upstream.startup_seconds = time.monotonic() - started
        return upstream
    raise AssertionError("unreachable")


@contextmanager
def running_upstream(
    kind: str,
    workdir: Path,
    *,
    timeout: float = 90,
    predict_fn: str | None = None,
    delay: float = 0.0,
) -> Iterator[Upstream]:
    """``start_upstream`` as a context manager that always stops the server."""
    upstream = start_upstream(kind, workdir, timeout=timeout, predict_fn=predict_fn, delay=delay)
    try:
        yield upstream
    finally:
        upstream.stop()
