"""TrustyAI-compatible series, opt in per model (`trustyai:`): the fairness checks' statistical
parity difference and disparate impact ratio as `trustyai_spd` / `trustyai_dir`, so a Grafana
panel or alert built on TrustyAI's series works unchanged.

The labels are those TrustyAI's own publisher sets (trustyai-explainability
`explainability-service`: `PrometheusPublisher`, `BaseMetricRequest.retrieveDefaultTags`,
`GroupMetricRequest.retrieveTags`): `batch_size`, `favorable_value`, `metricName` (SPD, DIR),
`model`, `outcome`, `privileged`, `protected`, `request` (a UUID per metric request),
`requestName` and `unprivileged`. Group and outcome values are written as TrustyAI writes its
request values, as JSON: `1` for a number, `"male"` (quoted) for a text, `[1, 2]` for several.
Here `batch_size` is the window's `max_sample` (the most rows a value rests on, as TrustyAI's
batch is), `request` is derived from model, check, attribute and metric (stable across restarts),
and `requestName` is `<check>/<attribute>`.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from aims_agent.records import CheckRun

SERIES = {
    "statistical_parity_difference": ("trustyai_spd", "SPD"),
    "disparate_impact_ratio": ("trustyai_dir", "DIR"),
}
LABELS = (
    "batch_size",
    "favorable_value",
    "metricName",
    "model",
    "outcome",
    "privileged",
    "protected",
    "request",
    "requestName",
    "unprivileged",
)
_NAMESPACE = uuid.UUID("6c1d3f0e-4f55-4d6a-9d0b-2a6f0b1c7e21")  # this project's, for uuid5


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """What the series of one monitored model are labelled with."""

    model: str  # the monitored model's name
    model_id: str  # TrustyAI's `model` label (ModelMesh's model id)
    outcome: str  # the prediction column
    batch_size: int


class TrustyAISeries:
    """The two gauges, on the agent's registry (only when a model opts in)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.gauges = {
            metric: Gauge(name, f"TrustyAI-compatible {short}", LABELS, registry=registry)
            for metric, (name, short) in SERIES.items()
        }

    def observe(self, target: Target, run: CheckRun) -> None:
        """Publish the SPD and DIR measurements of a judged run."""
        if run.error:
            return
        self.publish(
            target,
            run.check_id,
            (
                (
                    a.measurement.metric,
                    a.measurement.feature,
                    a.measurement.value,
                    a.measurement.params,
                )
                for a in run.assessments
            ),
        )

    def restore(self, target: Target, check_id: str, record: Mapping[str, Any]) -> None:
        """Publish them as a stored run (a monitoring record's body) left them."""
        self.publish(
            target,
            check_id,
            (
                (
                    m["metric"],
                    m["feature"],
                    math.nan if m["value"] is None else m["value"],
                    m["params"],
                )
                for m in record["result"]["measurements"]
            ),
        )

    def publish(
        self,
        target: Target,
        check_id: str,
        measurements: Iterable[tuple[str, str | None, float, Mapping[str, Any]]],
    ) -> None:
        for metric, attr, value, params in measurements:
            if metric not in SERIES or attr is None:
                continue
            short = SERIES[metric][1]
            labels = {
                "batch_size": str(target.batch_size),
                "favorable_value": json_value([params["positive_label"]]),
                "metricName": short,
                "model": target.model_id,
                "outcome": target.outcome,
                "privileged": json_value(params["privileged"]),
                "protected": attr,
                "request": str(
                    uuid.uuid5(_NAMESPACE, f"{target.model}/{check_id}/{attr}/{metric}")
                ),
                "requestName": f"{check_id}/{attr}",
                "unprivileged": json_value(params["unprivileged"]),
            }
            self.gauges[metric].labels(**labels).set(value)


def json_value(values: Sequence[str]) -> str:
    """Values as TrustyAI renders a request value: a number bare, a text as a JSON string,
    several as a list (Java's List.toString of JSON nodes)."""
    parts = [v if _number(v) else json.dumps(v) for v in values]
    return parts[0] if len(parts) == 1 else f"[{', '.join(parts)}]"


def _number(text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, int | float) and not isinstance(value, bool)
