"""A multiclass classifier's performance without labels: CBPE as NannyML defines it for more
than two classes.

The model gives a probability per class (`schema.scores: {class: column}`). At start each
class's scores on the reference are calibrated against "the label is this class" (isotonic
regression, scikit-learn), and a record's calibrated probabilities are normalised to sum to 1.
In a window, with P[i, k] the calibrated probability that record i is of class k and its
predicted class:
- accuracy: the mean of P[i, predicted class];
- per class k, the expected confusion counts TP_k = sum P[i, k] over records predicted k,
  FP_k = sum 1 - P[i, k] over them, FN_k = sum P[i, k] over the others; precision, recall and
  F1 are the macro averages over the classes of TP / (TP + FP), TP / (TP + FN) and
  2 TP / (2 TP + FP + FN) (0 when the denominator is);
- ROC AUC: the macro average over classes of the one-vs-rest expected AUC, each record a
  positive of class k with weight P[i, k] and a negative with 1 - P[i, k], ranked by the
  model's own score for k.
The realised values where labels arrived are those scikit-learn computes (accuracy_score,
precision/recall/f1_score with average="macro" over the configured classes, roc_auc_score with
multi_class="ovr", average="macro"). The band, the breach rule and the record are those of the
binary estimate (estimates.py). Rows need a prediction and every class's score in [0, 1].
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from aims_agent.checks.base import Reference
from aims_agent.checks.kinds.estimates import (
    Estimate,
    chunk_rows,
    estimate_measurement,
    label_and_prediction,
    weighted_roc_auc,
)
from aims_agent.checks.kinds.multiclass import (
    PER_CLASS,
    ClassColumns,
    FloatArray,
    Rows,
    class_rows,
    per_class,
    realised,
)
from aims_agent.config import EstimatedPerformanceCheckConfig
from aims_agent.errors import ConfigError
from aims_agent.records import Measurement, WindowData
from aims_agent.schema import ModelSchema

METHODS = {
    "accuracy": "expected accuracy, the mean calibrated probability of the predicted class "
    "(multiclass CBPE)",
    "precision": "macro average over classes of the expected TP / (TP + FP) (multiclass CBPE)",
    "recall": "macro average over classes of the expected TP / (TP + FN) (multiclass CBPE)",
    "f1": "macro average over classes of the expected 2 TP / (2 TP + FP + FN) (multiclass CBPE)",
    "roc_auc": "macro average over classes of the one-vs-rest expected ROC AUC (multiclass CBPE)",
}


def _auc_macro(scores: FloatArray, p: FloatArray) -> float:
    return float(np.mean([weighted_roc_auc(scores[:, k], p[:, k]) for k in range(p.shape[1])]))


def _estimated(name: str, r: Rows) -> float:
    if not len(r.predicted):
        return math.nan
    if name == "accuracy":
        picked = np.where(r.predicted >= 0, r.predicted, 0)
        hit = r.p[np.arange(len(picked)), picked] * (r.predicted >= 0)
        return float(hit.mean())
    if name == "roc_auc":
        return _auc_macro(r.scores, r.p)
    return per_class(r.predicted, r.p, PER_CLASS[name])


class MulticlassEstimate:
    """The estimated_performance check of a classifier with a score per class."""

    kind = "estimated_performance"

    def __init__(
        self, cfg: EstimatedPerformanceCheckConfig, reference: Reference, schema: ModelSchema
    ) -> None:
        from sklearn.isotonic import IsotonicRegression  # lazy: this kind only

        self.id, self.cfg = cfg.id, cfg
        self.label, self.prediction = label_and_prediction(cfg.id, schema, reference)
        self.columns = ClassColumns.of(schema)
        self.classes = self.columns.classes
        ref = self._rows(reference.columns, reference.vocabularies, calibrated=False)
        labelled = ref.label >= 0
        ref = Rows(ref.predicted[labelled], ref.scores[labelled], ref.label[labelled], ref.p)
        self.n_reference = len(ref.label)
        if self.n_reference < 2 or len(np.unique(ref.label)) < len(self.classes):
            raise ConfigError(
                [f"checks.{cfg.id}: the reference needs labelled rows of every class"]
            )
        self.calibrators = [
            IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
                ref.scores[:, k], (ref.label == k).astype(np.float64)
            )
            for k in range(len(self.classes))
        ]
        self.chunk = chunk_rows(cfg, self.n_reference)
        with np.errstate(all="ignore"):
            self.reference_value = {n: realised(n, ref) for n in cfg.metrics}
            self.sigma = {n: self._sigma(ref, n) for n in cfg.metrics}

    def probabilities(self, scores: FloatArray) -> FloatArray:
        """Each class's calibrated probability, normalised per record (uniform where every
        class's calibrated probability is 0)."""
        k = len(self.classes)
        if not len(scores):
            return np.empty((0, k))
        p = np.column_stack([c.predict(scores[:, j]) for j, c in enumerate(self.calibrators)])
        total = p.sum(axis=1, keepdims=True)
        return np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / k)

    def _rows(self, cols: Any, vocabs: Any, *, calibrated: bool = True) -> Rows:
        rows = class_rows(cols, vocabs, self.columns)
        p = self.probabilities(rows.scores) if calibrated else rows.p
        return Rows(rows.predicted, rows.scores, rows.label, p)

    def _sigma(self, ref: Rows, name: str) -> float:
        values = []
        for start in range(0, len(ref.label) - self.chunk + 1, self.chunk):
            part = slice(start, start + self.chunk)
            values.append(
                realised(name, Rows(ref.predicted[part], ref.scores[part], ref.label[part], ref.p))
            )
        finite = [v for v in values if math.isfinite(v)]
        return float(np.std(finite, ddof=1)) if len(finite) >= 2 else math.nan

    def run(self, window: WindowData) -> list[Measurement]:
        rows = self._rows(window.columns, window.vocabularies)
        out = []
        for name in self.cfg.metrics:
            with np.errstate(all="ignore"):
                value = _estimated(name, rows)
                actual = realised(name, rows)
            est = Estimate(
                metric=name,
                value=value,
                realised=actual,
                labelled_rows=int((rows.label != -1).sum()),
                scored_rows=len(rows.predicted),
                method=METHODS[name],
                about={
                    "calibration": "isotonic regression per class of the reference's labels on "
                    "its scores, normalised to sum to 1",
                    "classes": list(self.classes),
                },
            )
            out.append(estimate_measurement(self, est))
        return out
