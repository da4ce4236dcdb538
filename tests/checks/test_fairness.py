"""The fairness check against fairlearn's MetricFrame and disparity functions on the same data."""

from __future__ import annotations

import math
import warnings

import fairlearn.metrics as flm
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score

from aims_agent.agent.judge import assess, overall
from aims_agent.checks.base import Reference, build_check
from aims_agent.checks.kinds.fairness import METRICS, NEEDS_LABEL, FairnessCheck
from aims_agent.config import FairnessCheckConfig, Limit, SchemaConfig
from aims_agent.records import WindowData, WindowInfo
from aims_agent.schema import ModelSchema

HEADLINE = [
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
]
RATES = {
    "selection_rate": flm.selection_rate,
    "true_positive_rate": flm.true_positive_rate,
    "false_positive_rate": flm.false_positive_rate,
    "false_negative_rate": flm.false_negative_rate,
    "accuracy": accuracy_score,
}
LABEL_RATES = [r for r in RATES if r != "selection_rate"]
EXACT = {"rel": 1e-12, "abs": 1e-15, "nan_ok": True}


@pytest.fixture(scope="module")
def current(gen):
    return gen.make(20000, 43, True)


@pytest.fixture(scope="module")
def reference_set(gen):
    return gen.make(20000, 42, False)


# --- helpers -------------------------------------------------------------------------------


def encode(values) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes into the sorted labels, -1 for None: the window's encoding."""
    labels = tuple(sorted({str(v) for v in values if v is not None}))
    index = {v: i for i, v in enumerate(labels)}
    codes = [-1 if v is None else index[str(v)] for v in values]
    return np.asarray(codes, dtype=np.int32), labels


def window_of(data: dict[str, list]) -> WindowData:
    columns, vocabularies = {}, {}
    for name, values in data.items():
        columns[name], vocabularies[name] = encode(values)
    n = len(next(iter(data.values())))
    return WindowData(
        info=WindowInfo(start=0.0, end=1.0, seen=n, sampled=n),
        columns=columns,
        vocabularies=vocabularies,
        record_ids=(),
    )


def schema_of(sensitive=("group",), label: str | None = "target") -> ModelSchema:
    return ModelSchema(
        SchemaConfig(numeric=("x",), prediction="prediction", label=label, sensitive=sensitive)
    )


EMPTY_REFERENCE = Reference(reference_id="r", fingerprint="", n_rows=0, columns={}, vocabularies={})


def run(data: dict[str, list], *, schema=None, reference=EMPTY_REFERENCE, **cfg):
    cfg.setdefault("metrics", {m: Limit(max=10) for m in METRICS})
    cfg.setdefault("min_samples", 1)
    check = FairnessCheck(FairnessCheckConfig(id="fair", **cfg), reference, schema or schema_of())
    return assess(check.run(window_of(data)))


def frame_data(df: pd.DataFrame, attrs=("group",)) -> dict[str, list]:
    data = {c: df[c].tolist() for c in (*attrs, "prediction", "target")}
    for c in ("prediction", "target"):
        data[c] = [None if v is None else int(v) for v in data[c]]
    return data


def headline(judged, metric: str, attr: str = "group"):
    return next(
        a
        for a in judged
        if a.measurement.headline
        and (a.measurement.metric, a.measurement.feature) == (metric, attr)
    )


def per_group(judged, metric: str, attr: str = "group") -> dict[str, object]:
    prefix = f"{attr}="
    return {
        a.measurement.feature.removeprefix(prefix): a
        for a in judged
        if not a.measurement.headline
        and a.measurement.metric == metric
        and a.measurement.feature.startswith(prefix)
    }


def metric_frame(y, p, g) -> pd.DataFrame:
    with warnings.catch_warnings():
        # sklearn warns when a group holds a single class; fairlearn's value is still defined
        warnings.simplefilter("ignore", UserWarning)
        return flm.MetricFrame(metrics=RATES, y_true=y, y_pred=p, sensitive_features=g).by_group


def fairlearn_metric(name: str, y, p, g) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # as in metric_frame
        return float(getattr(flm, METRICS[name].method)(y, p, sensitive_features=g))


# --- oracle on the workload (bench/workload.py) --------------------------------------------------


@pytest.fixture(scope="module")
def judged_current(current):
    return run(frame_data(current))


