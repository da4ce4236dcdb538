"""SPD and DIR between a privileged and an unprivileged group (TrustyAI's definitions), against
fairlearn's per-group selection rates on the same data."""

from __future__ import annotations

import math

import fairlearn.metrics as flm
import pytest

from aims_agent.config import FairnessCheckConfig, Limit
from aims_agent.errors import ConfigError
from tests.checks.test_fairness import EXACT, frame_data, headline, run

PAIRS = ("statistical_parity_difference", "disparate_impact_ratio")


@pytest.fixture(scope="module")
def current(gen):
    return gen.make(20000, 43, True)


def as_list(v):
    return v if isinstance(v, list) else [v]


def selection_rates(df, sides: dict[str, str]):
    """fairlearn's selection rate per side ("priv" / "unpriv") of the groups in `sides`."""
    kept = df[df["group"].isin(list(sides))]
    side = kept["group"].map(sides)
    frame = flm.MetricFrame(
        metrics=flm.selection_rate,
        y_true=kept["target"],
        y_pred=kept["prediction"],
        sensitive_features=side,
    )
    return frame.by_group["priv"], frame.by_group["unpriv"]


@pytest.mark.parametrize(
    ("privileged", "unprivileged"), [("A", "B"), ("C", "A"), (["A", "B"], "C")]
)
def test_spd_and_dir_match_fairlearns_rates(current, privileged, unprivileged):
    groups = {"group": {"privileged": privileged, "unprivileged": unprivileged}}
    judged = run(frame_data(current), groups=groups, metrics={m: Limit(max=10) for m in PAIRS})
    priv_groups, unpriv_groups = as_list(privileged), as_list(unprivileged)
    sides = dict.fromkeys(priv_groups, "priv") | dict.fromkeys(unpriv_groups, "unpriv")
    priv, unpriv = selection_rates(current, sides)
    spd = headline(judged, "statistical_parity_difference").measurement
    dir_ = headline(judged, "disparate_impact_ratio").measurement
    assert spd.value == pytest.approx(unpriv - priv, **EXACT)
    assert dir_.value == pytest.approx(unpriv / priv, **EXACT)
    assert spd.params["group_rates"] == {
        "privileged": pytest.approx(priv),
        "unprivileged": pytest.approx(unpriv),
    }
    assert spd.params["privileged"] == priv_groups
    rows = current["group"].isin(list(sides)) & current["prediction"].notna()
    assert spd.n_current == int(rows.sum())


def test_trustyais_default_limits_apply_when_groups_are_named():
    cfg = FairnessCheckConfig(
        id="fair", schedule_seconds=60, groups={"g": {"privileged": 1, "unprivileged": 0}}
    )
    assert cfg.metrics["statistical_parity_difference"] == Limit(min=-0.1, max=0.1)
    assert cfg.metrics["disparate_impact_ratio"] == Limit(min=0.8, max=1.2)
    assert "demographic_parity_ratio" in cfg.metrics  # the check's own defaults stay
    mine = FairnessCheckConfig(
        id="f",
        schedule_seconds=60,
        groups={"g": {"privileged": [1, 2], "unprivileged": 0}},
        metrics={"disparate_impact_ratio": {"min": 0.9}},
    )
    assert mine.metrics["disparate_impact_ratio"] == Limit(min=0.9)
    assert mine.groups["g"].privileged == (1, 2)


def test_a_side_too_small_or_a_zero_privileged_rate_is_undefined():
    data = {
        "group": ["A"] * 40 + ["B"] * 5,
        "prediction": [0] * 40 + [1] * 5,
        "target": [0] * 45,
    }
    groups = {"group": {"privileged": "A", "unprivileged": "B"}}
    metrics = {m: Limit(max=10) for m in PAIRS}
    judged = run(data, groups=groups, metrics=metrics, min_group_size=10)
    assert all(math.isnan(headline(judged, m).measurement.value) for m in PAIRS)
    assert {headline(judged, m).verdict for m in PAIRS} == {"insufficient_data"}
    judged = run(data, groups=groups, metrics=metrics, min_group_size=1)
    assert headline(judged, "statistical_parity_difference").measurement.value == 1.0
    assert math.isnan(headline(judged, "disparate_impact_ratio").measurement.value)  # 1 / 0


def test_group_rules_are_checked_at_load(tmp_path, reference_csv):
    import yaml

    from aims_agent.agent.preflight import load
    from tests.conftest import base_config

    cfg = base_config(reference_csv, tmp_path / "ev")
    cfg["models"][0]["checks"].append(
        {
            "id": "fair",
            "kind": "fairness",
            "schedule_seconds": 60,
            "metrics": {"statistical_parity_difference": {"max": 0.1}},
        }
    )
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="statistical_parity_difference: needs groups"):
        load(path)
    cfg["models"][0]["checks"][1]["groups"] = {"c1": {"privileged": "a", "unprivileged": "b"}}
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="groups.c1: not a sensitive attribute"):
        load(path)
    cfg["models"][0]["checks"][1]["groups"] = {"group": {"privileged": "a", "unprivileged": "a"}}
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="also privileged: a"):
        load(path)
