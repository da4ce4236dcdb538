"""P(label | inputs) learned on the reference, for the label-free estimate's second way
(`estimate_from: inputs`): a logistic regression (scikit-learn) of the positive label on the
model's inputs. Numeric features are standardised by the reference's mean and spread, a missing
value taking the reference's median; categorical features and sensitive attributes are one-hot
over the reference's categories (an unseen or missing category is all zeros).

Why a linear model: under covariate shift the inputs move past the reference's range, where
trees stay flat and their probabilities shrink towards the edge leaves' (tried: gradient-boosted
trees, calibrated or not, under-estimated the workload's drifted windows by 0.035-0.066 ROC AUC,
outside the band in every window; the logistic regression stayed inside in 40 of 40). The
estimate holds while P(label | inputs) does, also when the model itself degrades (its scores
lose their calibration), which scores alone cannot show. Fitted once at start (about 0.2 s for
20,000 rows; the agent does it in its child process, `estimates.Training`); applied in numpy, so
a run loads no scikit-learn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
MAX_ITER = 2000


@dataclass(frozen=True, slots=True)
class LabelModel:
    """The fitted model: its inputs, their encoding, coefficients and intercept."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    fill: FloatArray  # the reference's median per numeric input
    centre: FloatArray
    scale: FloatArray
    levels: Mapping[str, tuple[str, ...]]  # the reference's categories per categorical input
    coef: FloatArray
    intercept: float

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the fitted coefficients and encoding: which model made an estimate."""
        import hashlib

        h = hashlib.sha256()
        for part in (self.fill, self.centre, self.scale, self.coef, np.array([self.intercept])):
            h.update(np.ascontiguousarray(part, dtype="<f8").tobytes())
        for name in self.inputs:
            h.update(name.encode() + b"\0")
        for name in self.categorical:
            h.update("\0".join(self.levels[name]).encode() + b"\1")
        return h.hexdigest()

    def _numeric(self, columns: Mapping[str, np.ndarray]) -> FloatArray:
        x = np.column_stack([np.asarray(columns[n], dtype=np.float64) for n in self.numeric])
        x = np.where(np.isfinite(x), x, self.fill)
        return np.asarray((x - self.centre) / self.scale, dtype=np.float64)

    def _codes(
        self,
        name: str,
        columns: Mapping[str, np.ndarray],
        vocabularies: Mapping[str, Sequence[str]],
    ) -> npt.NDArray[np.int64]:
        """Each row's index among the reference's categories of `name`; -1 for none."""
        codes = np.asarray(columns[name])
        vocab = vocabularies.get(name, ())
        index = {label: i for i, label in enumerate(self.levels[name])}
        to_ref = np.array([index.get(label, -1) for label in vocab] + [-1], dtype=np.int64)
        return to_ref[np.where(codes >= 0, codes, len(vocab))]

    def design(
        self, columns: Mapping[str, np.ndarray], vocabularies: Mapping[str, Sequence[str]]
    ) -> FloatArray:
        """The encoded inputs of every row (numeric, then each categorical one-hot): what the
        regression is fitted on."""
        n = len(next(iter(columns.values()))) if columns else 0
        blocks = [self._numeric(columns)] if self.numeric else []
        for name in self.categorical:
            mapped = self._codes(name, columns, vocabularies)
            onehot = np.zeros((n, len(self.levels[name])), dtype=np.float64)
            known = mapped >= 0
            onehot[np.flatnonzero(known), mapped[known]] = 1.0
            blocks.append(onehot)
        return np.hstack(blocks) if blocks else np.zeros((n, 0))

    def probability(
        self, columns: Mapping[str, np.ndarray], vocabularies: Mapping[str, Sequence[str]]
    ) -> FloatArray:
        """P(positive label | inputs) of every row: the numeric part as a product, each
        categorical one's coefficient looked up by category (the one-hot product without
        building it)."""
        n = len(next(iter(columns.values()))) if columns else 0
        z = np.full(n, self.intercept)
        k = len(self.numeric)
        if k:
            z += self._numeric(columns) @ self.coef[:k]
        for name in self.categorical:
            width = len(self.levels[name])
            weights = np.append(self.coef[k : k + width], 0.0)  # the last: no known category
            z += weights[self._codes(name, columns, vocabularies)]  # -1 picks the 0.0
            k += width
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def fit_label_model(
    columns: Mapping[str, np.ndarray],
    vocabularies: Mapping[str, Sequence[str]],
    numeric: Sequence[str],
    categorical: Sequence[str],
    positive: npt.NDArray[np.float64],
) -> LabelModel:
    """Fit on reference rows (`columns` already restricted to the labelled ones) whose label
    is the positive class where `positive` is 1."""
    from sklearn.linear_model import LogisticRegression  # lazy: only this estimator loads it

    x = [np.asarray(columns[n], dtype=np.float64) for n in numeric]
    fill = np.array([np.nanmedian(v) if np.isfinite(v).any() else 0.0 for v in x])
    filled = [np.where(np.isfinite(v), v, f) for v, f in zip(x, fill, strict=True)]
    centre = np.array([v.mean() for v in filled])
    spread = np.array([v.std() for v in filled])
    levels = {name: tuple(vocabularies.get(name, ())) for name in categorical}
    model = LabelModel(
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        fill=fill,
        centre=centre,
        scale=np.where(spread > 0, spread, 1.0),
        levels=levels,
        coef=np.zeros(0),
        intercept=0.0,
    )
    design = model.design(columns, vocabularies)
    fitted = LogisticRegression(max_iter=MAX_ITER).fit(design, positive)
    return LabelModel(
        numeric=model.numeric,
        categorical=model.categorical,
        fill=fill,
        centre=centre,
        scale=model.scale,
        levels=levels,
        coef=np.asarray(fitted.coef_[0], dtype=np.float64),
        intercept=float(fitted.intercept_[0]),
    )