def test_per_group_rates_match_metricframe(current, judged_current):
    by_group = metric_frame(current["target"], current["prediction"], current["group"])
    for rate in RATES:
        ours = per_group(judged_current, rate)
        assert sorted(ours) == ["A", "B", "C"]
        for g, a in ours.items():
            assert a.measurement.value == pytest.approx(by_group.loc[g, rate], **EXACT), (rate, g)
            assert a.verdict == "pass"  # informational: never a breach
    sizes = per_group(judged_current, "group_size")
    assert {g: a.measurement.value for g, a in sizes.items()} == current[
        "group"
    ].value_counts().to_dict()


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_disparity_metric_matches_fairlearn(current, judged_current, name):
    ours = headline(judged_current, name).measurement
    y, p, g = current["target"], current["prediction"], current["group"]
    assert ours.method == METRICS[name].method
    assert hasattr(flm, ours.method)  # named as fairlearn names it
    assert ours.value == pytest.approx(fairlearn_metric(name, y, p, g), **EXACT)
    assert ours.params["groups"] == ["A", "B", "C"]
    assert ours.n_current > 0


def test_equalized_odds_reports_both_components(current, judged_current):
    m = headline(judged_current, "equalized_odds_difference").measurement
    y, p, g = current["target"], current["prediction"], current["group"]
    parts = m.params["components"]
    assert m.params["agg"] == "worst_case"
    assert parts["true_positive_rate_difference"] == pytest.approx(
        flm.true_positive_rate_difference(y, p, sensitive_features=g), **EXACT
    )
    assert parts["false_positive_rate_difference"] == pytest.approx(
        flm.false_positive_rate_difference(y, p, sensitive_features=g), **EXACT
    )
    assert m.value == max(parts.values())
    assert set(m.params["group_rates"]) == {"true_positive_rate", "false_positive_rate"}


def test_degraded_current_set_breaches_and_reference_passes(current, reference_set):
    # default config: the four-fifths rule and equalized odds difference <= 0.1
    cfg = FairnessCheckConfig(id="fair")
    schema = schema_of()
    check = build_check(cfg, EMPTY_REFERENCE, schema)
    assert isinstance(check, FairnessCheck)
    bad = assess(check.run(window_of(frame_data(current))))
    good = assess(check.run(window_of(frame_data(reference_set))))
    assert overall(bad) == "breach"
    assert overall(good) == "pass"
    ratio = headline(bad, "demographic_parity_ratio")
    assert ratio.verdict == "breach"
    assert ratio.measurement.params["four_fifths_rule"] is False
    assert headline(good, "demographic_parity_ratio").measurement.params["four_fifths_rule"]
    assert headline(bad, "equalized_odds_difference").verdict == "breach"
    # the disadvantaged-or-favoured group is visible to an auditor
    rates = ratio.measurement.params["group_rates"]["selection_rate"]
    assert max(rates, key=rates.get) == "C"


# --- edge cases ----------------------------------------------------------------------------


def test_small_group_is_insufficient_and_left_out(current):
    df = pd.concat([current[current.group != "C"], current[current.group == "C"].head(20)])
    judged = run(frame_data(df), min_group_size=30)
    for rate in RATES:
        assert per_group(judged, rate)["C"].verdict == "insufficient_data"
        assert per_group(judged, rate)["A"].verdict == "pass"
    assert per_group(judged, "group_size")["C"].verdict == "insufficient_data"
    rest = df[df.group != "C"]
    for name in HEADLINE:
        m = headline(judged, name)
        assert m.measurement.value == pytest.approx(
            fairlearn_metric(name, rest.target, rest.prediction, rest.group), **EXACT
        )
        assert m.measurement.params["groups"] == ["A", "B"]
        assert "C" in m.measurement.params["excluded_groups"]
        assert m.verdict == "pass"


def test_missing_attribute_rows_are_left_out_and_counted(current):
    data = frame_data(current.head(3000))
    data["group"] = [None if i % 7 == 0 else g for i, g in enumerate(data["group"])]
    judged = run(data)
    df = current.head(3000).assign(group=data["group"]).dropna(subset=["group"])
    for name in HEADLINE:
        m = headline(judged, name).measurement
        assert m.params["missing_attribute"] == sum(g is None for g in data["group"])
        assert m.value == pytest.approx(
            fairlearn_metric(name, df.target, df.prediction, df.group), **EXACT
        )


