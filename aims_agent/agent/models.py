"""What the agent builds once per monitored model: schema, reference, checks and the evidence
context of each check. Immutable; the window, which changes, is the ingest's."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from aims_agent import __version__
from aims_agent.agent.judge import assess, overall
from aims_agent.checks.base import DEFINITIONS, Check, Reference, build_check
from aims_agent.config import CheckConfig, Config, ModelConfig
from aims_agent.controls import controls_for
from aims_agent.errors import UnknownModelError
from aims_agent.exporters.monitoring import EvidenceContext
from aims_agent.privacy import Privacy, privacy_for
from aims_agent.records import Assessment, CheckRun, ControlTags, Verdict, WindowData
from aims_agent.schema import ModelSchema

log = logging.getLogger(__name__)
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelRuntime:
    """One monitored model as the agent runs it."""

    cfg: ModelConfig
    schema: ModelSchema
    reference: Reference
    checks: dict[str, Check]
    contexts: dict[str, EvidenceContext]
    controls: dict[str, ControlTags]


def evidence_context(
    cfg: Config, m: ModelConfig, c: CheckConfig, reference: Reference, config_hash: str
) -> EvidenceContext:
    """What every monitoring record of check `c` of model `m` says about its making."""
    return EvidenceContext(
        agent_version=__version__,
        config_hash=config_hash,
        environment=cfg.agent.environment,
        ai_system_id=m.ai_system_id,
        model_version=m.version,
        reference_id=reference.reference_id,
        reference_fingerprint=reference.fingerprint,
        n_reference=reference.n_rows,
        schedule_seconds=c.schedule_seconds,
        definition=DEFINITIONS[c.kind],
        severity=c.severity,
        consecutive_breaches=c.consecutive_breaches,
        effectiveness_windows=c.effectiveness_windows,
        window_kind=m.window.kind,
        window_span_seconds=m.window.span_seconds,
        window_step_seconds=m.window.step if m.window.kind == "sliding" else None,
    )


def build_model(
    cfg: Config,
    m: ModelConfig,
    reference: Reference,
    privacy: Privacy | None,
    *,
    check_ids: Sequence[str] | None = None,
) -> ModelRuntime:
    """Bind a model's checks (all, or `check_ids`) to its reference."""
    oversight = any(c.kind == "oversight" for c in m.checks)  # feedback columns in the window
    schema = ModelSchema(m.schema_, privacy, oversight=oversight)
    if privacy is not None:  # the reference's values hashed like the records'
        reference = dataclasses.replace(
            reference, vocabularies=privacy.vocabularies(reference.vocabularies)
        )
    config_hash = cfg.fingerprint()
    wanted = [c for c in m.checks if check_ids is None or c.id in check_ids]
    return ModelRuntime(
        cfg=m,
        schema=schema,
        reference=reference,
        checks={c.id: build_check(c, reference, schema) for c in wanted},
        contexts={c.id: evidence_context(cfg, m, c, reference, config_hash) for c in wanted},
        controls={c.id: controls_for(c.kind, c.controls) for c in wanted},
    )


def privacies(cfg: Config, environ: Mapping[str, str]) -> dict[str, Privacy | None]:
    """Each model's personal-data rules, keys from the environment (ConfigError if unset)."""
    return {
        m.name: privacy_for(m.privacy, environ, f"models[{i}].privacy")
        for i, m in enumerate(cfg.models)
    }


def model_of(models: Mapping[str, ModelRuntime], name: str) -> ModelRuntime:
    try:
        return models[name]
    except KeyError:
        raise UnknownModelError(f"no model named {name!r}") from None


def run_once(mr: ModelRuntime, check_id: str, data: WindowData, *, clock: Clock) -> CheckRun:
    """One check on given data, judged; a check that raises gives a run with its error."""
    check = mr.checks[check_id]
    started = clock()
    error: str | None = None
    assessments: tuple[Assessment, ...] = ()
    verdict: Verdict = "insufficient_data"
    try:
        assessments = assess(check.run(data))
        verdict = overall(assessments)
    except Exception as exc:  # noqa: BLE001 - a failed run is evidence too
        log.exception(
            "check failed", extra={"event": "check_error", "model": mr.cfg.name, "check": check_id}
        )
        error = f"{type(exc).__name__}: {exc}"
    return CheckRun(
        run_id=uuid.uuid4().hex,
        model=mr.cfg.name,
        check_id=check_id,
        kind=check.kind,
        started_at=started,
        finished_at=clock(),
        window=data.info,
        assessments=assessments,
        verdict=verdict,
        controls=mr.controls[check_id],
        error=error,
    )
