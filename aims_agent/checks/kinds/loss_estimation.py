"""A regressor's performance without labels: direct loss estimation (DLE), as NannyML defines it.

At start, a gradient-boosted model of the loss (scikit-learn's HistGradientBoostingRegressor,
seeded) is trained on the reference's labelled rows: from the features and the model's
prediction to the absolute error (for MAE) and to the squared error (for RMSE). In a window, the
estimate is the mean predicted absolute error, and the square root of the mean predicted
squared error (negative predictions clipped to 0). It follows the model's errors where they
depend on the inputs (covariate shift into regions where the model errs more); it cannot see a
change of the outcome given the inputs. The band and the breach rule are those of the
classifier's estimate (estimated_performance.py); where labels arrived, the realised value
and the estimate's error are recorded. The record names the loss model (its type, iterations,
training rows, seed and a fingerprint of its predictions on the reference).

Training is `train_loss_models`, a pure function of the reference's table. The agent runs it
in a child process of its own at start (`train_in(executor)`): until the model arrives, runs
report insufficient data and say so, and ingest and the other checks go on. A check nobody
handed an executor (a one-shot run, a test) trains in its own process at its first run.
"""

from __future__ import annotations

import hashlib
import math
import os
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from aims_agent.checks.base import Reference
from aims_agent.checks.kinds.estimates import (
    NOT_READY,
    Estimate,
    Training,
    chunk_rows,
    estimate_measurement,
    label_and_prediction,
)
from aims_agent.checks.kinds.performance import METRICS as REALISED
from aims_agent.checks.kinds.performance import Outcomes
from aims_agent.config import EstimatedPerformanceCheckConfig
from aims_agent.errors import ConfigError
from aims_agent.records import Measurement, WindowData
from aims_agent.schema import ModelSchema

FloatArray = npt.NDArray[np.float64]
LOSSES = {"mae": "absolute", "rmse": "squared"}
METHODS = {
    "mae": "mean absolute error estimated by a model of the loss trained on the reference (DLE)",
    "rmse": "root mean squared error estimated by a model of the loss trained on the "
    "reference (DLE)",
}
SEED = 0


@dataclass(frozen=True, slots=True)
class TrainedLoss:
    """The fitted loss models by metric, what the record says of each, and the process that
    fitted them."""

    models: dict[str, Any]
    about: dict[str, dict[str, Any]]
    pid: int


def train_loss_models(
    x: FloatArray, targets: dict[str, FloatArray], categorical: list[bool]
) -> TrainedLoss:
    """One seeded HistGradientBoostingRegressor per metric from the reference's features and
    prediction `x` to that metric's loss; each named with a SHA-256 of its predictions on `x`."""
    from sklearn.ensemble import HistGradientBoostingRegressor  # lazy: this kind only

    models, about = {}, {}
    for name, target in targets.items():
        model = HistGradientBoostingRegressor(
            random_state=SEED, categorical_features=categorical
        ).fit(x, target)
        models[name] = model
        about[name] = {
            "type": "HistGradientBoostingRegressor",
            "iterations": int(model.n_iter_),
            "trained_rows": len(target),
            "seed": SEED,
            "target": f"{LOSSES[name]} error",
            "fingerprint": hashlib.sha256(model.predict(x).tobytes()).hexdigest(),
        }
    return TrainedLoss(models=models, about=about, pid=os.getpid())


class LossEstimate:
    """The estimated_performance check of a regressor."""

    kind = "estimated_performance"

    def __init__(
        self, cfg: EstimatedPerformanceCheckConfig, reference: Reference, schema: ModelSchema
    ) -> None:
        self.id, self.cfg = cfg.id, cfg
        self.label, self.prediction = label_and_prediction(cfg.id, schema, reference)
        self.features = list(schema.features)
        x, y, yhat = self._table(reference.columns)
        rows = ~np.isnan(y) & ~np.isnan(yhat)
        x, y, yhat = x[rows], y[rows], yhat[rows]
        self.n_reference = len(y)
        if self.n_reference < 20:
            raise ConfigError([f"checks.{cfg.id}: the reference needs labelled rows (>= 20)"])
        categorical = [c.kind == "categorical" for c in self.features] + [False]
        targets = {
            name: np.abs(y - yhat) if LOSSES[name] == "absolute" else (y - yhat) ** 2
            for name in cfg.metrics
        }
        self.model = Training(train_loss_models, x, targets, categorical)
        self.chunk = chunk_rows(cfg, self.n_reference)
        ref = Outcomes(y_true=y, y_pred=yhat)
        self.reference_value = {n: REALISED["regression"][n](ref) for n in cfg.metrics}
        self.sigma = {n: self._sigma(y, yhat, n) for n in cfg.metrics}

    trains = True  # the agent hands it an executor at start

    def train_in(self, executor: Executor) -> Future[TrainedLoss]:
        """Train the loss models in `executor` (the agent's child process); runs before they
        arrive report insufficient data."""
        return self.model.submit(executor)

    def _table(self, cols: Any) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Features (categorical codes as numbers, missing as NaN) and the prediction, the
        label, the prediction."""

        def feature(c: Any) -> FloatArray:
            v = np.asarray(cols[c.name], dtype=np.float64)
            return np.where(v < 0, np.nan, v) if c.kind == "categorical" else v

        yhat = np.asarray(cols[self.prediction], dtype=np.float64)
        x = np.column_stack([*(feature(c) for c in self.features), yhat])
        label = cols.get(self.label)
        y = np.full(len(yhat), np.nan) if label is None else np.asarray(label, dtype=np.float64)
        return x, y, yhat

    def _sigma(self, y: FloatArray, yhat: FloatArray, name: str) -> float:
        fn = REALISED["regression"][name]
        values = [
            fn(Outcomes(y_true=y[i : i + self.chunk], y_pred=yhat[i : i + self.chunk]))
            for i in range(0, len(y) - self.chunk + 1, self.chunk)
        ]
        return float(np.std(values, ddof=1)) if len(values) >= 2 else math.nan

    def estimate(self, name: str, x: FloatArray, trained: TrainedLoss) -> float:
        if not len(x):
            return math.nan
        loss = np.clip(trained.models[name].predict(x), 0.0, None)
        return float(np.mean(loss)) if LOSSES[name] == "absolute" else math.sqrt(np.mean(loss))

    def run(self, window: WindowData) -> list[Measurement]:
        x, y, yhat = self._table(window.columns)
        scored = ~np.isnan(yhat)
        x = x[scored]
        labelled = scored & ~np.isnan(y)
        realised = Outcomes(y_true=y[labelled], y_pred=yhat[labelled])
        trained = self.model.get()
        out = []
        for name in self.cfg.metrics:
            value = math.nan if trained is None else self.estimate(name, x, trained)
            with np.errstate(all="ignore"):
                actual = REALISED["regression"][name](realised)
            est = Estimate(
                metric=name,
                value=value,
                realised=actual,
                labelled_rows=int(labelled.sum()),
                scored_rows=len(x),
                method=METHODS[name],
                about={"loss_model": trained.about[name] if trained is not None else NOT_READY},
            )
            out.append(estimate_measurement(self, est))
        return out
