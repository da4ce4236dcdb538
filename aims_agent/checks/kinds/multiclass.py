"""What a multiclass model's estimate and its label-based performance share: its rows as class
indices (`class_rows`), the expected or 0/1 confusion counts per class, and the metrics as
scikit-learn computes them where labels are known (`realised`: accuracy_score; precision,
recall and f1_score with average="macro" over the configured classes, zero_division=0;
roc_auc_score with multi_class="ovr", average="macro")."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from aims_agent.checks.kinds.estimates import weighted_roc_auc
from aims_agent.schema import ModelSchema

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Rows:
    """Rows with a prediction and every class's score; `label` where known (-1 otherwise, or
    -2 for a label outside the classes) and `p`, the calibrated probabilities, where estimated."""

    predicted: IntArray  # index of the predicted class, -1 for a class the scores do not name
    scores: FloatArray  # n x K, the model's own
    label: IntArray
    p: FloatArray  # n x K, calibrated and normalised (empty before calibration)


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def per_class(
    predicted: IntArray, p: FloatArray, fn: Callable[[float, float, float], float]
) -> float:
    """The macro average of fn(TP, FP, FN) over the classes, from (expected or 0/1) P."""
    values = []
    for k in range(p.shape[1]):
        mine = predicted == k
        tp = float(p[mine, k].sum())
        fp = float((1 - p[mine, k]).sum())
        fn_ = float(p[~mine, k].sum())
        values.append(fn(tp, fp, fn_))
    return float(np.mean(values))


def _precision(tp: float, fp: float, fn: float) -> float:
    return _ratio(tp, tp + fp)


def _recall(tp: float, fp: float, fn: float) -> float:
    return _ratio(tp, tp + fn)


def _f1(tp: float, fp: float, fn: float) -> float:
    return _ratio(2 * tp, 2 * tp + fp + fn)


def _one_hot(label: IntArray, k: int) -> FloatArray:
    out = np.zeros((len(label), k))
    known = label >= 0
    out[np.flatnonzero(known), label[known]] = 1.0
    return out


def realised(name: str, r: Rows) -> float:
    """On the rows with a label: what scikit-learn computes (macro over the classes)."""
    known = r.label != -1
    if not known.any():
        return math.nan
    predicted, label, k = r.predicted[known], r.label[known], r.scores.shape[1]
    if name == "accuracy":
        return float(np.mean(predicted == label))
    if name == "roc_auc":
        scores = r.scores[known]
        # the unweighted Mann-Whitney statistic: weight 1 for the class, 0 for the rest
        per = [weighted_roc_auc(scores[:, c], (label == c) * 1.0) for c in range(k)]
        return float(np.mean(per))
    return per_class(predicted, _one_hot(label, k), PER_CLASS[name])


@dataclass(frozen=True, slots=True)
class ClassColumns:
    """A multiclass model's columns: its classes with their score columns, label, prediction."""

    classes: tuple[str, ...]
    scores: tuple[str, ...]
    label: str
    prediction: str

    @classmethod
    def of(cls, schema: ModelSchema) -> ClassColumns:
        roles = {c.source: c.name for c in schema.columns if c.source in ("label", "prediction")}
        return cls(
            classes=tuple(schema.class_scores),
            scores=tuple(schema.class_scores.values()),
            label=roles.get("label", ""),
            prediction=roles["prediction"],
        )


def class_rows(cols: Any, vocabs: Any, c: ClassColumns, *, need_scores: bool = True) -> Rows:
    """The rows with a prediction (and, by default, every class's score in [0, 1]) as class
    indices: the label -1 where unknown, -2 outside the classes; the prediction -1 outside."""
    index = {name: i for i, name in enumerate(c.classes)}

    def as_class(name: str, outside: int) -> IntArray:
        vocab = vocabs.get(name, ())
        table = np.array([index.get(t, outside) for t in vocab] + [-1], dtype=np.int64)
        codes = np.asarray(cols[name], dtype=np.int64)
        return table[np.where(codes >= 0, codes, len(vocab))]

    scores = np.column_stack([np.asarray(cols[s], dtype=np.float64) for s in c.scores])
    usable = np.asarray(cols[c.prediction], dtype=np.int64) >= 0
    if need_scores:
        usable &= np.all((scores >= 0.0) & (scores <= 1.0), axis=1)  # NaN: not
    n = int(usable.sum())
    label = as_class(c.label, -2)[usable] if c.label in cols else np.full(n, -1, dtype=np.int64)
    return Rows(
        as_class(c.prediction, -1)[usable], scores[usable], label, np.empty((0, len(c.classes)))
    )


PER_CLASS: dict[str, Callable[[float, float, float], float]] = {
    "precision": _precision,
    "recall": _recall,
    "f1": _f1,
}
