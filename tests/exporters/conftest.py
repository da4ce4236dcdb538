"""Shared by the exporter tests: an evidence context and a judged drift run to record."""

from __future__ import annotations

from aims_agent.exporters.evidence import EvidenceContext
from aims_agent.records import Assessment, CheckRun, ControlTags, Measurement, Threshold, WindowInfo

CTX = EvidenceContext(
    agent_version="0.1.0",
    config_hash="c" * 64,
    environment="test",
    ai_system_id="AIS-1",
    model_version="2.0",
    reference_id="ref.csv",
    reference_fingerprint="f" * 64,
    n_reference=1000,
    schedule_seconds=60,
    definition="share of drifted features",
    severity="major",
)


def run(verdict: str, value: float, t: float) -> CheckRun:
    head = Measurement(
        check_id="drift",
        kind="drift",
        metric="drift_share",
        value=value,
        method="share",
        headline=True,
        n_current=500,
        threshold=Threshold(breach=0.5),
    )
    feat = Measurement(
        check_id="drift",
        kind="drift",
        metric="drift_score",
        feature="age",
        value=0.4,
        method="wasserstein",
        n_current=500,
        threshold=Threshold(breach=0.1),
    )
    return CheckRun(
        run_id=f"run{t}",
        model="m",
        check_id="drift",
        kind="drift",
        started_at=t,
        finished_at=t + 0.5,
        window=WindowInfo(start=0, end=t, seen=900, sampled=500),
        assessments=(
            Assessment(measurement=head, verdict=verdict),  # type: ignore[arg-type]
            Assessment(measurement=feat, verdict="breach"),
        ),
        verdict=verdict,  # type: ignore[arg-type]
        controls=ControlTags(iso42001=("A.6.2.6", "A.7.4"), eu_ai_act=("Art. 72(2)",)),
    )