def test_unlabelled_rows_count_for_selection_rate_only(current):
    df = current.head(6000)
    data = frame_data(df)
    data["target"] = [None if i % 5 < 3 else y for i, y in enumerate(data["target"])]
    judged = run(data)
    labelled = df[[y is not None for y in data["target"]]]
    by_all = metric_frame(df.target, df.prediction, df.group)
    by_labelled = metric_frame(labelled.target, labelled.prediction, labelled.group)
    for g, a in per_group(judged, "selection_rate").items():
        assert a.measurement.value == pytest.approx(by_all.loc[g, "selection_rate"], **EXACT)
        assert a.measurement.n_current == (df.group == g).sum()
        assert a.measurement.params["labelled"] == (labelled.group == g).sum()
    for rate in LABEL_RATES:
        for g, a in per_group(judged, rate).items():
            assert a.measurement.value == pytest.approx(by_labelled.loc[g, rate], **EXACT)
    dp = headline(judged, "demographic_parity_difference").measurement
    assert dp.value == pytest.approx(
        fairlearn_metric(dp.metric, df.target, df.prediction, df.group), **EXACT
    )
    eo = headline(judged, "equalized_odds_difference").measurement
    assert eo.value == pytest.approx(
        fairlearn_metric(eo.metric, labelled.target, labelled.prediction, labelled.group), **EXACT
    )
    assert eo.n_current == len(labelled)


def test_group_without_positives_has_undefined_tpr_not_zero():
    """fairlearn (through sklearn's confusion_matrix) reports TPR 0 for a group with no
    positives; we report it as undefined and leave the group out of the TPR comparison only."""
    rng = np.random.default_rng(3)
    n = 600
    g = rng.choice(["a", "b", "c"], n)
    y = rng.integers(0, 2, n)
    y[g == "c"] = 0
    p = rng.integers(0, 2, n)
    data = {"group": g.tolist(), "prediction": p.tolist(), "target": y.tolist()}
    judged = run(data, min_group_size=5)
    by_group = metric_frame(y, p, g)
    assert by_group.loc["c", "true_positive_rate"] == 0.0  # fairlearn's convention
    tpr_c = per_group(judged, "true_positive_rate")["c"]
    assert math.isnan(tpr_c.measurement.value)
    assert tpr_c.verdict == "insufficient_data"
    eo = headline(judged, "equalized_odds_difference").measurement
    ab = g != "c"
    expected = max(
        flm.true_positive_rate_difference(y[ab], p[ab], sensitive_features=g[ab]),
        flm.false_positive_rate_difference(y, p, sensitive_features=g),
    )
    assert eo.value == pytest.approx(expected, **EXACT)
    assert eo.params["excluded_groups"] == {"c": {"true_positive_rate": 0}}
    assert eo.params["groups"] == ["a", "b", "c"]  # c still counts for the FPR gap


def test_single_group_is_insufficient_data(current):
    df = current[current.group == "A"].head(500)
    judged = run(frame_data(df))
    for name in METRICS:
        a = headline(judged, name)
        assert math.isnan(a.measurement.value)
        assert a.verdict == "insufficient_data"
    assert per_group(judged, "selection_rate")["A"].verdict == "pass"
    assert overall(judged) == "insufficient_data"


def test_text_labels_with_their_own_vocabularies():
    rng = np.random.default_rng(5)
    n = 900
    g = rng.choice(["x", "y"], n)
    pred = rng.choice(["approve", "deny"], n, p=[0.4, 0.6])
    # the label vocabulary differs from the prediction's: "appeal" sorts first, counts as negative
    label = rng.choice(["appeal", "approve", "deny"], n, p=[0.1, 0.4, 0.5])
    data = {"group": g.tolist(), "prediction": pred.tolist(), "target": label.tolist()}
    judged = run(data, positive_label="approve")
    y, p = (label == "approve").astype(int), (pred == "approve").astype(int)
    for name in METRICS:
        assert headline(judged, name).measurement.value == pytest.approx(
            fairlearn_metric(name, y, p, g), **EXACT
        )
    assert headline(judged, "selection_rate_difference").measurement.params["positive_label"] == (
        "approve"
    )


