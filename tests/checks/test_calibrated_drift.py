"""The calibrated drift preset: seeded A/A runs hold the configured false-alarm rate where
Evidently's fixed thresholds cry wolf; shifts are still found; small windows are not judged.

A/A windows are fresh samples of the reference's population (not resamples of the
reference), so these tests measure the calibration, not the bootstrap against itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from aims_agent.agent.judge import assess, overall
from aims_agent.checks.base import Reference
from aims_agent.checks.calibration import bucket, null_quantile
from aims_agent.checks.kinds.drift import DriftCheck
from aims_agent.checks.stattests import REGISTRY, prepare_reference
from aims_agent.config import DriftCheckConfig, SchemaConfig
from aims_agent.records import WindowData, WindowInfo
from aims_agent.schema import ModelSchema

LEVELS = 40
_SHARES = np.random.default_rng(99).dirichlet(np.full(LEVELS, 0.8))


def population(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    """Unlike the workload: heavy tails, skew, integer counts, a 40-level categorical."""
    return {
        "heavy": rng.standard_t(3, n) + shift * 1.0,
        "skewed": rng.lognormal(0, 0.9, n) + shift * 1.2,
        "counts": rng.poisson(6 + shift * 2.4, n).astype(float),
        "normal": rng.normal(10, 2, n) + shift * 2,
        "cat": rng.choice(LEVELS, n, p=_SHARES).astype(np.int32),
        "prediction": rng.integers(0, 2, n).astype(np.int32),
    }


SCHEMA = ModelSchema(
    SchemaConfig(
        numeric=("heavy", "skewed", "counts", "normal"),
        categorical=("cat",),
        prediction="prediction",
    )
)
VOCAB = {"cat": tuple(f"v{i:02d}" for i in range(LEVELS)), "prediction": ("0", "1")}


def reference(n: int, seed: int = 1) -> Reference:
    cols = population(np.random.default_rng(seed), n)
    return Reference(
        reference_id="ref", fingerprint="f", n_rows=n, columns=cols, vocabularies=VOCAB
    )


def window(cols: dict[str, np.ndarray]) -> WindowData:
    n = len(next(iter(cols.values())))
    return WindowData(
        info=WindowInfo(start=0, end=1, seen=n, sampled=n),
        columns=cols,
        vocabularies=VOCAB,
        record_ids=tuple(str(i) for i in range(n)),
    )


def drifted(check: DriftCheck, data: WindowData) -> dict[str, str]:
    return {
        a.measurement.feature: a.verdict for a in assess(check.run(data)) if a.measurement.feature
    }


def test_aa_false_alarm_rate_holds_where_evidently_cries_wolf() -> None:
    """A 20,000-row reference, same-population windows of 300 rows. With a low effect floor
    the null quantile alone decides: each feature flags about alpha of the windows; Evidently's
    fixed 0.1 flags far more of them."""
    ref = reference(20_000)
    alpha = 0.05  # large enough that 200 windows x 5 features measure it
    low_floor = {c: {"threshold": 1e-6} for c in ("heavy", "skewed", "normal", "counts", "cat")}
    calibrated = DriftCheck(
        DriftCheckConfig(
            id="c", false_alarm_rate=alpha, replicates=399, columns=low_floor, min_samples=1
        ),
        ref,
        SCHEMA,
    )
    evidently = DriftCheck(DriftCheckConfig(id="e", preset="evidently"), ref, SCHEMA)
    rng = np.random.default_rng(2024)
    ours = theirs = trials = 0
    for _ in range(200):
        data = window(population(rng, 300))
        v = drifted(calibrated, data)
        ours += sum(v[c] == "breach" for c in low_floor)
        theirs += sum(drifted(evidently, data)[c] == "breach" for c in low_floor)
        trials += len(low_floor)
    rate = ours / trials
    se = math.sqrt(alpha * (1 - alpha) / trials)
    print(f"A/A at 300 rows: calibrated {rate:.4f}, evidently {theirs / trials:.4f}")
    assert alpha - 4 * se <= rate <= alpha + 4 * se, rate
    assert theirs / trials > 3 * alpha, theirs / trials


def test_default_floor_judges_no_small_window_and_finds_a_shift() -> None:
    ref = reference(20_000)
    check = DriftCheck(DriftCheckConfig(id="d", include_prediction=False), ref, SCHEMA)
    rng = np.random.default_rng(5)
    small = assess(check.run(window(population(rng, 100))))
    assert overall(small) == "insufficient_data"
    share = next(a for a in small if a.measurement.headline)
    needed = share.measurement.params["n_needed"]
    assert needed > 100 and share.measurement.threshold.min_samples == needed
    # from the size it names on, the same population passes and a 0.5 sd shift breaches
    n = int(needed) + 50
    aa = assess(check.run(window(population(rng, n))))
    assert overall(aa) == "pass", [(a.measurement.feature, a.verdict) for a in aa]
    shifted = population(rng, n, shift=0.5)
    shifted["cat"] = rng.choice(LEVELS, n, p=np.roll(_SHARES, 7)).astype(np.int32)
    judged = assess(check.run(window(shifted)))
    assert overall(judged) == "breach"
    assert {a.measurement.feature for a in judged if a.verdict == "breach"} >= {"normal", "cat"}


def test_evidence_names_the_null_quantile_and_replays() -> None:
    ref = reference(5_000)
    cfg = DriftCheckConfig(id="d", seed=7, replicates=99, false_alarm_rate=0.02)
    check = DriftCheck(cfg, ref, SCHEMA)
    data = window(population(np.random.default_rng(8), 3_000))
    m = next(m for m in check.run(data) if m.feature == "normal")
    p = m.params
    assert m.method == "wasserstein_iqr" and p["effect_floor"] == 0.1
    null = p["null"]
    assert null["seed"] == 7 and null["n"] == bucket(3_000) and null["replicates"] == 99
    assert null["alpha"] == 0.02 and null["method"] == "two-sample bootstrap"
    assert m.threshold.breach == max(p["null_quantile"], 0.1)
    # replay from the record alone: same test, same reference, same seed -> same quantile
    stats = prepare_reference(ref.columns["normal"], kind="numeric")
    again = null_quantile(
        REGISTRY["wasserstein_iqr"], stats, 3_000, column="normal", alpha=0.02,
        replicates=99, seed=7,
    )  # fmt: skip
    assert again.quantile == null["quantile"]
    share = next(m for m in check.run(data) if m.headline).params
    assert share["family"] == ["heavy", "skewed", "counts", "normal", "cat"]
    k, r = 5, 3  # 0.5 of 5 features: 3 drifted breach
    assert share["drifts_to_breach"] == r
    assert share["run_false_alarm_bound"] == pytest.approx(k * 0.02 / r)


def test_null_quantiles_are_cached_by_size_bucket() -> None:
    ref = reference(5_000)
    check = DriftCheck(DriftCheckConfig(id="d", false_alarm_rate=0.05), ref, SCHEMA)
    check.calibrate(2_000)
    keys = {k for k in ref.cache if k.startswith("null|")}
    assert len(keys) == 6 and all(f"|{bucket(2_000)}|" in k for k in keys)
    assert {k for k in ref.cache if k.startswith("stats|")} == {
        f"stats|{c}" for c in ("heavy", "skewed", "counts", "normal", "cat", "prediction")
    }
    check.run(window(population(np.random.default_rng(1), bucket(2_000) + 1)))
    assert {k for k in ref.cache if k.startswith("null|")} == keys  # same bucket: cached


def test_family_and_family_wise_rate() -> None:
    ref = reference(5_000)
    cfg = DriftCheckConfig(
        id="d", family=("normal", "prediction"), family_false_alarm_rate=0.002, replicates=49
    )
    check = DriftCheck(cfg, ref, SCHEMA)
    share = next(
        m for m in check.run(window(population(np.random.default_rng(3), 2_000))) if m.headline
    )
    assert share.params["family"] == ["normal", "prediction"]
    # 1 of 2 breaches at share 0.5: alpha = 0.002 * 1 / 2 keeps P(run alarm) <= 0.002
    assert share.params["feature_false_alarm_rate"] == pytest.approx(0.001)
    assert share.params["run_false_alarm_bound"] == pytest.approx(0.002)


def test_multiple_testing_belongs_to_the_evidently_preset() -> None:
    with pytest.raises(ValidationError, match="multiple_testing: only with preset: evidently"):
        DriftCheckConfig(id="d", multiple_testing="bonferroni")
    DriftCheckConfig(id="d", preset="evidently", multiple_testing="bonferroni")


def test_small_references_use_two_sample_tests() -> None:
    check = DriftCheck(DriftCheckConfig(id="d", replicates=49), reference(800), SCHEMA)
    methods = {c.name: c.test.alias for c in check.columns if c.test}
    assert methods["cat"] == "chi2_contingency" and methods["normal"] == "anderson"
    big = DriftCheck(DriftCheckConfig(id="d", replicates=49), reference(5_000), SCHEMA)
    methods = {c.name: c.test.alias for c in big.columns if c.test}
    assert methods["cat"] == "jensenshannon" and methods["heavy"] == "wasserstein_iqr"
