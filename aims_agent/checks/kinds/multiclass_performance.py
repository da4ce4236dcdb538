"""A multiclass classifier's performance on the window's labelled records (`kind: performance`
with `schema.scores`), as scikit-learn computes it: accuracy, and macro averages over the
configured classes of precision, recall and F1 (average="macro", zero_division=0) on the rows
with a label and a prediction; the macro one-vs-rest ROC AUC (roc_auc_score(multi_class="ovr",
average="macro")) on those that also carry every class's score in [0, 1]. A label outside the
classes is a miss of the predicted class. Limits, relative ones against the reference's own
value, are judged as for a binary model.
"""

from __future__ import annotations

import math
from typing import Any

from aims_agent.checks.base import Reference, limit_threshold
from aims_agent.checks.kinds.multiclass import ClassColumns, Rows, class_rows, realised
from aims_agent.config import PerformanceCheckConfig
from aims_agent.errors import ConfigError
from aims_agent.records import Measurement, WindowData
from aims_agent.schema import ModelSchema

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
METHODS = {
    "accuracy": "share of predictions equal to the label (sklearn accuracy_score)",
    "precision": "macro average over the classes of TP / (TP + FP) (sklearn precision_score, "
    'average="macro")',
    "recall": "macro average over the classes of TP / (TP + FN) (sklearn recall_score, "
    'average="macro")',
    "f1": 'macro average over the classes of the F1 score (sklearn f1_score, average="macro")',
    "roc_auc": "macro average over the classes of the one-vs-rest ROC AUC (sklearn roc_auc_score, "
    'multi_class="ovr")',
}


class MulticlassPerformance:
    kind = "performance"

    def __init__(
        self, cfg: PerformanceCheckConfig, reference: Reference, schema: ModelSchema
    ) -> None:
        self.id, self.cfg = cfg.id, cfg
        self.columns = ClassColumns.of(schema)
        if not self.columns.label:
            raise ConfigError([f"checks.{cfg.id}: a performance check needs schema.label"])
        self.reference: dict[str, tuple[float | None, int]] = dict.fromkeys(cfg.metrics, (None, 0))
        if self.columns.label in reference.columns:
            ref = {n: self._rows(reference.columns, reference.vocabularies, n) for n in cfg.metrics}
            self.reference = {n: (realised(n, ref[n]), len(ref[n].label)) for n in cfg.metrics}

    def _rows(self, cols: Any, vocabs: Any, metric: str) -> Rows:
        """The labelled rows the metric is computed on."""
        rows = class_rows(cols, vocabs, self.columns, need_scores=metric == "roc_auc")
        known = rows.label != -1
        return Rows(rows.predicted[known], rows.scores[known], rows.label[known], rows.p)

    def run(self, window: WindowData) -> list[Measurement]:
        out = []
        for name, limit in self.cfg.metrics.items():
            rows = self._rows(window.columns, window.vocabularies, name)
            value = realised(name, rows)
            ref_value, n_ref = self.reference[name]
            params: dict[str, object] = {
                "task": "classification",
                "reference_value": ref_value
                if ref_value is not None and math.isfinite(ref_value)
                else None,
                "labelled_rows": len(rows.label),
                "classes": list(self.columns.classes),
            }
            out.append(
                Measurement(
                    check_id=self.id,
                    kind=self.kind,
                    metric=name,
                    value=value,
                    method=METHODS[name],
                    params=params,
                    n_reference=n_ref,
                    n_current=len(rows.label),
                    threshold=limit_threshold(
                        limit, value, reference=ref_value, min_samples=self.cfg.min_samples
                    ),
                    headline=True,
                )
            )
        return out
