"""Performance without labels: confidence-based performance estimation (CBPE) for a binary
classifier, as NannyML defines it.

At start the model's scores on the reference are calibrated against its labels (isotonic
regression, scikit-learn). In a window, each record's calibrated probability p of the positive
class and its prediction give the expected confusion matrix (TP = sum p over predicted
positives, FP = sum 1 - p over predicted positives, FN and TN likewise over predicted
negatives), and from it the expected accuracy, precision, recall and F1; the expected ROC AUC is
the area under the ROC curve in which every record counts as positive with weight p and as
negative with weight 1 - p. No label is needed: this keeps reporting when labels come late or
never. The estimate holds while the relation between inputs and outcome does not change (no
concept drift); where labels do arrive, the realised value on the labelled records is recorded
beside the estimate, so its error is evidence too.

The band: the reference is cut into chunks of `chunk_size` labelled rows and the metric's
realised value is computed per chunk; its spread, scaled to the window's size (sigma x
sqrt(chunk_size / n)), times `band_sigmas` either side of the estimate. A limit breaches only
when the whole band is beyond it (for a `min`: estimate + band < limit) and warns when the
estimate alone is; the record states the limit, the band and sigma.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from aims_agent.checks.base import Reference, register, unknown_metrics
from aims_agent.checks.kinds.estimates import (
    NOT_READY,
    Estimate,
    Training,
    chunk_rows,
    estimate_measurement,
    weighted_roc_auc,
)
from aims_agent.checks.kinds.label_model import LabelModel, fit_label_model
from aims_agent.checks.kinds.performance import METRICS as REALISED
from aims_agent.checks.kinds.performance import Outcomes, _classification, _Roles
from aims_agent.config import EstimatedPerformanceCheckConfig, SchemaConfig
from aims_agent.errors import ConfigError
from aims_agent.records import Measurement, WindowData
from aims_agent.schema import ModelSchema

KIND = "estimated_performance"
FloatArray: TypeAlias = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Scored:
    """A window's (or chunk's) rows with a prediction and a usable score."""

    predicted: FloatArray  # 1.0 where the prediction is the positive label
    score: FloatArray  # the model's score in [0, 1]
    p: FloatArray  # calibrated probability of the positive class


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def _confusion(s: Scored) -> tuple[float, float, float, float]:
    tp = float(s.p @ s.predicted)
    fp = float((1 - s.p) @ s.predicted)
    fn = float(s.p @ (1 - s.predicted))
    tn = float((1 - s.p) @ (1 - s.predicted))
    return tp, fp, fn, tn


def _accuracy(s: Scored) -> float:
    tp, _, _, tn = _confusion(s)
    return (tp + tn) / len(s.p)


def _precision(s: Scored) -> float:
    tp, fp, _, _ = _confusion(s)
    return _ratio(tp, tp + fp)


def _recall(s: Scored) -> float:
    tp, _, fn, _ = _confusion(s)
    return _ratio(tp, tp + fn)


def _f1(s: Scored) -> float:
    tp, fp, fn, _ = _confusion(s)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def _roc_auc(s: Scored) -> float:
    return weighted_roc_auc(s.score, s.p)


ESTIMATORS: dict[str, Callable[[Scored], float]] = {  # config names; metric: PREFIX + name
    "accuracy": _accuracy,
    "precision": _precision,
    "recall": _recall,
    "f1": _f1,
    "roc_auc": _roc_auc,
}
METHODS = {
    "accuracy": "expected accuracy, (TP + TN) / n, from calibrated probabilities (CBPE)",
    "precision": "expected TP / (TP + FP) from calibrated probabilities (CBPE)",
    "recall": "expected TP / (TP + FN) from calibrated probabilities (CBPE)",
    "f1": "expected 2 TP / (2 TP + FP + FN) from calibrated probabilities (CBPE)",
    "roc_auc": "expected ROC AUC, each record positive with its calibrated probability (CBPE)",
}


def _problems(
    where: str, check: EstimatedPerformanceCheckConfig, schema: SchemaConfig
) -> list[str]:
    if check.task == "regression":
        from aims_agent.checks.kinds.loss_estimation import LOSSES

        problems = unknown_metrics(where, check.metrics, LOSSES)
        if not schema.label:
            problems.append(f"{where}: needs schema.label (the loss model learns from it)")
        if schema.prediction_type != "numeric":
            problems.append(f"{where}.task: regression needs schema.prediction_type numeric")
        return problems
    problems = unknown_metrics(where, check.metrics, ESTIMATORS)
    if not schema.label:
        problems.append(f"{where}: needs schema.label (the reference's labels calibrate it)")
    if not schema.score and not schema.scores:
        problems.append(
            f"{where}: needs schema.score, or schema.scores for a multiclass model (the "
            "estimate is built on them)"
        )
    if schema.prediction_type != "categorical":
        problems.append(f"{where}: needs a classifier (schema.prediction_type categorical)")
    if check.estimate_from == "inputs" and schema.scores:
        problems.append(f"{where}.estimate_from: inputs is for a binary classifier (schema.score)")
    if check.estimate_from == "inputs" and not (schema.numeric or schema.categorical):
        problems.append(f"{where}.estimate_from: inputs needs the model's features in the schema")
    return problems


def _roles(cfg: EstimatedPerformanceCheckConfig, schema: ModelSchema) -> _Roles:
    names = {
        c.source: c.name for c in schema.columns if c.source in {"label", "prediction", "score"}
    }
    if "label" not in names or "score" not in names:
        raise ConfigError([f"checks.{cfg.id}: needs schema.label and schema.score"])
    return _Roles(names["label"], names["prediction"], names["score"])


@register(KIND, problems=_problems)
def estimated_performance(
    cfg: EstimatedPerformanceCheckConfig, reference: Reference, schema: ModelSchema
) -> Any:
    """CBPE for a binary classifier, for a multiclass one (multiclass_estimation.py), direct
    loss estimation (loss_estimation.py) for a regressor."""
    if cfg.task == "regression":
        from aims_agent.checks.kinds.loss_estimation import LossEstimate

        return LossEstimate(cfg, reference, schema)
    if schema.class_scores:
        from aims_agent.checks.kinds.multiclass_estimation import MulticlassEstimate

        return MulticlassEstimate(cfg, reference, schema)
    return EstimatedPerformanceCheck(cfg, reference, schema)


class EstimatedPerformanceCheck:
    kind = KIND

    def __init__(
        self, cfg: EstimatedPerformanceCheckConfig, reference: Reference, schema: ModelSchema
    ) -> None:
        self.id = cfg.id
        self.cfg = cfg
        self.roles = _roles(cfg, schema)
        self.score_column = str(self.roles.score)  # _roles makes sure there is one
        self.metrics = {name: ESTIMATORS[name] for name in cfg.metrics}
        ref, sub = self._scored_reference(reference)
        self.n_reference = len(ref.score_true)
        if self.n_reference < 2 or len(np.unique(ref.score_true)) < 2:
            raise ConfigError(
                [f"checks.{cfg.id}: the reference needs labelled rows of both classes"]
            )
        self.label_model: Training[LabelModel] | None = None
        if cfg.estimate_from == "inputs":
            numeric = [c.name for c in schema.features if c.kind == "numeric"]
            categorical = [
                c.name for c in schema.columns
                if c.kind == "categorical" and c.source in ("feature", "attribute")
            ]  # fmt: skip
            inputs = {n: sub[n] for n in (*numeric, *categorical)}
            vocabs = {n: tuple(reference.vocabularies.get(n, ())) for n in categorical}
            self.label_model = Training(
                fit_label_model, inputs, vocabs, numeric, categorical, ref.score_true
            )
        self.trains = self.label_model is not None  # the agent fits it in its child process
        self.calibrator: Any = None  # the scores' calibration, where the estimate uses them
        if self.label_model is None:
            from sklearn.isotonic import IsotonicRegression  # lazy: only this kind loads it

            self.calibrator = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            self.calibrator.fit(ref.score, ref.score_true)
        self.chunk = chunk_rows(cfg, self.n_reference)
        self.sigma = {name: self._chunk_sigma(ref, name) for name in self.metrics}
        with np.errstate(all="ignore"):
            self.reference_value = {
                name: REALISED["classification"][name](ref) for name in self.metrics
            }

    def _scored_reference(self, reference: Reference) -> tuple[Outcomes, dict[str, Any]]:
        """The reference's rows with label, prediction and a usable score, in file order, and
        those rows' columns."""
        cols, vocabs = reference.columns, reference.vocabularies
        if self.roles.label not in cols:
            raise ConfigError([f"checks.{self.cfg.id}: the reference has no label column"])
        # rows with all three, so the label, prediction and score arrays line up row by row
        label = np.asarray(cols[self.roles.label])
        pred = np.asarray(cols[self.roles.prediction])
        s = np.asarray(cols[self.score_column], dtype=np.float64)
        rows = (label >= 0) & (pred >= 0) & (s >= 0.0) & (s <= 1.0)
        sub = {k: np.asarray(v)[rows] for k, v in cols.items()}
        return _classification(sub, vocabs, self.roles, self.cfg.positive_label), sub

    def train_in(self, executor: Executor) -> Future[LabelModel]:
        """Fit the label model (`estimate_from: inputs`) in `executor`, the agent's child
        process; runs before it arrives report insufficient data."""
        assert self.label_model is not None
        return self.label_model.submit(executor)

    def _about(self, m: LabelModel | None) -> dict[str, Any]:
        """How the probabilities were made, for the evidence."""
        if self.label_model is None:
            return {
                "estimate_from": "scores",
                "calibration": "isotonic regression of the reference's labels on its scores",
                "positive_label": self.cfg.positive_label,
            }
        if m is None:
            return {
                "estimate_from": "inputs",
                "label_model": NOT_READY,
                "positive_label": self.cfg.positive_label,
            }
        return {
            "estimate_from": "inputs",
            "calibration": "logistic regression of the reference's labels on the model's "
            "inputs (numeric standardised, categorical one-hot); holds while P(label | inputs) "
            "does",
            "label_model_inputs": list(m.inputs),
            "label_model_fingerprint": m.fingerprint,
            "positive_label": self.cfg.positive_label,
        }

    def _chunk_sigma(self, ref: Outcomes, name: str) -> float:
        """Standard deviation of the realised metric over the reference's chunks."""
        fn = REALISED["classification"][name]
        n = len(ref.score_true)
        values = []
        for start in range(0, n - self.chunk + 1, self.chunk):
            part = slice(start, start + self.chunk)
            chunk = Outcomes(
                y_true=ref.y_true[part],
                y_pred=ref.y_pred[part],
                correct=ref.correct[part],
                score_true=ref.score_true[part],
                score=ref.score[part],
            )
            with np.errstate(all="ignore"):
                values.append(fn(chunk))
        finite = [v for v in values if math.isfinite(v)]
        return float(np.std(finite, ddof=1)) if len(finite) >= 2 else math.nan

    def _scored(
        self, window: WindowData, model: LabelModel | None
    ) -> tuple[Scored | None, int, Outcomes]:
        """The scored rows with their probabilities (None while the label model is fitted
        elsewhere), how many, and the labelled rows' outcomes."""
        cols, vocabs = window.columns, window.vocabularies
        pred_vocab = vocabs.get(self.roles.prediction, ())
        pos = (
            pred_vocab.index(self.cfg.positive_label)
            if self.cfg.positive_label in pred_vocab
            else -2
        )
        pred = np.asarray(cols[self.roles.prediction])
        s = np.asarray(cols[self.score_column], dtype=np.float64)
        rows = (pred >= 0) & (s >= 0.0) & (s <= 1.0)
        score = s[rows]
        realised = _classification(cols, vocabs, self.roles, self.cfg.positive_label)
        if model is not None:
            p = model.probability(cols, vocabs)[rows]
        elif self.label_model is not None:
            return None, len(score), realised  # the label model is still being fitted
        elif len(score):
            p = np.asarray(self.calibrator.predict(score), dtype=np.float64)
        else:
            p = score
        scored = Scored(predicted=(pred[rows] == pos).astype(np.float64), score=score, p=p)
        return scored, len(score), realised

    def run(self, window: WindowData) -> list[Measurement]:
        model = self.label_model.get() if self.label_model is not None else None
        scored, n, realised = self._scored(window, model)
        about = self._about(model)
        out = []
        for name, fn in self.metrics.items():
            with np.errstate(all="ignore"):
                value = fn(scored) if scored is not None and n else math.nan
                actual = REALISED["classification"][name](realised)
            rows = realised.score_true if name == "roc_auc" else realised.y_true
            est = Estimate(
                metric=name,
                value=value,
                realised=actual,
                labelled_rows=len(rows),
                scored_rows=n,
                method=METHODS[name],
                about=about,
            )
            out.append(estimate_measurement(self, est))
        return out
