"""The oversight check against plain counting over the same decisions (a loop in Python, the
median from the statistics module)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from aims_agent.agent.judge import assess
from aims_agent.checks.base import build_check, config_problems
from aims_agent.config import Limit, OversightCheckConfig, SchemaConfig
from aims_agent.records import WindowData, WindowInfo
from aims_agent.schema import (
    COMPLAINT,
    ESCALATED,
    OVERRIDDEN,
    REVIEW_SECONDS,
    REVIEWED,
    FeedbackRecord,
    ModelSchema,
    feedback_cells,
)
from tests.checks.frames import encode

CFG = SchemaConfig(numeric=("x",), prediction="p", score="s")
ALL = ("review_rate", "override_rate", "escalation_rate", "complaint_rate", "median_review_seconds")


def window(n: int, seed: int) -> tuple[WindowData, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {
        "x": rng.normal(size=n),
        "p": rng.integers(0, 2, n).astype(np.int32),
        "s": rng.random(n),
        REVIEWED: np.where(rng.random(n) < 0.7, 1.0, np.where(rng.random(n) < 0.5, 0.0, np.nan)),
        OVERRIDDEN: np.where(rng.random(n) < 0.1, 1.0, np.nan),
        ESCALATED: np.where(rng.random(n) < 0.05, 1.0, 0.0),
        COMPLAINT: np.where(rng.random(n) < 0.02, 1.0, np.nan),
        REVIEW_SECONDS: rng.exponential(3600, n),
    }
    cols["p"][::17] = -1  # no prediction: not a decision
    cols["s"][::23] = np.nan
    # as feedback_cells sets them: an override or escalation is a review
    cols[REVIEWED] = np.where((cols[OVERRIDDEN] == 1) | (cols[ESCALATED] == 1), 1.0, cols[REVIEWED])
    cols[REVIEW_SECONDS] = np.where(cols[REVIEWED] == 1, cols[REVIEW_SECONDS], np.nan)
    info = WindowInfo(start=0.0, end=1.0, seen=n, sampled=n, rejected=0)
    data = WindowData(
        info=info,
        columns=cols,
        vocabularies={"p": ("0", "1")},
        record_ids=tuple(f"r{i}" for i in range(n)),
    )
    return data, cols


def counted(cols, band=None):
    """The metrics by counting row by row."""
    dec = rev = needs = needs_rev = over = esc = comp = 0
    secs = []
    for i in range(len(cols["p"])):
        if cols["p"][i] < 0:
            continue
        dec += 1
        reviewed = cols[REVIEWED][i] == 1
        s = cols["s"][i]
        need = band is None or (not math.isnan(s) and band[0] <= s <= band[1])
        needs += need
        needs_rev += need and reviewed
        comp += cols[COMPLAINT][i] == 1
        if reviewed:
            rev += 1
            over += cols[OVERRIDDEN][i] == 1
            esc += cols[ESCALATED][i] == 1
            if not math.isnan(cols[REVIEW_SECONDS][i]):
                secs.append(float(cols[REVIEW_SECONDS][i]))
    return {
        "review_rate": needs_rev / needs,
        "override_rate": over / rev,
        "escalation_rate": esc / rev,
        "complaint_rate": comp / dec,
        "median_review_seconds": statistics.median(secs),
    }


def run(data, **settings):
    schema = ModelSchema(CFG, oversight=True)
    cfg = OversightCheckConfig(id="o", metrics={m: Limit(min=0.0) for m in ALL}, **settings)
    reference = encode(ModelSchema(CFG), *[_frame()] * 2)[0]
    return {m.metric: m for m in build_check(cfg, reference, schema).run(data)}


def _frame():
    import pandas as pd

    return pd.DataFrame({"x": [0.0, 1.0], "p": [0, 1], "s": [0.2, 0.8]})


@pytest.mark.parametrize("band", [None, (0.3, 0.7)])
def test_the_rates_are_the_counts(band):
    data, cols = window(3000, 4)
    settings = {} if band is None else {"needs_review": {"score_between": band}}
    got = run(data, **settings)
    want = counted(cols, band)
    for name in ALL:
        assert got[name].value == pytest.approx(want[name], rel=1e-12), name
    assert got["review_rate"].params["needing_review"] == got["review_rate"].n_current


def test_limits_hold_in_both_directions():
    data, _ = window(2000, 5)
    schema = ModelSchema(CFG, oversight=True)
    reference = encode(ModelSchema(CFG), _frame(), _frame())[0]
    override = run(data)["override_rate"].value
    verdicts = {}
    for label, limit in {
        "rubber-stamping": Limit(min=override + 0.05, max=0.9),
        "fine": Limit(min=override - 0.05, max=override + 0.05),
        "too many": Limit(min=0.0, max=override - 0.05),
    }.items():
        cfg = OversightCheckConfig(id="o", metrics={"override_rate": limit})
        (m,) = assess(build_check(cfg, reference, schema).run(data))
        verdicts[label] = m.verdict
    assert verdicts == {"rubber-stamping": "breach", "fine": "pass", "too many": "breach"}


def test_no_feedback_at_all_is_no_review():
    data, cols = window(500, 6)
    for name in (REVIEWED, OVERRIDDEN, ESCALATED, COMPLAINT, REVIEW_SECONDS):
        cols[name][:] = np.nan
    got = run(data)
    assert got["review_rate"].value == 0.0
    assert math.isnan(got["override_rate"].value) and got["override_rate"].n_current == 0


def test_feedback_cells():
    now = 1_700_000_000.0
    assert feedback_cells(FeedbackRecord(id="a", overridden=True), now=now) == {
        OVERRIDDEN: 1.0,
        REVIEWED: 1.0,
        REVIEW_SECONDS: now,
    }
    assert feedback_cells(FeedbackRecord(id="a", complaint=True), now=now) == {COMPLAINT: 1.0}
    assert feedback_cells(FeedbackRecord(id="a", reviewed=False), now=now) == {REVIEWED: 0.0}
    item = FeedbackRecord(id="a", reviewed=True, reviewed_at=now - 60, reviewer="Ana")
    assert feedback_cells(item, now=now) == {REVIEWED: 1.0, REVIEW_SECONDS: now - 60}


def test_config_problems_are_named():
    cfg = OversightCheckConfig(
        id="o", metrics={"nope": Limit(max=1)}, needs_review={"score_between": [0.4, 0.6]}
    )
    no_score = SchemaConfig(numeric=("x",), prediction="p")
    assert config_problems("models[0].checks[0]", cfg, no_score) == [
        "models[0].checks[0].metrics.nope: unknown metric; known: complaint_rate, "
        "escalation_rate, median_review_seconds, override_rate, review_rate",
        "models[0].checks[0].needs_review: a score band needs schema.score",
    ]
    with pytest.raises(ValueError, match="low must be <= high"):
        OversightCheckConfig(id="o", needs_review={"score_between": [0.6, 0.4]})
