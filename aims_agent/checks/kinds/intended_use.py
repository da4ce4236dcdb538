"""Use as intended (ISO/IEC 42001 A.9.4): the share of inputs outside the validated domain.

The validated domain of a model is its envelope: per numeric feature a range, per categorical
feature a set of categories, either configured (the documented intended use) or, by default,
what the reference data covers (its finite [min, max] and its categories). The check measures,
on the window's records,
- `outside_envelope_share`: records with at least one present feature value outside the
  envelope (+/-inf always is), with each feature's own share beside it (not headlines);
- `missing_required_share`: records missing a field the config names as required;
- `novelty_share`: records far from the reference as a whole: the squared Mahalanobis distance
  of their numeric features under a robust covariance (scikit-learn's MinCovDet, fitted once on
  a seeded sample of the reference's complete rows) above the `novelty_quantile` of the
  reference's own distances (rows held out of the fit where the reference has enough). Without
  novelty in the data about 1 - novelty_quantile of records exceed it. Records with a missing
  numeric feature are not scored; features constant in the reference are left out (stated).
Each headline breaches strictly above its configured maximum. The ids of the worst records
(the most distant ones; the first ones outside the envelope) go into the evidence: ids are the
window's, already hashed at ingest where `privacy.hash` names `id`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from aims_agent.checks.base import Reference, register
from aims_agent.config import IntendedUseCheckConfig, SchemaConfig
from aims_agent.records import Measurement, Threshold, WindowData
from aims_agent.schema import ModelSchema

KIND = "intended_use"
OUTSIDE, MISSING, NOVEL = "outside_envelope_share", "missing_required_share", "novelty_share"
METRICS = (OUTSIDE, MISSING, NOVEL)
EXAMPLES = 5  # record ids of the worst records kept in the evidence, per measurement
FIT_ROWS = 2000  # reference rows MinCovDet is fitted on (its cost grows fast with rows)


@dataclass(frozen=True, slots=True)
class _Range:
    name: str
    lo: float
    hi: float
    source: str  # "config" or "reference" ("none": no finite reference value, no bound)


@dataclass(frozen=True, slots=True)
class _Categories:
    name: str
    allowed: frozenset[str]
    source: str


@dataclass(frozen=True, slots=True)
class Novelty:
    """A robust fit of the reference's numeric features, and the distance it calls novel."""

    features: tuple[str, ...]
    location: npt.NDArray[np.float64]
    precision: npt.NDArray[np.float64]
    cutoff: float  # the quantile of the reference's own squared distances
    fitted_rows: int
    scored_rows: int  # reference rows the cutoff comes from
    left_out: tuple[str, ...]  # constant in the reference


