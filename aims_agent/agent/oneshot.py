"""Run a model's checks once on a batch of data: `aims-agent check` and the Python API.

Builds only what a one-shot run needs: the reference (read in this process), the model's checks
and, when evidence is written, the store. No window, scheduler or HTTP server.

    >>> import aims_agent
    >>> records = aims_agent.check("agent.yaml", current=frame)       # doctest: +SKIP
    >>> [(r["check"]["id"], r["result"]["outcome"]) for r in records]  # doctest: +SKIP
    [('drift', 'breach'), ('quality', 'pass')]
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from aims_agent.agent import preflight, refcache
from aims_agent.agent.judge import breach_rule
from aims_agent.agent.models import ModelRuntime, build_model, run_once
from aims_agent.agent.reference import current_from_table, load_current, load_reference
from aims_agent.checks.parallel import columns_in_threads
from aims_agent.config import Config
from aims_agent.errors import UnknownModelError
from aims_agent.exporters.canonical import json_safe
from aims_agent.exporters.monitoring import monitoring_record
from aims_agent.privacy import privacy_for
from aims_agent.records import CheckRun, WindowData
from aims_agent.schema import ModelSchema

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """One check's run on the batch and its monitoring record (stored or not)."""

    run: CheckRun
    record: dict[str, Any]
    nonconformity_id: str | None = None


@contextmanager
def _blas_threads(n: int) -> Iterator[None]:
    """At most n BLAS threads while checks run: their vector products are short, and idle
    OpenBLAS threads spinning on a shared machine cost more than they give."""
    if os.environ.get("OPENBLAS_NUM_THREADS") == str(n):  # set before numpy loaded
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency; without it, run as configured
        yield
        return
    with threadpool_limits(n, user_api="blas"):
        yield


def load_config(config: Config | str | os.PathLike[str]) -> Config:
    """A validated config: a `Config` as it is, or a YAML file read, validated and preflighted
    (every problem with its YAML path in one ConfigError)."""
    return config if isinstance(config, Config) else preflight.load(Path(config), references=False)


def _model(cfg: Config, model: str | None) -> int:
    names = [m.name for m in cfg.models]
    if model is None:
        if len(names) == 1:
            return 0
        raise UnknownModelError(f"--model: the config has several models: {', '.join(names)}")
    if model not in names:
        raise UnknownModelError(f"--model: no model named {model!r}; known: {', '.join(names)}")
    return names.index(model)


def _current(current: Any, schema: ModelSchema, mr: ModelRuntime, now: float) -> WindowData:
    vocabularies = mr.reference.vocabularies
    if isinstance(current, str | os.PathLike):
        return load_current(Path(current), schema, vocabularies, now=now)
    return current_from_table(current, schema, vocabularies, now=now, name="current")


