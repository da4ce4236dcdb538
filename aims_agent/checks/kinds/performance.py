"""Model performance on the window's labelled records, computed as scikit-learn computes it.

Each configured metric is one headline measurement, judged by its `Limit`; relative limits
compare against the same metric on the reference's own labelled rows, computed once.

Rows: a label metric uses the rows with both a label and a prediction; a score metric
(`NEEDS_SCORE`) the rows with a label and a score in [0, 1] (a missing or non-probability
score is left out and counted in `params`). Classification compares label and prediction by
their text, since each column has its own vocabulary; `positive_label` is the positive class
and every other label is negative. Regression rows need a non-NaN label and prediction;
+/-inf propagates. Any metric over no rows is NaN (the judge: insufficient data).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt

from aims_agent.checks.base import Reference, limit_threshold, register, unknown_metrics
from aims_agent.config import PerformanceCheckConfig, SchemaConfig
from aims_agent.errors import ConfigError, UnknownAliasError
from aims_agent.records import Measurement, WindowData
from aims_agent.schema import ModelSchema

FloatArray: TypeAlias = npt.NDArray[np.float64]
Columns: TypeAlias = Mapping[str, npt.NDArray[Any]]
Vocabularies: TypeAlias = Mapping[str, tuple[str, ...]]


def _empty() -> FloatArray:
    return np.empty(0, dtype=np.float64)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Outcomes:
    """The labelled rows of a window or of the reference, as the metric functions read them.

    Classification: `y_true` / `y_pred` are 1.0 where label / prediction is `positive_label`,
    `correct` is 1.0 where the prediction's text equals the label's. Regression: `y_true` /
    `y_pred` are the label and prediction. `score_true` / `score` are the rows with a usable
    score (classification only).
    """

    y_true: FloatArray
    y_pred: FloatArray
    correct: FloatArray = field(default_factory=_empty)
    score_true: FloatArray = field(default_factory=_empty)
    score: FloatArray = field(default_factory=_empty)
    unusable_scores: int = 0  # labelled rows whose score is missing or outside [0, 1]


MetricFn: TypeAlias = Callable[[Outcomes], float]
_EPS = float(np.finfo(np.float64).eps)


def _mean(x: FloatArray) -> float:
    return float(np.mean(x)) if len(x) else math.nan  # no rows: NaN, never a warning


def _ratio(num: float, den: float, n: int) -> float:
    """`num / den`; 0 when `den` is 0 (sklearn's `zero_division=0`), NaN without rows."""
    return math.nan if not n else num / den if den else 0.0


def _accuracy(o: Outcomes) -> float:
    return _mean(o.correct)


def _precision(o: Outcomes) -> float:
    return _ratio(float(o.y_true @ o.y_pred), float(o.y_pred.sum()), len(o.y_true))


def _recall(o: Outcomes) -> float:
    return _ratio(float(o.y_true @ o.y_pred), float(o.y_true.sum()), len(o.y_true))


def _f1(o: Outcomes) -> float:
    tp = float(o.y_true @ o.y_pred)
    return _ratio(2 * tp, float(o.y_true.sum() + o.y_pred.sum()), len(o.y_true))


def _roc_auc(o: Outcomes) -> float:
    """Mann-Whitney U / (n_pos n_neg) with mid-ranks for ties: the trapezoidal ROC area."""
    y, s = o.score_true, o.score
    n_pos = float(y.sum())
    n_neg = len(y) - n_pos
    if not n_pos or not n_neg:
        return math.nan  # one class: undefined (sklearn warns and returns NaN)
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # 1-based mid-ranks
    return float((ranks @ y - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _log_loss(o: Outcomes) -> float:
    """Mean -log of the probability given to the true class, both clipped to [eps, 1 - eps]."""
    y, s = o.score_true, o.score
    p_pos = np.clip(s, _EPS, 1 - _EPS)
    p_neg = np.clip(1 - s, _EPS, 1 - _EPS)
    return _mean(-np.where(y == 1, np.log(p_pos), np.log(p_neg)))


def _brier(o: Outcomes) -> float:
    """Half the squared error summed over both classes, as sklearn computes (y - s)^2."""
    y, s = o.score_true, o.score
    return _mean(((1 - y) - (1 - s)) ** 2 + (y - s) ** 2) * 0.5


def _ece(o: Outcomes) -> float:
    """sum_b n_b / n * |mean(y in b) - mean(s in b)| over the non-empty bins b of 10 equal
    widths on [0, 1]; bin b holds (b / 10, (b + 1) / 10], the first also 0 (the bins of
    sklearn's `calibration_curve(strategy="uniform", n_bins=10)`)."""
    y, s = o.score_true, o.score
    if not len(s):
        return math.nan
    bins = np.searchsorted(np.linspace(0.0, 1.0, 11)[1:-1], s)
    total = np.bincount(bins, minlength=10)
    positives = np.bincount(bins, weights=y, minlength=10)
    scores = np.bincount(bins, weights=s, minlength=10)
    full = total > 0
    gap = np.abs(positives[full] / total[full] - scores[full] / total[full])
    return float(np.sum(total[full] / len(s) * gap))


def _mae(o: Outcomes) -> float:
    return _mean(np.abs(o.y_pred - o.y_true))


def _rmse(o: Outcomes) -> float:
    return float(np.sqrt(_mean((o.y_true - o.y_pred) ** 2)))


def _r2(o: Outcomes) -> float:
    """1 - SS_res / SS_tot; NaN below 2 rows; 1 if SS_res is 0, else 0 if SS_tot is 0."""
    y, p = o.y_true, o.y_pred
    if len(y) < 2:
        return math.nan
    residual = float(np.sum((y - p) ** 2))
    total = float(np.sum((y - np.mean(y)) ** 2))
    return 1.0 if not residual else 0.0 if not total else 1 - residual / total


def _mape(o: Outcomes) -> float:
    return _mean(np.abs(o.y_pred - o.y_true) / np.maximum(np.abs(o.y_true), _EPS))


METRICS: dict[str, dict[str, MetricFn]] = {
    "classification": {
        "accuracy": _accuracy,
        "precision": _precision,
        "recall": _recall,
        "f1": _f1,
        "roc_auc": _roc_auc,
        "log_loss": _log_loss,
        "brier": _brier,
        "ece": _ece,
    },
    "regression": {"mae": _mae, "rmse": _rmse, "r2": _r2, "mape": _mape},
}
NEEDS_SCORE: frozenset[str] = frozenset({"roc_auc", "log_loss", "brier", "ece"})
METHODS: dict[str, str] = {
    "accuracy": "share of predictions equal to the label (sklearn accuracy_score)",
    "precision": "TP / (TP + FP), 0 without predicted positives (sklearn precision_score)",
    "recall": "TP / (TP + FN), 0 without positive labels (sklearn recall_score)",
    "f1": "2 TP / (2 TP + FP + FN), 0 when that is 0 / 0 (sklearn f1_score)",
    "roc_auc": "area under the ROC curve, ties as mid-ranks (sklearn roc_auc_score)",
    "log_loss": "mean cross-entropy, probabilities clipped to [eps, 1 - eps] (sklearn log_loss)",
    "brier": "mean squared error of the score (sklearn brier_score_loss)",
    "ece": "expected calibration error over 10 equal-width score bins",
    "mae": "mean |label - prediction| (sklearn mean_absolute_error)",
    "rmse": "sqrt of mean (label - prediction)^2 (sklearn root_mean_squared_error)",
    "r2": "1 - SS_res / SS_tot (sklearn r2_score)",
    "mape": "mean |label - prediction| / max(|label|, eps) (sklearn MAPE)",
}


class _Roles(NamedTuple):
    """Which columns hold the label, the prediction and the score."""

    label: str
    prediction: str
    score: str | None


def _recode(
    codes: npt.NDArray[Any], vocabulary: tuple[str, ...], joint: dict[str, int]
) -> npt.NDArray[np.int64]:
    """Codes of one column as codes of `joint` (label texts shared by both columns); -1 stays."""
    table = np.fromiter(
        (*(joint[t] for t in vocabulary), -1), dtype=np.int64, count=len(vocabulary) + 1
    )
    return table[np.asarray(codes, dtype=np.int64)]  # -1 indexes the trailing -1


def _classification(
    columns: Columns, vocabularies: Vocabularies, roles: _Roles, positive: str
) -> Outcomes:
    label_vocab = vocabularies.get(roles.label, ())
    pred_vocab = vocabularies.get(roles.prediction, ())
    joint = {t: i for i, t in enumerate(dict.fromkeys((*label_vocab, *pred_vocab)))}
    label = _recode(columns[roles.label], label_vocab, joint)
    pred = _recode(columns[roles.prediction], pred_vocab, joint)
    pos = joint.get(positive, -2)  # -2: no row is positive
    labelled = label >= 0
    rows = labelled & (pred >= 0)
    is_pos = (label == pos).astype(np.float64)
    score_true, score, unusable = _empty(), _empty(), 0
    if roles.score is not None:
        s = np.asarray(columns[roles.score], dtype=np.float64)
        usable = labelled & (s >= 0.0) & (s <= 1.0)  # NaN compares false
        score_true, score = is_pos[usable], s[usable]
        unusable = int(np.count_nonzero(labelled & ~usable))
    return Outcomes(
        y_true=is_pos[rows],
        y_pred=(pred[rows] == pos).astype(np.float64),
        correct=(label[rows] == pred[rows]).astype(np.float64),
        score_true=score_true,
        score=score,
        unusable_scores=unusable,
    )


def _regression(
    columns: Columns, vocabularies: Vocabularies, roles: _Roles, positive: str
) -> Outcomes:
    label = np.asarray(columns[roles.label], dtype=np.float64)
    pred = np.asarray(columns[roles.prediction], dtype=np.float64)
    rows = ~np.isnan(label) & ~np.isnan(pred)
    return Outcomes(y_true=label[rows], y_pred=pred[rows])


_OUTCOMES: dict[str, Callable[[Columns, Vocabularies, _Roles, str], Outcomes]] = {
    "classification": _classification,
    "regression": _regression,
}
# the prediction type each task needs: classes are compared by text, numbers subtracted
_PREDICTION_KIND = {"classification": "categorical", "regression": "numeric"}


def _roles(cfg: PerformanceCheckConfig, schema: ModelSchema) -> _Roles:
    names = {c.source: c for c in schema.columns if c.source in {"label", "prediction", "score"}}
    where = f"checks.{cfg.id}"
    if "label" not in names:
        raise ConfigError([f"{where}: a performance check needs schema.label"])
    if names["prediction"].kind != _PREDICTION_KIND[cfg.task]:
        raise ConfigError(
            [f"{where}.task: {cfg.task} needs schema.prediction_type {_PREDICTION_KIND[cfg.task]}"]
        )
    score = names["score"].name if "score" in names else None
    return _Roles(names["label"].name, names["prediction"].name, score)


def _problems(where: str, check: PerformanceCheckConfig, schema: SchemaConfig) -> list[str]:
    problems = unknown_metrics(where, check.metrics, METRICS[check.task])
    if not schema.label:
        problems.append(f"{where}: a performance check needs schema.label")
    if schema.scores and check.task == "classification":  # multiclass_performance.py
        from aims_agent.checks.kinds.multiclass_performance import METRICS as MULTICLASS

        problems += [
            f"{where}.metrics.{m}: not for a multiclass model (schema.scores); known: "
            f"{', '.join(MULTICLASS)}"
            for m in check.metrics
            if m in METRICS["classification"] and m not in MULTICLASS
        ]
    elif not schema.score:
        problems += [
            f"{where}.metrics.{m}: needs schema.score" for m in check.metrics if m in NEEDS_SCORE
        ]
    return problems


@register("performance", problems=_problems)
def performance(cfg: PerformanceCheckConfig, reference: Reference, schema: ModelSchema) -> Any:
    """Binary classification and regression here; a classifier with a score per class in
    multiclass_performance.py."""
    if schema.class_scores and cfg.task == "classification":
        from aims_agent.checks.kinds.multiclass_performance import MulticlassPerformance

        return MulticlassPerformance(cfg, reference, schema)
    return PerformanceCheck(cfg, reference, schema)


class PerformanceCheck:
    kind = "performance"

    def __init__(
        self, cfg: PerformanceCheckConfig, reference: Reference, schema: ModelSchema
    ) -> None:
        self.id = cfg.id
        self.cfg = cfg
        known = METRICS[cfg.task]
        unknown = [name for name in cfg.metrics if name not in known]
        if unknown:
            raise UnknownAliasError(f"{cfg.task} metric", unknown[0], known)
        self.metrics = {name: known[name] for name in cfg.metrics}
        self.roles = _roles(cfg, schema)
        self.outcomes = _OUTCOMES[cfg.task]
        # the reference's own performance, for relative limits; None without reference labels
        self.reference: dict[str, tuple[float | None, int]] = dict.fromkeys(self.metrics, (None, 0))
        if self.roles.label in reference.columns:
            ref = self._outcomes(reference.columns, reference.vocabularies)
            with np.errstate(all="ignore"):
                self.reference = {n: (fn(ref), _rows(n, ref)) for n, fn in self.metrics.items()}

    def _outcomes(self, columns: Columns, vocabularies: Vocabularies) -> Outcomes:
        return self.outcomes(columns, vocabularies, self.roles, self.cfg.positive_label)

    def run(self, window: WindowData) -> list[Measurement]:
        data = self._outcomes(window.columns, window.vocabularies)
        out: list[Measurement] = []
        for name, fn in self.metrics.items():
            with np.errstate(all="ignore"):  # inf - inf and the like give NaN, as they should
                value = fn(data)
            ref_value, n_ref = self.reference[name]
            params: dict[str, object] = {
                "task": self.cfg.task,
                # params go to JSON, which has no NaN
                "reference_value": (
                    ref_value if ref_value is not None and math.isfinite(ref_value) else None
                ),
                "labelled_rows": len(data.y_true),
            }
            if self.cfg.task == "classification":
                params["positive_label"] = self.cfg.positive_label
            if name in NEEDS_SCORE:
                params["unusable_scores"] = data.unusable_scores
            out.append(
                Measurement(
                    check_id=self.id,
                    kind=self.kind,
                    metric=name,
                    value=value,
                    method=METHODS[name],
                    params=params,
                    n_reference=n_ref,
                    n_current=_rows(name, data),
                    threshold=limit_threshold(
                        self.cfg.metrics[name],
                        value,
                        reference=ref_value,
                        min_samples=self.cfg.min_samples,
                    ),
                    headline=True,
                )
            )
        return out


def _rows(metric: str, data: Outcomes) -> int:
    """The rows a metric was computed on."""
    return len(data.score if metric in NEEDS_SCORE else data.y_true)