def squared_distances(novelty: Novelty, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Squared Mahalanobis distance of each row of `x` (as MinCovDet.mahalanobis computes it)."""
    centred = x - novelty.location
    return np.asarray(np.sum(centred @ novelty.precision * centred, axis=1))


def fit_novelty(
    reference: Reference, features: tuple[str, ...], quantile: float, seed: int
) -> Novelty | None:
    """MinCovDet on up to FIT_ROWS complete reference rows (seeded); None with fewer than
    two usable features or too few complete rows to fit."""
    cols = [np.asarray(reference.columns[f], dtype=np.float64) for f in features]
    spread = [bool(np.nanmax(c) > np.nanmin(c)) if np.isfinite(c).any() else False for c in cols]
    kept = tuple(f for f, s in zip(features, spread, strict=True) if s)
    left_out = tuple(f for f, s in zip(features, spread, strict=True) if not s)
    if len(kept) < 2:
        return None
    x = np.column_stack([c for c, s in zip(cols, spread, strict=True) if s])
    x = x[np.isfinite(x).all(axis=1)]
    if len(x) < 5 * len(kept):
        return None
    from sklearn.covariance import MinCovDet  # lazy: only models with this check load it

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    fit_idx = order[:FIT_ROWS]
    held_out = order[FIT_ROWS:] if len(x) >= 2 * FIT_ROWS else order
    mcd = MinCovDet(random_state=seed).fit(x[fit_idx])
    novelty = Novelty(
        features=kept,
        location=np.asarray(mcd.location_, dtype=np.float64),
        precision=np.asarray(mcd.get_precision(), dtype=np.float64),
        cutoff=0.0,
        fitted_rows=len(fit_idx),
        scored_rows=len(held_out),
        left_out=left_out,
    )
    cutoff = float(np.quantile(squared_distances(novelty, x[held_out]), quantile))
    return Novelty(
        features=novelty.features,
        location=novelty.location,
        precision=novelty.precision,
        cutoff=cutoff,
        fitted_rows=novelty.fitted_rows,
        scored_rows=novelty.scored_rows,
        left_out=left_out,
    )


def _reference_range(name: str, values: npt.NDArray[Any]) -> _Range:
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not len(x):
        return _Range(name, -math.inf, math.inf, "none")
    return _Range(name, float(x.min()), float(x.max()), "reference")


def _ids(window: WindowData, rows: npt.NDArray[np.intp]) -> list[str]:
    return [window.record_ids[i] for i in rows[:EXAMPLES].tolist() if i < len(window.record_ids)]


def _problems(where: str, check: IntendedUseCheckConfig, schema: SchemaConfig) -> list[str]:
    found = []
    for name, env in check.envelope.items():
        if name in schema.numeric:
            if env.categories is not None:
                found.append(f"{where}.envelope.{name}: a numeric feature takes min / max")
        elif name in schema.categorical:
            if env.min is not None or env.max is not None:
                found.append(f"{where}.envelope.{name}: a categorical feature takes categories")
        else:
            found.append(f"{where}.envelope.{name}: not a feature of the schema")
    features = {*schema.numeric, *schema.categorical}
    found += [
        f"{where}.required.{name}: not a feature of the schema"
        for name in check.required
        if name not in features
    ]
    return found


@register(KIND, problems=_problems)
class IntendedUseCheck:
    kind = KIND

    def __init__(
        self, cfg: IntendedUseCheckConfig, reference: Reference, schema: ModelSchema
    ) -> None:
        self.id = cfg.id
        self.cfg = cfg
        self.n_reference = reference.n_rows
        self.ranges: list[_Range] = []
        self.categories: list[_Categories] = []
        numeric: list[str] = []
        for col in schema.features:
            env = cfg.envelope.get(col.name)
            if col.kind == "numeric":
                numeric.append(col.name)
                if env is not None and (env.min is not None or env.max is not None):
                    lo = -math.inf if env.min is None else env.min
                    hi = math.inf if env.max is None else env.max
                    self.ranges.append(_Range(col.name, lo, hi, "config"))
                else:
                    values = reference.columns.get(col.name, np.empty(0))
                    self.ranges.append(_reference_range(col.name, values))
            elif env is not None and env.categories is not None:
                allowed = frozenset(env.categories)
                self.categories.append(_Categories(col.name, allowed, "config"))
            else:
                allowed = frozenset(reference.vocabularies.get(col.name, ()))
                self.categories.append(_Categories(col.name, allowed, "reference"))
        self.required = cfg.required
        self.novelty = (
            fit_novelty(reference, tuple(numeric), cfg.novelty_quantile, cfg.seed)
            if cfg.novelty
            else None
        )

    def _threshold(self, breach: float) -> Threshold:
        return Threshold(
            breach=breach, direction="above", inclusive=False, min_samples=self.cfg.min_samples
        )

    def _measurement(
        self,
        metric: str,
        hits: int,
        n: int,
        method: str,
        params: dict[str, object],
        *,
        feature: str | None = None,
        breach: float | None = None,
    ) -> Measurement:
        return Measurement(
            check_id=self.id,
            kind=self.kind,
            metric=metric,
            feature=feature,
            value=hits / n if n else math.nan,
            method=method,
            params=params,
            n_reference=self.n_reference,
            n_current=n,
            threshold=None if breach is None else self._threshold(breach),
            headline=breach is not None,
        )

    def _outside(self, window: WindowData) -> tuple[npt.NDArray[np.bool_], list[Measurement]]:
        n = _rows(window)
        any_out = np.zeros(n, dtype=np.bool_)
        per_feature: list[Measurement] = []
        for r in self.ranges:
            x = np.asarray(window.columns[r.name], dtype=np.float64)
            present = ~np.isnan(x)
            with np.errstate(invalid="ignore"):
                out = present & (~np.isfinite(x) | (x < r.lo) | (x > r.hi))
            any_out |= out
            bounds = {
                "min": r.lo if math.isfinite(r.lo) else None,
                "max": r.hi if math.isfinite(r.hi) else None,
            }
            per_feature.append(
                self._measurement(
                    OUTSIDE,
                    int(out.sum()),
                    int(present.sum()),
                    "share of present values outside the envelope's [min, max]",
                    {**bounds, "envelope_source": r.source, "outside": int(out.sum())},
                    feature=r.name,
                )
            )
        for c in self.categories:
            codes = np.asarray(window.columns[c.name])
            vocab = window.vocabularies.get(c.name, ())
            allowed = np.array([label in c.allowed for label in vocab] + [True], dtype=np.bool_)
            present = codes >= 0
            out = present & ~allowed[np.where(present, codes, len(vocab))]
            any_out |= out
            unexpected = sorted({vocab[i] for i in np.unique(codes[out]).tolist()})
            per_feature.append(
                self._measurement(
                    OUTSIDE,
                    int(out.sum()),
                    int(present.sum()),
                    "share of present values in a category outside the envelope",
                    {
                        "envelope_source": c.source,
                        "categories": len(c.allowed),
                        "outside": int(out.sum()),
                        "unexpected_categories": unexpected[:20],
                    },
                    feature=c.name,
                )
            )
        return any_out, per_feature

    def run(self, window: WindowData) -> list[Measurement]:
        cfg = self.cfg
        any_out, per_feature = self._outside(window)
        n = len(any_out)
        sources = sorted({r.source for r in self.ranges} | {c.source for c in self.categories})
        out = [
            self._measurement(
                OUTSIDE,
                int(any_out.sum()),
                n,
                "share of records with a present feature value outside the envelope "
                "(configured ranges and categories, else the reference's)",
                {
                    "outside": int(any_out.sum()),
                    "envelope_sources": sources,
                    "examples": _ids(window, np.flatnonzero(any_out)),
                },
                breach=cfg.max_outside_share,
            )
        ]
        if self.required:
            missing = np.zeros(n, dtype=np.bool_)
            for name in self.required:
                col = np.asarray(window.columns[name])
                missing |= np.isnan(col) if col.dtype.kind == "f" else col < 0
            out.append(
                self._measurement(
                    MISSING,
                    int(missing.sum()),
                    n,
                    "share of records missing a required field",
                    {
                        "required": list(self.required),
                        "missing": int(missing.sum()),
                        "examples": _ids(window, np.flatnonzero(missing)),
                    },
                    breach=cfg.max_missing_required_share,
                )
            )
        if self.novelty is not None:
            out.append(self._novel(window, self.novelty))
        elif cfg.novelty:
            out.append(
                self._measurement(
                    NOVEL,
                    0,
                    0,
                    "not measured: the reference has fewer than two varying numeric features "
                    "or too few complete rows to fit a covariance",
                    {},
                    breach=cfg.max_novel_share,
                )
            )
        return out + per_feature

    def _novel(self, window: WindowData, novelty: Novelty) -> Measurement:
        x = np.column_stack(
            [np.asarray(window.columns[f], dtype=np.float64) for f in novelty.features]
        )
        complete = np.flatnonzero(np.isfinite(x).all(axis=1))
        d2 = squared_distances(novelty, x[complete])
        novel = d2 > novelty.cutoff
        worst = complete[np.argsort(-d2, kind="stable")][: min(EXAMPLES, int(novel.sum()))]
        return self._measurement(
            NOVEL,
            int(novel.sum()),
            len(complete),
            "share of records whose squared Mahalanobis distance from the reference (robust "
            "covariance, MinCovDet) exceeds the reference's own quantile",
            {
                "quantile": self.cfg.novelty_quantile,
                "cutoff": novelty.cutoff,
                "features": list(novelty.features),
                "left_out": list(novelty.left_out),
                "fitted_rows": novelty.fitted_rows,
                "cutoff_rows": novelty.scored_rows,
                "seed": self.cfg.seed,
                "not_scored": x.shape[0] - len(complete),
                "examples": _ids(window, worst),
                "largest": float(d2.max()) if len(d2) else None,
            },
            breach=self.cfg.max_novel_share,
        )


def _rows(window: WindowData) -> int:
    return next((len(v) for v in window.columns.values()), 0)
