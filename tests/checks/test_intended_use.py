"""The intended-use check against independent oracles on the same data: pandas for the envelope
(between, isin, isna), scikit-learn's MinCovDet and its own `mahalanobis` for novelty."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.covariance import MinCovDet

from aims_agent.agent.judge import assess, overall
from aims_agent.checks.base import build_check, config_problems
from aims_agent.checks.kinds.intended_use import FIT_ROWS
from aims_agent.config import IntendedUseCheckConfig, SchemaConfig
from aims_agent.config.load import parse_config
from aims_agent.errors import ConfigError
from aims_agent.records import Measurement
from aims_agent.schema import ModelSchema
from tests.checks.frames import encode

SCHEMA = {"prediction": "prediction", "score": "score", "label": "target", "sensitive": ("group",)}


def schema_config(gen) -> SchemaConfig:
    return SchemaConfig(numeric=tuple(gen.NUM_COLS), categorical=tuple(gen.CAT_COLS), **SCHEMA)


def by_key(ms: list[Measurement]) -> dict[tuple[str, str | None], Measurement]:
    return {(m.metric, m.feature): m for m in ms}


def run(gen, ref, cur, **settings):
    schema = ModelSchema(schema_config(gen))
    reference, window = encode(schema, ref, cur)
    ids = tuple(f"r{i}" for i in range(len(cur)))
    window = dataclasses.replace(window, record_ids=ids)
    cfg = IntendedUseCheckConfig(id="use", **settings)
    return by_key(build_check(cfg, reference, schema).run(window))


@pytest.fixture(scope="module")
def frames(gen):
    ref = gen.make(6000, 42, False)
    cur = gen.make(3000, 43, True)
    cur.loc[::7, "num_03"] = np.nan  # missing is not outside
    cur.loc[::11, "num_04"] = np.inf  # inf always is
    cur.loc[::13, "num_05"] = ref["num_05"].max() + 1
    cur.loc[::17, "cat_3"] = "never_seen"
    cur.loc[::5, "cat_2"] = None
    return ref, cur


def test_the_reference_envelope_matches_pandas(gen, frames):
    ref, cur = frames
    got = run(gen, ref, cur, novelty=False)
    outside = pd.Series(False, index=cur.index)
    for col in gen.NUM_COLS:
        r = ref[col][np.isfinite(ref[col])]
        x = cur[col]
        out = x.notna() & ~x.between(r.min(), r.max())
        outside |= out
        m = got[("outside_envelope_share", col)]
        assert m.value == out.sum() / x.notna().sum(), col
        assert m.params["envelope_source"] == "reference" and not m.headline
    for col in gen.CAT_COLS:
        x = cur[col]
        out = x.notna() & ~x.astype("string").isin(ref[col].dropna().astype(str))
        outside |= out
        assert got[("outside_envelope_share", col)].value == out.sum() / x.notna().sum(), col
    head = got[("outside_envelope_share", None)]
    assert head.headline and head.n_current == len(cur)
    assert head.value == outside.mean()
    assert head.params["examples"] == [f"r{i}" for i in np.flatnonzero(outside)[:5]]
    assert got[("outside_envelope_share", "cat_3")].params["unexpected_categories"] == [
        "never_seen"
    ]
    assert ("novelty_share", None) not in got


def test_a_configured_envelope_replaces_the_reference(gen, frames):
    ref, cur = frames
    envelope = {"num_00": {"min": 0.0}, "cat_0": {"categories": ["a0", "a1"]}}
    got = run(gen, ref, cur, novelty=False, envelope=envelope)
    x = cur["num_00"]
    m = got[("outside_envelope_share", "num_00")]
    assert m.value == (x < 0).sum() / x.notna().sum()
    assert m.params == {
        "min": 0.0,
        "max": None,
        "envelope_source": "config",
        "outside": (x < 0).sum(),
    }
    c = cur["cat_0"].astype("string")
    out = c.notna() & ~c.isin(["a0", "a1"])
    assert got[("outside_envelope_share", "cat_0")].value == out.sum() / c.notna().sum()


def test_missing_required_fields(gen, frames):
    ref, cur = frames
    got = run(gen, ref, cur, novelty=False, required=["num_03", "cat_2"])
    missing = cur["num_03"].isna() | cur["cat_2"].isna()
    m = got[("missing_required_share", None)]
    assert m.value == missing.mean() and m.headline
    assert m.params["examples"] == [f"r{i}" for i in np.flatnonzero(missing)[:5]]
    assert overall(assess(list(got.values()))) == "breach"  # default: no record may miss one


def _oracle(gen, ref, cur, quantile=0.99, seed=0):
    """MinCovDet fitted on the same seeded sample of complete reference rows; distances from
    scikit-learn's own `mahalanobis`."""
    cols = list(gen.NUM_COLS)
    x = ref[cols].to_numpy(float)
    x = x[np.isfinite(x).all(axis=1)]
    order = np.random.default_rng(seed).permutation(len(x))
    mcd = MinCovDet(random_state=seed).fit(x[order[:FIT_ROWS]])
    held = order[FIT_ROWS:] if len(x) >= 2 * FIT_ROWS else order
    cutoff = np.quantile(mcd.mahalanobis(x[held]), quantile)
    y = cur[cols].to_numpy(float)
    y = y[np.isfinite(y).all(axis=1)]
    return mcd.mahalanobis(y), cutoff


