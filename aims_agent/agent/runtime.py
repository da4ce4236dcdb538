"""The daemon's parts, built once from a config: what the HTTP app, the scheduler and the
collectors' loops share.

    Runtime
    ├── models   per model: schema, reference, checks, evidence contexts (agent.models)
    ├── ingest   windows and durable ingest (agent.ingest)
    ├── runner   check execution and evidence (agent.runner)
    └── loggers  payload-logger receivers: KServe, Seldon, ModelMesh (collectors.loggers)

The one-shot `check` does not build this: it needs only a reference, checks and the evidence
writer (agent.oneshot).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping

import numpy as np
from sqlalchemy import Connection
from threadpoolctl import threadpool_limits

from aims_agent.agent.ingest import Ingest
from aims_agent.agent.models import ModelRuntime, build_model, model_of, privacies
from aims_agent.agent.reference import load_references
from aims_agent.agent.runner import Runner
from aims_agent.agent.training import train_off_process
from aims_agent.collectors.exchange import mapping_for
from aims_agent.collectors.logger_pairs import Receiver
from aims_agent.collectors.loggers import Event
from aims_agent.collectors.logtail import Position, follow
from aims_agent.collectors.push import Decoded, Deliver, Reject
from aims_agent.collectors.tap_drain import Sink, TapDrain
from aims_agent.config import Config, KServeLoggerConfig, ModelConfig
from aims_agent.errors import UnknownModelError
from aims_agent.metrics import Metrics
from aims_agent.storage.samples import load_tail_position, save_tail_position
from aims_agent.storage.store import Store

log = logging.getLogger(__name__)

Clock = Callable[[], float]


def _calibrate(models: list[ModelRuntime]) -> None:
    """Null quantiles of calibrated drift checks for a full window, off the check path: the
    first checks of a filling window compute their own sizes as they come (cached)."""
    for mr in models:
        for check in mr.checks.values():
            calibrate = getattr(check, "calibrate", None)
            if calibrate is not None:
                try:
                    calibrate(mr.cfg.window.max_sample)
                except Exception:  # a check will compute it itself, and report what fails
                    log.exception("calibrating %s/%s failed", mr.cfg.name, check.id)


class Runtime:
    """Everything a running agent holds. Build with `Runtime(cfg)`, release with `close()`."""

    def __init__(
        self,
        cfg: Config,
        *,
        clock: Clock = time.time,
        seed: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.cfg, self.clock = cfg, clock
        # checks' vector products are short: idle OpenBLAS threads only spin (process-wide)
        threadpool_limits(1, user_api="blas")
        privacy = privacies(cfg, os.environ if environ is None else environ)
        self.metrics = Metrics()
        self.store = Store(cfg.storage_url, durability=cfg.agent.durability)
        references = load_references(cfg.models)
        self.models: dict[str, ModelRuntime] = {
            m.name: build_model(cfg, m, ref, privacy[m.name])
            for m, ref in zip(cfg.models, references, strict=True)
        }
        self._calibrating = threading.Thread(
            target=_calibrate, args=(list(self.models.values()),), name="calibrate", daemon=True
        )
        self._calibrating.start()
        self._training = train_off_process(
            (mr.cfg.name, check) for mr in self.models.values() for check in mr.checks.values()
        )
        for name, mr in self.models.items():
            for c in mr.cfg.checks:
                self.metrics.schedule.labels(name, c.id).set(c.schedule_seconds)
                self.metrics.check_info.labels(name, c.id, c.kind, c.severity).set(1)
        self.ingest = Ingest(
            cfg, self.models, self.store, self.metrics, clock=clock, rng=np.random.default_rng(seed)
        )
        self.runner = Runner(
            self.models,
            self.store,
            self.metrics,
            snapshot=self.ingest.snapshot,
            evidence_dir=cfg.agent.evidence_dir,
            clock=clock,
        )
        self.runner.restore_gauges()
        self.runner.refresh_open_nonconformities()
        self.loggers = {
            m.name: Receiver(
                m.kserve_logger or KServeLoggerConfig(),
                self.models[m.name].schema,
                self.metrics,
                m.name,
            )
            for m in cfg.models
            if m.kserve_logger is not None or m.trustyai is not None
        }
        # ModelMesh's model ids (TrustyAI's consumer) -> the monitored model
        self.modelmesh = {
            m.trustyai.model_id or m.name: m.name for m in cfg.models if m.trustyai is not None
        }

    def model(self, name: str) -> ModelRuntime:
        return model_of(self.models, name)

    def deliver(self, name: str) -> Deliver:
        """How a collector of model `name` hands over decoded rows."""

        async def deliver(decoded: Decoded) -> int:
            return await self.ingest.ingest(name, decoded)

        return deliver

    def reject(self, name: str) -> Reject:
        """How a collector of model `name` counts records that failed validation."""
        return lambda n: self.ingest.reject_invalid(name, n)

    async def logger_event(self, name: str, event: Event) -> dict[str, int | str]:
        """Pair a payload-logger event with its other half; ingest the inference once paired."""
        receiver = self.loggers.get(name)
        if receiver is None:
            self.model(name)  # UnknownModelError for an unknown name
            raise UnknownModelError(f"model {name!r} has no kserve_logger configured")
        return await receiver.receive(
            event, now=self.clock(), deliver=self.deliver(name), reject=self.reject(name)
        )

    async def tail_log(self, name: str) -> None:
        """Follow the model's prediction log until cancelled, each read committed together with
        the tail's new position."""
        cfg = self.model(name).cfg.log_tail
        assert cfg is not None
        stored = self.store.read(lambda conn: load_tail_position(conn, name))

        async def deliver(decoded: Decoded, pos: Position) -> None:
            if decoded.errors:
                self.ingest.reject_invalid(name, len(decoded.errors))
            checkpoint: Callable[[Connection], None] = save_tail_position(
                name, pos.inode, pos.offset, pos.head
            )
            await self.ingest.ingest(name, decoded, also=checkpoint)

        await follow(
            cfg,
            self.model(name).schema,
            Position(*stored) if stored else None,
            deliver=deliver,
            clock=self.clock,
            model=name,
        )

    def tap_drain(self, models: list[ModelConfig], section: str) -> TapDrain:
        """The drain of one tap (its `section`: proxy or grpc_proxy) of these models: decodes
        their samples and ingests each model's."""
        sinks = {}
        for m in models:
            mr = self.model(m.name)
            tap = getattr(m, section)
            sinks[m.name] = Sink(
                mapping_for(tap, mr.schema),
                mr.schema,
                deliver=self.deliver(m.name),
                reject=self.reject(m.name),
            )
        return TapDrain(sinks, self.metrics)

    def close(self, timeout: float = 10.0) -> None:
        """Wait for running checks (up to the deadline), then drain and close storage."""
        deadline = time.monotonic() + timeout
        if self._training is not None:  # a training still running is killed
            self._training.stop()
        self.runner.wait_idle(timeout)
        self.store.close(max(0.5, deadline - time.monotonic()))
