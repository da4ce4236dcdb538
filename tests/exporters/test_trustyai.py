"""TrustyAI-compatible series: labels as TrustyAI writes them, published from a run and
restored from its stored record alike."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from aims_agent.exporters.evidence import monitoring_record
from aims_agent.exporters.trustyai import LABELS, Target, TrustyAISeries, json_value
from aims_agent.records import Assessment, CheckRun, ControlTags, Measurement, WindowInfo
from tests.exporters.conftest import CTX

TARGET = Target(model="m1", model_id="credit-model", outcome="approved", batch_size=5000)


def fair_run(spd: float, dir_: float) -> CheckRun:
    params = {"privileged": ["male"], "unprivileged": ["female", "x"], "positive_label": "1"}
    measurements = [
        Measurement(
            check_id="fair",
            kind="fairness",
            metric=metric,
            feature="gender",
            value=value,
            method=metric,
            params=params,
            headline=True,
        )
        for metric, value in (
            ("statistical_parity_difference", spd),
            ("disparate_impact_ratio", dir_),
            ("demographic_parity_ratio", 0.9),  # not a TrustyAI series
        )
    ]
    return CheckRun(
        run_id="r1",
        model="m1",
        check_id="fair",
        kind="fairness",
        started_at=1.0,
        finished_at=2.0,
        window=WindowInfo(start=0, end=2, seen=10, sampled=10),
        assessments=tuple(Assessment(measurement=m, verdict="pass") for m in measurements),
        verdict="pass",
        controls=ControlTags(iso42001=("A.7.4",)),
    )


def samples(registry: CollectorRegistry) -> dict[str, tuple[dict[str, str], float]]:
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[s.name] = (s.labels, s.value)
    return out


def test_values_are_written_as_trustyai_writes_request_values():
    assert json_value(["1"]) == "1"
    assert json_value(["0.5"]) == "0.5"
    assert json_value(["male"]) == '"male"'
    assert json_value(["1", "2"]) == "[1, 2]"
    assert json_value(["a", "3"]) == '["a", 3]'


def test_a_run_is_published_with_trustyais_labels_and_restored_the_same():
    registry = CollectorRegistry()
    TrustyAISeries(registry).observe(TARGET, fair_run(-0.05, 0.93))
    published = samples(registry)
    assert set(published) == {"trustyai_spd", "trustyai_dir"}
    labels, value = published["trustyai_spd"]
    assert value == -0.05 and set(labels) == set(LABELS)
    assert labels["model"] == "credit-model" and labels["metricName"] == "SPD"
    assert labels["privileged"] == '"male"' and labels["unprivileged"] == '["female", "x"]'
    assert labels["favorable_value"] == "1" and labels["protected"] == "gender"
    assert labels["outcome"] == "approved" and labels["batch_size"] == "5000"
    assert published["trustyai_dir"][0]["request"] != labels["request"]
    # after a restart: the stored record gives the same series
    record = monitoring_record(fair_run(-0.05, 0.93), CTX, record_id="rec", nc_id=None)
    again = CollectorRegistry()
    TrustyAISeries(again).restore(TARGET, "fair", record)
    assert samples(again) == published