def test_novelty_matches_scikit_learns_mahalanobis(gen):
    ref = gen.make(6000, 42, False)
    cur = gen.make(2000, 43, True)
    cur.loc[::9, "num_01"] = np.nan  # not scored
    d2, cutoff = _oracle(gen, ref, cur)
    m = run(gen, ref, cur)[("novelty_share", None)]
    assert m.params["cutoff"] == pytest.approx(cutoff, rel=1e-10)
    assert m.n_current == len(d2) and m.params["not_scored"] == len(cur) - len(d2)
    assert m.value == (d2 > cutoff).mean()
    assert m.params["largest"] == pytest.approx(d2.max(), rel=1e-10)
    assert m.params["fitted_rows"] == FIT_ROWS and m.params["cutoff_rows"] == 6000 - FIT_ROWS
    scored = np.flatnonzero(cur[list(gen.NUM_COLS)].notna().all(axis=1).to_numpy())
    worst = scored[np.argsort(-d2, kind="stable")[:5]]
    assert m.params["examples"] == [f"r{i}" for i in worst]


def test_novelty_holds_its_rate_without_novelty_and_sees_a_shift(gen):
    ref = gen.make(8000, 42, False)
    same = gen.make(4000, 7, False)
    m = run(gen, ref, same)[("novelty_share", None)]
    # about 1 % of same-distribution records exceed the reference's 99th percentile
    lo, hi = stats.binom.interval(0.999, m.n_current, 0.01)
    assert lo / m.n_current <= m.value <= hi / m.n_current
    # the workload's heavy-tailed features give the reference's own distances a long tail (its
    # 99th percentile is about 93 against a median of 21): a record must be far to be novel
    shifted = same.copy()
    shifted[gen.NUM_COLS[0]] = shifted[gen.NUM_COLS[0]] + 10 * ref[gen.NUM_COLS[0]].std()
    assert run(gen, ref, shifted)[("novelty_share", None)].value > 0.5


def test_constant_features_are_left_out_and_too_few_features_are_stated(gen, frames):
    ref, cur = frames
    ref, cur = ref.copy(), cur.copy()
    ref["num_02"] = 1.0
    m = run(gen, ref, cur)[("novelty_share", None)]
    assert m.params["left_out"] == ["num_02"] and "num_02" not in m.params["features"]
    one = SchemaConfig(numeric=("num_00",), categorical=("cat_0",), **SCHEMA)
    schema = ModelSchema(one)
    reference, window = encode(schema, ref, cur)
    got = build_check(IntendedUseCheckConfig(id="u"), reference, schema).run(window)
    novelty = by_key(got)[("novelty_share", None)]
    assert math.isnan(novelty.value) and novelty.method.startswith("not measured")


def test_config_problems_are_named(gen, tmp_path):
    schema = schema_config(gen)
    cfg = IntendedUseCheckConfig(
        id="u",
        envelope={"nope": {"min": 1}, "num_00": {"categories": ["x"]}, "cat_0": {"max": 2}},
        required=["ghost"],
    )
    assert config_problems("models[0].checks[0]", cfg, schema) == [
        "models[0].checks[0].envelope.nope: not a feature of the schema",
        "models[0].checks[0].envelope.num_00: a numeric feature takes min / max",
        "models[0].checks[0].envelope.cat_0: a categorical feature takes categories",
        "models[0].checks[0].required.ghost: not a feature of the schema",
    ]
    with pytest.raises(ValueError, match="a range or categories, not both"):
        IntendedUseCheckConfig(id="u", envelope={"num_00": {"min": 0, "categories": ["a"]}})
    reference = tmp_path / "ref.csv"
    reference.write_text("a,p\n1,0\n")
    data = {
        "agent": {"tokens": [{"name": "t", "env": "AIMS_TEST_TOKEN", "scopes": ["read"]}]},
        "models": [
            {
                "name": "m",
                "version": "1",
                "ai_system_id": "AIS-1",
                "reference": {"path": str(reference)},
                "schema": {"numeric": ["a"], "prediction": "p"},
                "checks": [{"id": "u", "kind": "intended_use", "novelty_quantile": 2}],
            }
        ],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data, base_dir=tmp_path)
    assert any("models[0].checks[0].novelty_quantile" in p for p in caught.value.problems)