def run_checks(
    config: Config | str | os.PathLike[str],
    current: Any,
    *,
    model: str | None = None,
    reference: str | os.PathLike[str] | None = None,
    write: bool = False,
    report: bool = False,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
    cache_reference: bool = False,
) -> list[Outcome]:
    """Every check of the model on `current` (a CSV or Parquet path, a pandas DataFrame or a
    pyarrow Table). With `write`, the evidence is stored as the daemon stores it (monitoring
    records, nonconformities) and, with `report`, Evidently's HTML report is attached to each
    drift check's record."""
    cfg = load_config(config)
    m = cfg.models[_model(cfg, model)]
    env = os.environ if environ is None else environ
    privacy = privacy_for(m.privacy, env, f"models[{cfg.models.index(m)}].privacy")
    ref_path = Path(reference).resolve() if reference is not None else m.reference.path
    if reference is not None:
        m = m.model_copy(update={"reference": m.reference.model_copy(update={"path": ref_path})})
    ref_schema = ModelSchema(m.schema_)
    cache_dir = cfg.agent.evidence_dir / "cache"
    digest, loaded = (
        refcache.load(cache_dir, ref_path, ref_schema, m.reference.format)
        if cache_reference
        else ("", None)
    )
    cached = loaded is not None
    if loaded is None:
        loaded = load_reference(ref_path, ref_schema, fmt=m.reference.format)
    known = len(loaded.cache)
    mr = build_model(cfg, m, loaded, privacy)
    data = _current(current, mr.schema, mr, clock())
    # one BLAS thread; drift columns two at a time where there is a second core
    with _blas_threads(1), columns_in_threads(min(2, os.cpu_count() or 1)):
        runs = [run_once(mr, check_id, data, clock=clock) for check_id in mr.checks]
    if cache_reference and (not cached or len(loaded.cache) != known):  # new: keep them
        try:
            refcache.save(cache_dir, loaded, ref_schema, m.reference.format, digest)
        except OSError as exc:  # a cache is an optimisation: say so, never fail the check
            log.warning("reference cache not written: %s", exc)
    if not write:
        return [
            Outcome(
                run=r,
                record=json_safe(
                    monitoring_record(
                        r, mr.contexts[r.check_id], record_id=f"MR-{uuid.uuid4().hex}", nc_id=None
                    )
                ),
            )
            for r in runs
        ]
    return _write(cfg, mr, runs, data if report else None, clock)


def _write(
    cfg: Config,
    mr: ModelRuntime,
    runs: list[CheckRun],
    report_on: WindowData | None,
    clock: Callable[[], float],
) -> list[Outcome]:
    if report_on is None:  # most runs: appended without loading the database layer
        from aims_agent.exporters.evidence_sqlite import append_runs

        pairs = [(run, mr.contexts[run.check_id]) for run in runs]
        bodies = append_runs(cfg.storage_url, pairs, durability=cfg.agent.durability)
        if bodies is not None:
            return [Outcome(run=r, record=b) for r, b in zip(runs, bodies, strict=True)]
    from aims_agent.exporters.evidence import record_run
    from aims_agent.storage.store import Store

    store = Store(cfg.storage_url, durability=cfg.agent.durability)
    try:
        out = []
        for run in runs:
            ctx = mr.contexts[run.check_id]
            write = record_run(run, ctx, breach_rule(ctx.consecutive_breaches))
            mon_id, nc_id, _ = store.submit(write).result()
            if report_on is not None and run.kind == "drift":
                _attach(store, mr, report_on, mon_id, cfg.agent.evidence_dir, clock())
            body = store.read(partial(_body, record_id=mon_id))
            out.append(Outcome(run=run, record=body, nonconformity_id=nc_id))
        return out
    finally:
        store.close()


def _body(conn: Any, *, record_id: str) -> dict[str, Any]:
    from aims_agent.storage import queries

    return dict(queries.bodies_of(conn, [record_id])[record_id])


def _attach(
    store: Any, mr: ModelRuntime, data: WindowData, mon_id: str, evidence_dir: Path, now: float
) -> None:
    from aims_agent.exporters.evidence import save_attachment
    from aims_agent.exporters.evidently_report import render

    att = render(data, mr.schema, mr.cfg.reference.path, evidence_dir, name=mon_id)
    store.submit(save_attachment(att, mon_id, now)).result()


def check(
    config: Config | str | os.PathLike[str],
    current: Any,
    *,
    model: str | None = None,
    reference: str | os.PathLike[str] | None = None,
    write_evidence: bool = False,
    environ: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Run a model's checks once on `current` and return their clause 9.1 monitoring records
    (JSON-ready dicts: `record["result"]["outcome"]`, `record["result"]["measurements"]`).

    `config` is a path to the agent's YAML config or a loaded `Config`; `model` may be omitted
    when the config has one model; `current` is a CSV or Parquet path, a pandas DataFrame or a
    pyarrow Table with the schema's columns. Nothing is written unless `write_evidence`."""
    outcomes = run_checks(
        config,
        current,
        model=model,
        reference=reference,
        write=write_evidence,
        environ=environ,
    )
    return [o.record for o in outcomes]
