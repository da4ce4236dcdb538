"""`aims-agent check`: run a model's checks once on a file, for CI pipelines and audits.

The evidence is written exactly as the daemon writes it (monitoring records, nonconformities);
the exit code is 1 when any check breaches, so a pipeline can stop on it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from aims_agent.agent.reference import load_current
from aims_agent.agent.runtime import RunOutcome, Runtime
from aims_agent.config import Config
from aims_agent.errors import UnknownModelError
from aims_agent.exporters.evidence import monitoring_record


def run_batch(
    cfg: Config, model: str, current: Path, reference: Path | None
) -> tuple[list[RunOutcome], Runtime]:
    """Run every check of `model` on `current`; the caller closes the returned runtime."""
    try:
        index = [m.name for m in cfg.models].index(model)
    except ValueError:
        raise UnknownModelError(
            f"no model named {model!r}; known: {', '.join(m.name for m in cfg.models)}"
        ) from None
    if reference is not None:
        m = cfg.models[index]
        m = m.model_copy(
            update={"reference": m.reference.model_copy(update={"path": reference.resolve()})}
        )
        cfg = cfg.model_copy(update={"models": (m,)})
    else:
        cfg = cfg.model_copy(update={"models": (cfg.models[index],)})
    runtime = Runtime(cfg)
    try:
        mr = runtime.model(model)
        data = load_current(current, mr.schema, mr.reference.vocabularies, now=runtime.clock())
        return [runtime.run_check_on(model, c, data) for c in mr.checks], runtime
    except BaseException:
        runtime.close()
        raise


def _fmt(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4g}"


def table(outcomes: list[RunOutcome]) -> str:
    lines = [
        f"{'check':<24} {'verdict':<18} {'metric':<28} {'feature':<20} {'value':>10} "
        f"{'breach at':>12}"
    ]
    for o in outcomes:
        run = o.run
        lines.append(
            f"{run.check_id:<24} {run.verdict.upper():<18}"
            + (f" error: {run.error}" if run.error else "")
        )
        for a in run.assessments:
            m = a.measurement
            t = m.threshold
            bound = (
                "-"
                if t is None
                else (
                    ("<" if t.direction == "below" else ">")
                    + ("=" if t.inclusive else "")
                    + _fmt(t.breach)
                )
            )
            lines.append(
                f"  {'':<22} {a.verdict:<18} {m.metric:<28} {m.feature or '':<20} "
                f"{_fmt(m.value):>10} {bound:>12}"
            )
        lines.append(
            f"  evidence: {o.monitoring_record_id}"
            + (f", nonconformity {o.nonconformity_id}" if o.nonconformity_id else "")
        )
    return "\n".join(lines)


def as_json(outcomes: list[RunOutcome], runtime: Runtime) -> str:
    out: list[dict[str, Any]] = []
    for o in outcomes:
        mr = runtime.model(o.run.model)
        out.append(
            monitoring_record(
                o.run,
                mr.contexts[o.run.check_id],
                record_id=o.monitoring_record_id,
                nc_id=o.nonconformity_id,
            )
        )
    return json.dumps(out, indent=2)
