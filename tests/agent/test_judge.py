from __future__ import annotations

import math

import pytest

from aims_agent.agent.judge import assess, overall, verdict
from aims_agent.records import Measurement, Threshold


@pytest.mark.parametrize(
    ("value", "threshold", "expected"),
    [
        (0.5, Threshold(breach=0.5), "breach"),  # above, inclusive: >=
        (0.5, Threshold(breach=0.5, inclusive=False), "pass"),
        (0.05, Threshold(breach=0.05, direction="below"), "breach"),  # KS: p <= threshold
        (0.05, Threshold(breach=0.05, direction="below", inclusive=False), "pass"),  # chi2: p <
        (0.3, Threshold(breach=0.5, warn=0.3), "warn"),
        (0.29, Threshold(breach=0.5, warn=0.3), "pass"),
        (0.9, Threshold(breach=0.7, warn=0.8, direction="below"), "pass"),
        (0.75, Threshold(breach=0.7, warn=0.8, direction="below"), "warn"),
        (math.nan, Threshold(breach=0.5), "insufficient_data"),
    ],
)
def test_verdict(value, threshold, expected):
    assert verdict(value, 100, threshold) == expected


def test_minimum_sample_size_means_insufficient_data():
    assert verdict(0.9, 29, Threshold(breach=0.5, min_samples=30)) == "insufficient_data"
    assert verdict(0.9, 30, Threshold(breach=0.5, min_samples=30)) == "breach"


def m(value, headline, breach=0.5):
    return Measurement(
        check_id="c",
        kind="drift",
        metric="x",
        value=value,
        method="t",
        n_current=100,
        threshold=Threshold(breach=breach),
        headline=headline,
    )


def test_overall_is_worst_headline_and_ignores_detail():
    assert overall(assess([m(0.1, True), m(0.9, False)])) == "pass"
    assert overall(assess([m(0.9, True), m(0.1, False)])) == "breach"
    assert overall(assess([m(0.1, False)])) == "insufficient_data"
    # an unjudged metric never masks a breach, but keeps a run from passing
    assert overall(assess([m(math.nan, True), m(0.9, True)])) == "breach"
    assert overall(assess([m(math.nan, True), m(0.1, True)])) == "insufficient_data"