def test_unknown_positive_label_means_nobody_is_selected():
    data = {"group": ["a", "b"] * 50, "prediction": ["no"] * 100, "target": ["no"] * 100}
    judged = run(data, positive_label="yes")
    assert all(a.measurement.value == 0 for a in per_group(judged, "selection_rate").values())
    # 0 / 0: fairlearn's ratio is NaN too
    assert math.isnan(headline(judged, "demographic_parity_ratio").measurement.value)
    assert headline(judged, "demographic_parity_difference").measurement.value == 0


def test_unicode_group_names(current):
    df = current.head(2000)
    names = {"A": "女性", "B": "Ünïcödé", "C": "🙂 other"}
    g = df.group.map(names)
    data = frame_data(df.assign(group=g))
    judged = run(data)
    assert set(per_group(judged, "selection_rate")) == set(names.values())
    assert per_group(judged, "accuracy")["女性"].measurement.feature == "group=女性"
    for name in HEADLINE:
        assert headline(judged, name).measurement.value == pytest.approx(
            fairlearn_metric(name, df.target, df.prediction, g), **EXACT
        )


def test_two_sensitive_attributes_are_judged_separately(current):
    df = current.head(5000).assign(region=np.where(current.head(5000).num_00 > 0, "north", "south"))
    judged = run(frame_data(df, ("group", "region")), schema=schema_of(("group", "region")))
    for attr in ("group", "region"):
        for name in HEADLINE:
            m = headline(judged, name, attr).measurement
            assert m.params["attribute"] == attr
            assert m.value == pytest.approx(
                fairlearn_metric(name, df.target, df.prediction, df[attr]), **EXACT
            )
    assert set(per_group(judged, "selection_rate", "region")) == {"north", "south"}
    # `sensitive` in the config narrows the schema's attributes
    only = run(
        frame_data(df, ("group", "region")),
        schema=schema_of(("group", "region")),
        sensitive=("region",),
    )
    assert {a.measurement.feature for a in only if a.measurement.headline} == {"region"}


def test_without_a_label_column_only_selection_metrics_are_defined(current):
    df = current.head(2000)
    data = {"group": df.group.tolist(), "prediction": df.prediction.tolist()}
    judged = run(data, schema=schema_of(label=None))
    assert {a.measurement.metric for a in judged if not a.measurement.headline} == {
        "group_size",
        "selection_rate",
    }
    for name in METRICS:
        a = headline(judged, name)
        assert (a.verdict == "insufficient_data") == (name in NEEDS_LABEL), name
    assert "needs a label" in headline(judged, "equalized_odds_ratio").measurement.params["note"]


def test_relative_limit_compares_with_the_references_value(reference_set, current):
    ref_data = frame_data(reference_set)
    ref_window = window_of(ref_data)
    reference = Reference(
        reference_id="ref",
        fingerprint="",
        n_rows=len(reference_set),
        columns=ref_window.columns,
        vocabularies=ref_window.vocabularies,
    )
    judged = run(
        frame_data(current),
        reference=reference,
        metrics={"demographic_parity_ratio": Limit(min=-0.1, relative=True)},
    )
    a = headline(judged, "demographic_parity_ratio")
    expected_ref = fairlearn_metric(
        "demographic_parity_ratio",
        reference_set.target,
        reference_set.prediction,
        reference_set.group,
    )
    assert a.measurement.params["reference_value"] == pytest.approx(expected_ref, **EXACT)
    assert a.measurement.threshold.breach == pytest.approx(expected_ref * 0.9, **EXACT)
    assert a.verdict == "breach"


def test_registry_names():
    assert set(HEADLINE) <= set(METRICS)
    assert {"true_positive_rate_difference", "false_positive_rate_difference"} <= set(METRICS)
    assert "accuracy_difference" in METRICS
    assert "demographic_parity_difference" not in NEEDS_LABEL
    assert "equalized_odds_difference" in NEEDS_LABEL


# --- property: any binary data, fairlearn's numbers -----------------------------------------

rows = st.lists(
    st.tuples(st.sampled_from(["p", "q", "r"]), st.integers(0, 1), st.integers(0, 1)),
    min_size=2,
    max_size=120,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows)
