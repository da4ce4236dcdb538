"""Human oversight of decisions (ISO/IEC 42001 A.9.2, A.9.3; EU AI Act Art. 14, Art. 26(5)).

Reviewers' tools post what review did with each decision to /v1/models/{model}/feedback; it is
joined to the window's records by id like a late label, as the window's oversight columns. On
the window's decisions (records with a prediction):
- `review_rate`: reviewed among the decisions that policy says need review (`needs_review`: a
  score band; default every decision);
- `override_rate` and `escalation_rate`: overridden / escalated among the reviewed decisions;
- `complaint_rate`: complaints per decision;
- `median_review_seconds`: from the decision to its review, over the reviewed decisions.
Each configured metric is a headline judged by its `Limit`, in both directions where both are
set: an override rate near zero can mean reviews that rubber-stamp. A rate over no decisions
is NaN (insufficient data). Feedback joins only records the window still holds: give the window
a span longer than the time reviews take.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aims_agent.checks.base import Reference, limit_threshold, register, unknown_metrics
from aims_agent.config import OversightCheckConfig, SchemaConfig
from aims_agent.records import Measurement, WindowData
from aims_agent.schema import (
    COMPLAINT,
    ESCALATED,
    OVERRIDDEN,
    REVIEW_SECONDS,
    REVIEWED,
    ModelSchema,
)

KIND = "oversight"
Flags = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Decisions:
    """The window's decisions and what review did with them."""

    made: Flags  # the record carries a decision (a prediction)
    needs_review: Flags
    reviewed: Flags
    overridden: Flags
    escalated: Flags
    complaint: Flags
    review_seconds: npt.NDArray[np.float64]  # of the reviewed decisions that say when


def _share(hits: Flags, among: Flags) -> tuple[float, int]:
    n = int(among.sum())
    return (int((hits & among).sum()) / n if n else math.nan), n


METRICS: dict[str, tuple[Callable[[Decisions], tuple[float, int]], str]] = {
    "review_rate": (
        lambda d: _share(d.reviewed, d.needs_review),
        "share of the decisions needing review that a person reviewed",
    ),
    "override_rate": (
        lambda d: _share(d.overridden, d.reviewed),
        "share of the reviewed decisions that the reviewer overrode",
    ),
    "escalation_rate": (
        lambda d: _share(d.escalated, d.reviewed),
        "share of the reviewed decisions that the reviewer escalated",
    ),
    "complaint_rate": (
        lambda d: _share(d.complaint, d.made),
        "complaints per decision",
    ),
    "median_review_seconds": (
        lambda d: (
            (float(np.median(d.review_seconds)), len(d.review_seconds))
            if len(d.review_seconds)
            else (math.nan, 0)
        ),
        "median seconds from the decision to its review",
    ),
}


def _problems(where: str, check: OversightCheckConfig, schema: SchemaConfig) -> list[str]:
    problems = unknown_metrics(where, check.metrics, METRICS)
    if check.needs_review is not None and not schema.score:
        problems.append(f"{where}.needs_review: a score band needs schema.score")
    return problems


@register(KIND, problems=_problems)
class OversightCheck:
    kind = KIND

    def __init__(
        self, cfg: OversightCheckConfig, reference: Reference, schema: ModelSchema
    ) -> None:
        self.id = cfg.id
        self.cfg = cfg
        self.prediction = next(c.name for c in schema.columns if c.source == "prediction")
        self.score = next((c.name for c in schema.columns if c.source == "score"), None)

    def decisions(self, window: WindowData) -> Decisions:
        cols = window.columns
        pred = np.asarray(cols[self.prediction])
        made = ~np.isnan(pred) if pred.dtype.kind == "f" else pred >= 0

        def flag(name: str) -> Flags:
            values = cols.get(name)
            return np.zeros(len(pred), np.bool_) if values is None else np.asarray(values) == 1.0

        needs = made.copy()
        band = self.cfg.needs_review
        if band is not None and self.score is not None:
            lo, hi = band.score_between
            s = np.asarray(cols[self.score], dtype=np.float64)
            needs &= (s >= lo) & (s <= hi)  # NaN: not in the band
        reviewed = flag(REVIEWED) & made
        seconds = np.asarray(cols.get(REVIEW_SECONDS, np.full(len(pred), np.nan)), np.float64)
        return Decisions(
            made=made,
            needs_review=needs,
            reviewed=reviewed,
            overridden=flag(OVERRIDDEN) & reviewed,
            escalated=flag(ESCALATED) & reviewed,
            complaint=flag(COMPLAINT) & made,
            review_seconds=seconds[reviewed & ~np.isnan(seconds)],
        )

    def run(self, window: WindowData) -> list[Measurement]:
        d = self.decisions(window)
        out = []
        counts = {
            "decisions": int(d.made.sum()),
            "needing_review": int(d.needs_review.sum()),
            "reviewed": int(d.reviewed.sum()),
            "overridden": int(d.overridden.sum()),
            "escalated": int(d.escalated.sum()),
            "complaints": int(d.complaint.sum()),
        }
        band = self.cfg.needs_review
        for name, limit in self.cfg.metrics.items():
            fn, method = METRICS[name]
            value, n = fn(d)
            params: dict[str, object] = {
                **counts,
                "needs_review": "every decision"
                if band is None
                else f"score in [{band.score_between[0]}, {band.score_between[1]}]",
            }
            out.append(
                Measurement(
                    check_id=self.id,
                    kind=self.kind,
                    metric=name,
                    value=value,
                    method=method,
                    params=params,
                    n_current=n,
                    threshold=limit_threshold(limit, value, min_samples=self.cfg.min_samples),
                    headline=True,
                )
            )
        return out
