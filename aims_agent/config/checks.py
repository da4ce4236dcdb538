"""The check kinds' settings, one model per kind, told apart by `kind`."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from aims_agent.config._base import Strict


class ColumnTest(Strict):
    test: str | None = None
    threshold: float | None = Field(None, gt=0)


class _CheckBase(Strict):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    schedule_seconds: float = Field(60.0, gt=0)
    min_samples: int = Field(30, ge=1)
    severity: Literal["major", "minor", "observation"] = "minor"
    consecutive_breaches: int = Field(
        1, ge=1, description="breaching runs in a row before a nonconformity opens"
    )
    controls: tuple[str, ...] | None = Field(
        None, description="Annex A control ids; default from the control mapping"
    )
    effectiveness_windows: int = Field(
        3, ge=1, description="passing runs in a row after a breach that evidence the fix"
    )


class DriftCheckConfig(_CheckBase):
    """Drift of each column against the reference; breaches on the share of drifted features."""

    kind: Literal["drift"] = "drift"
    preset: Literal["calibrated", "evidently"] = Field(
        "calibrated",
        description="calibrated: each test's null quantile at the window's size and an effect "
        "floor; evidently: Evidently's default tests and thresholds, as Evidently judges",
    )
    threshold: float = Field(0.5, gt=0, le=1, description="share of drifted features that breaches")
    warn: float | None = Field(None, gt=0, le=1)
    include_prediction: bool = True
    family: tuple[str, ...] | None = Field(
        None,
        min_length=1,
        description="columns that count in the drift share; default: the features "
        "(prediction and score are tested but not counted)",
    )
    columns: dict[str, ColumnTest] = {}
    false_alarm_rate: float = Field(
        0.01, gt=0, lt=0.5, description="calibrated: chance a feature drifts with no drift"
    )
    family_false_alarm_rate: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="calibrated: the run's false-alarm bound; lowers the per-feature rate "
        "to meet it whatever the dependence between features",
    )
    replicates: int = Field(
        199,
        ge=19,
        le=100_000,
        description="calibrated: resamples per size bucket; at least 2 / the per-feature rate - 1",
    )
    seed: int = Field(0, ge=0, description="calibrated: seed of the resampling")
    multiple_testing: Literal["none", "bonferroni", "benjamini-hochberg"] = Field(
        "none", description="evidently: correction across the p-value tests of one run"
    )
    report_on_breach: bool = Field(
        False, description="attach Evidently's HTML report when a breach opens a nonconformity"
    )

    @model_validator(mode="after")
    def _warn_below(self) -> Self:
        if self.warn is not None and self.warn >= self.threshold:
            raise ValueError(f"warn: must be < threshold ({self.threshold}), got {self.warn}")
        if self.multiple_testing != "none" and self.preset != "evidently":
            raise ValueError(
                "multiple_testing: only with preset: evidently; the calibrated preset holds the "
                "run's false-alarm rate with family_false_alarm_rate"
            )
        return self


class Limit(Strict):
    """Bounds on one metric: breach outside [min, max], warn inside the warn band before it.

    With `relative: true` the bounds are relative changes against the reference's own value of
    the metric (`min: -0.05` breaches when accuracy falls more than 5 % below the reference's).
    """

    min: float | None = None
    max: float | None = None
    warn_margin: float | None = Field(None, gt=0, description="warn this close to a bound")
    relative: bool = False

    @model_validator(mode="after")
    def _some_bound(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError("min, max: at least one bound is required")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min: must be <= max ({self.max}), got {self.min}")
        return self


class QualityCheckConfig(_CheckBase):
    """Per-feature data quality: missing values, values out of range, unseen categories."""

    kind: Literal["data_quality"] = "data_quality"
    max_missing_share: float = Field(0.1, ge=0, le=1)
    max_out_of_range_share: float = Field(0.05, ge=0, le=1)
    max_unseen_category_share: float = Field(0.05, ge=0, le=1)
    max_rejected_share: float = Field(0.01, ge=0, le=1, description="records refused by ingest")
    warn_fraction: float = Field(0.8, gt=0, le=1, description="warn at this fraction of a max")
    bounds: dict[str, Limit] = Field(
        {}, description="configured value ranges per feature; default: the reference's min and max"
    )


class PerformanceCheckConfig(_CheckBase):
    """Model performance on the window's labelled records."""

    kind: Literal["performance"] = "performance"
    task: Literal["classification", "regression"] = "classification"
    positive_label: str = "1"
    metrics: dict[str, Limit] = Field(min_length=1)


GroupValue = str | int | bool  # as written in YAML: the label the category has is str() of it


class GroupPair(Strict):
    """The privileged and the unprivileged group of one attribute, each one or more of its
    values (TrustyAI's `privilegedAttribute` / `unprivilegedAttribute`)."""

    privileged: tuple[GroupValue, ...] = Field(min_length=1)
    unprivileged: tuple[GroupValue, ...] = Field(min_length=1)

    @field_validator("privileged", "unprivileged", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return v if isinstance(v, list | tuple) else (v,)

    @model_validator(mode="after")
    def _apart(self) -> Self:
        both = {str(v) for v in self.privileged} & {str(v) for v in self.unprivileged}
        if both:
            raise ValueError(f"unprivileged: also privileged: {', '.join(sorted(both))}")
        return self


_FAIRNESS = {
    "demographic_parity_ratio": Limit(min=0.8),  # the four-fifths rule
    "equalized_odds_difference": Limit(max=0.1),
}
# TrustyAI's defaults (its MetricsConfig): SPD within +-0.1, DIR within 0.8..1.2
PAIR_DEFAULTS = {
    "statistical_parity_difference": Limit(min=-0.1, max=0.1),
    "disparate_impact_ratio": Limit(min=0.8, max=1.2),
}


class FairnessCheckConfig(_CheckBase):
    """Group fairness of predictions (and of errors, where labels are known)."""

    kind: Literal["fairness"] = "fairness"
    sensitive: tuple[str, ...] | None = Field(None, description="default: the schema's")
    positive_label: str = "1"
    min_group_size: int = Field(30, ge=1)
    metrics: dict[str, Limit] = Field(default_factory=lambda: dict(_FAIRNESS), min_length=1)
    groups: dict[str, GroupPair] = Field(
        {},
        description="attribute -> privileged and unprivileged groups: adds statistical parity "
        "difference and disparate impact ratio between them (TrustyAI's SPD and DIR, with "
        "its default limits unless `metrics` sets them)",
    )

    @model_validator(mode="before")
    @classmethod
    def _pair_metrics(cls, data: Any) -> Any:
        """With `groups`, SPD and DIR are measured too (TrustyAI's limits unless set)."""
        if not isinstance(data, dict) or not data.get("groups"):
            return data
        metrics = data.get("metrics")
        metrics = dict(_FAIRNESS) if metrics is None else dict(metrics)
        return {**data, "metrics": {**PAIR_DEFAULTS, **metrics}}


class EstimatedPerformanceCheckConfig(_CheckBase):
    """Performance of a binary classifier estimated without labels (CBPE)."""

    kind: Literal["estimated_performance"] = "estimated_performance"
    task: Literal["classification", "regression"] = Field(
        "classification", description="classification: CBPE; regression: direct loss estimation"
    )
    positive_label: str = "1"
    estimate_from: Literal["scores", "inputs"] = Field(
        "scores",
        description="a binary classifier's probabilities: scores (CBPE: its scores calibrated on "
        "the reference; holds while the scores stay calibrated) or inputs (a logistic "
        "regression of the label on its inputs fitted on the reference; holds while P(label | "
        "inputs) does, also when the model itself degrades)",
    )
    metrics: dict[str, Limit] = Field(
        default_factory=lambda: {
            "roc_auc": Limit(min=-0.05, relative=True),
            "accuracy": Limit(min=-0.05, relative=True),
        },
        min_length=1,
        description="classification: accuracy precision recall f1 roc_auc; regression: mae "
        "rmse; relative limits against the reference's realised value",
    )

    @model_validator(mode="before")
    @classmethod
    def _regression_defaults(cls, data: Any) -> Any:
        """A regressor's default: MAE at most 10 % above the reference's."""
        if isinstance(data, dict) and data.get("task") == "regression" and "metrics" not in data:
            return {**data, "metrics": {"mae": Limit(max=0.1, relative=True)}}
        return data

    chunk_size: int = Field(
        500, ge=10, description="labelled reference rows per chunk for the band's spread"
    )
    band_sigmas: float = Field(
        3.0, gt=0, description="half-width of the band in chunk-to-chunk standard deviations"
    )


class NeedsReview(Strict):
    """Which decisions policy says a person must review: those whose score lies in a band."""

    score_between: tuple[float, float] = Field(
        description="[low, high]: decisions scored in it need review"
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        lo, hi = self.score_between
        if not lo <= hi:
            raise ValueError(f"score_between: low must be <= high, got [{lo}, {hi}]")
        return self


class OversightCheckConfig(_CheckBase):
    """Human oversight of decisions (A.9.2, A.9.3; EU AI Act Art. 14, 26(5)), from the feedback
    that reviewers' tools post to /v1/models/{model}/feedback."""

    kind: Literal["oversight"] = "oversight"
    needs_review: NeedsReview | None = Field(
        None, description="decisions policy says need review; default: every decision"
    )
    metrics: dict[str, Limit] = Field(
        default_factory=lambda: {
            "review_rate": Limit(min=0.9),
            "override_rate": Limit(min=0.005, max=0.5),  # near 0 can mean rubber-stamping
        },
        min_length=1,
        description="review_rate override_rate escalation_rate complaint_rate "
        "median_review_seconds; min and max both allowed",
    )


class Envelope(Strict):
    """A feature's part of the intended-use envelope: a numeric range or a set of categories."""

    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_shape(self) -> Self:
        if self.categories is None and self.min is None and self.max is None:
            raise ValueError("min, max, categories: set a range or categories")
        if self.categories is not None and (self.min is not None or self.max is not None):
            raise ValueError("categories: a range or categories, not both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min: must be <= max ({self.max}), got {self.min}")
        return self


class IntendedUseCheckConfig(_CheckBase):
    """Inputs outside the validated domain (A.9.4): the envelope, required fields, novelty."""

    kind: Literal["intended_use"] = "intended_use"
    envelope: dict[str, Envelope] = Field(
        {},
        description="the documented intended use per feature (min / max or categories); "
        "features left out take the reference's range and categories",
    )
    required: tuple[str, ...] = Field((), description="features every record must carry")
    max_outside_share: float = Field(0.01, ge=0, le=1)
    max_missing_required_share: float = Field(0.0, ge=0, le=1)
    novelty: bool = Field(True, description="score records by robust Mahalanobis distance")
    novelty_quantile: float = Field(
        0.99, gt=0.5, lt=1, description="of the reference's own distances: above it is novel"
    )
    max_novel_share: float = Field(
        0.05, ge=0, le=1, description="breach above; no novelty gives 1 - novelty_quantile"
    )
    seed: int = Field(0, ge=0, description="of the reference sample the covariance is fitted on")


CheckConfig = Annotated[
    DriftCheckConfig
    | QualityCheckConfig
    | PerformanceCheckConfig
    | FairnessCheckConfig
    | IntendedUseCheckConfig
    | EstimatedPerformanceCheckConfig
    | OversightCheckConfig,
    Field(discriminator="kind"),
]