def test_property_matches_fairlearn_on_random_data(data):
    g = np.array([r[0] for r in data])
    p = np.array([r[1] for r in data])
    y = np.array([r[2] for r in data])
    judged = run(
        {"group": g.tolist(), "prediction": p.tolist(), "target": y.tolist()}, min_group_size=1
    )
    by_group = metric_frame(y, p, g)
    for rate in RATES:
        for grp, a in per_group(judged, rate).items():
            if a.measurement.n_current:  # defined: fairlearn's value; else ours is NaN
                assert a.measurement.value == pytest.approx(by_group.loc[grp, rate], **EXACT)
            else:
                assert math.isnan(a.measurement.value)
    for name in ("demographic_parity_difference", "demographic_parity_ratio"):
        expected = fairlearn_metric(name, y, p, g) if len(set(g)) > 1 else math.nan
        assert headline(judged, name).measurement.value == pytest.approx(expected, **EXACT)
    # equalized odds over the groups where TPR (FPR) is defined, as fairlearn's by-group values
    for name, worst in (("equalized_odds_difference", max), ("equalized_odds_ratio", min)):
        parts = []
        for rate, cls in (("true_positive_rate", 1), ("false_positive_rate", 0)):
            defined = sorted(set(g[y == cls]))
            vals = by_group.loc[defined, rate].to_numpy() if defined else np.array([])
            if len(vals) < 2:
                parts.append(math.nan)
            elif name.endswith("difference"):
                parts.append(vals.max() - vals.min())
            else:
                parts.append(vals.min() / vals.max() if vals.max() > 0 else math.nan)
        short = any(len(set(g[y == cls])) < 2 for cls in (0, 1))
        defined = [v for v in parts if not math.isnan(v)]
        expected = worst(defined) if defined and not short else math.nan
        assert headline(judged, name).measurement.value == pytest.approx(expected, **EXACT)
        if not short and all({0, 1} <= set(y[g == x]) for x in set(g)) and len(defined) == 2:
            # every rate defined in every group, no 0 / 0 ratio: fairlearn's own function agrees
            assert expected == pytest.approx(fairlearn_metric(name, y, p, g), **EXACT)


def test_numeric_prediction_column_compares_with_the_positive_label_as_a_number(current):
    df = current.head(3000)
    schema = ModelSchema(
        SchemaConfig(
            numeric=("x",),
            prediction="prediction",
            prediction_type="numeric",
            label="target",
            sensitive=("group",),
        )
    )
    group, vocab = encode(df.group.tolist())
    pred = df.prediction.to_numpy(dtype=np.float64).copy()
    pred[::10] = np.nan  # missing predictions: left out of the selection rate
    window = WindowData(
        info=WindowInfo(start=0, end=1, seen=len(df), sampled=len(df)),
        columns={"group": group, "prediction": pred, "target": df.target.to_numpy(np.float64)},
        vocabularies={"group": vocab},
        record_ids=(),
    )
    cfg = FairnessCheckConfig(id="f", min_samples=1, metrics={m: Limit(max=10) for m in HEADLINE})
    judged = assess(FairnessCheck(cfg, EMPTY_REFERENCE, schema).run(window))
    kept = df[~np.isnan(pred)]
    for name in HEADLINE:
        assert headline(judged, name).measurement.value == pytest.approx(
            fairlearn_metric(name, kept.target, kept.prediction, kept.group), **EXACT
        )


def test_equalized_odds_ratio_leaves_out_an_all_zero_component():
    """With no true positives in any group TPR's ratio is 0 / 0; the FPR ratio still counts.

    fairlearn's `min()` over [TPR ratio, FPR ratio] returns NaN here (the builtin keeps a
    leading NaN) but the FPR ratio when the NaN comes second; we do the latter either way."""
    g = np.array(["a"] * 40 + ["b"] * 40)
    y = np.array(([1] * 10 + [0] * 30) * 2)
    p = np.zeros(80, dtype=int)
    p[np.flatnonzero((y == 0) & (g == "a"))[:6]] = 1  # FPR a = 6/30
    p[np.flatnonzero((y == 0) & (g == "b"))[:3]] = 1  # FPR b = 3/30; no true positive at all
    data = {"group": g.tolist(), "prediction": p.tolist(), "target": y.tolist()}
    m = headline(run(data, min_group_size=5), "equalized_odds_ratio").measurement
    assert m.value == pytest.approx(0.5, **EXACT)
    assert m.params["components"] == {
        "true_positive_rate_ratio": None,
        "false_positive_rate_ratio": 0.5,
    }
    assert math.isnan(fairlearn_metric("equalized_odds_ratio", y, p, g))
    assert flm.false_positive_rate_ratio(y, p, sensitive_features=g) == pytest.approx(0.5)
