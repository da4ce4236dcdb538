"""Drift of every feature (and of the prediction and score) against the reference.

Each column gets a statistical test and a rule for when its value is drift, set by the check's
`preset`:

* `calibrated` (the default): one test per column, chosen from the reference alone
  (`calibrated_stattest`: rank and two-sample chi-square tests where the reference is small,
  robust-scale Wasserstein and Jensen-Shannon where it is large). A column
  drifts when its value is beyond the test's null quantile at the window's size
  (`calibration`, at the configured per-feature false-alarm rate) *and* beyond an effect
  floor (the test's Evidently threshold unless configured). Below the window size at which
  chance stays under the floor, a column that has not drifted is not judged (insufficient
  data, with the size it needs).
* `evidently`: Evidently's default choice per window and its default thresholds, the verdicts
  Evidently users know, with an optional multiple-testing correction of the p-value tests.

The headline measurement is the share of drifted columns of the family (the features unless
`family` names columns), which breaches at or above the configured share.
"""

from __future__ import annotations

import math
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, replace

from aims_agent.checks import stattests
from aims_agent.checks.base import Reference, register, schema_columns
from aims_agent.checks.calibration import NullQuantile, n_needed, null_quantile, quantile_at
from aims_agent.checks.multiple_testing import adjust
from aims_agent.checks.parallel import column_map
from aims_agent.config import DriftCheckConfig, SchemaConfig
from aims_agent.records import ColumnKind, Measurement, Threshold, WindowData
from aims_agent.schema import ModelSchema

_SOURCES = {"feature", "prediction", "score", "class_score"}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Column:
    name: str
    kind: ColumnKind
    role: str  # "feature" or "output"
    in_family: bool  # counts in the drift share
    stats: stattests.ReferenceStats  # summarised once, shared by every test
    test: stattests.StatTest | None  # None: Evidently's default, chosen per window
    threshold: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Judged:
    """One column's measurement and whether it counts as drifted / judged in the share."""

    measurement: Measurement
    judged: bool
    drifted: bool


def calibrated_stattest(ref: stattests.ReferenceStats) -> stattests.StatTest:
    """The calibrated preset's test for a column, from its reference alone (so that its null
    can be computed once per size). Numbers with more than 5 distinct values: the rank test
    `anderson` up to 1,000 reference rows (a bootstrap from a small sample misses the tails a
    distance's null depends on; a rank statistic's null does not depend on them), the
    IQR-normed Wasserstein above. Few-valued numbers and categories: the two-sample
    chi-square up to 1,000 reference rows (the z-test for two values), Jensen-Shannon above,
    as Evidently splits them."""
    reg = stattests.REGISTRY
    if isinstance(ref, stattests.NumericStats):
        n_values = ref.uniques.size
        if n_values > 5:  # ranks where the reference is small: their null needs no tails
            return reg["anderson" if ref.n <= 1000 else "wasserstein_iqr"]
    else:
        n_values = ref.n_unique
    if ref.n > 1000:
        return reg["jensenshannon"]
    return reg["chi2_contingency" if n_values > 2 else "z"]


def _prepared(
    reference: Reference, name: str, kind: ColumnKind, n_categories: int | None
) -> stattests.ReferenceStats:
    """A column's reference summary: from the reference's cache (a previous run may have left
    it there) or prepared now and cached."""
    key = f"stats|{name}"
    stats = reference.cache.get(key)
    fits = isinstance(stats, stattests.NumericStats) and kind == "numeric"
    fits |= (
        isinstance(stats, stattests.CategoricalStats)
        and kind == "categorical"
        and stats.counts.size == (n_categories or 0)
    )
    if not fits:
        stats = stattests.prepare_reference(
            reference.columns[name], kind=kind, n_categories=n_categories
        )
        reference.cache[key] = stats
    assert isinstance(stats, stattests.NumericStats | stattests.CategoricalStats)
    return stats


def _problems(where: str, check: DriftCheckConfig, schema: SchemaConfig) -> list[str]:
    columns = schema_columns(schema)
    out = [
        f"{where}.columns.{c}: not a column of the schema"
        for c in check.columns
        if c not in columns
    ]
    out += [
        f"{where}.family.{c}: not a column of the schema"
        for c in check.family or ()
        if c not in columns
    ]
    return out


@register("drift", problems=_problems)
class DriftCheck:
    kind = "drift"

    def __init__(self, cfg: DriftCheckConfig, reference: Reference, schema: ModelSchema) -> None:
        self.id = cfg.id
        self.cfg = cfg
        self.n_reference = reference.n_rows
        self.cache: MutableMapping[str, object] = reference.cache
        wanted = _SOURCES if cfg.include_prediction else {"feature"}
        family = set(cfg.family) if cfg.family is not None else None
        self.columns: list[_Column] = []
        for col in schema.columns:
            if col.source not in wanted or col.name not in reference.columns:
                continue
            override = cfg.columns.get(col.name)
            alias = override.test if override else None
            vocab = reference.vocabularies.get(col.name)
            n_categories = len(vocab) if vocab is not None else None
            stats = _prepared(reference, col.name, col.kind, n_categories)
            test = stattests.get_stattest(alias, col.kind) if alias else None
            if test is None and cfg.preset == "calibrated":
                test = calibrated_stattest(stats)
            self.columns.append(
                _Column(
                    name=col.name,
                    kind=col.kind,
                    role="feature" if col.source == "feature" else "output",
                    in_family=col.source == "feature" if family is None else col.name in family,
                    stats=stats,
                    test=test,
                    threshold=override.threshold if override else None,
                )
            )
        self.family_size = sum(c.in_family for c in self.columns)
        self.alpha = self._feature_alpha()
        # at least two replicates beyond the quantile, or it cannot be estimated
        self.replicates = max(cfg.replicates, math.ceil(2 / self.alpha) - 1)

    def _feature_alpha(self) -> float:
        """The per-feature false-alarm rate: the configured one, lowered when a family-wise
        rate is set so that the run's bound (`_family_bound`) meets it."""
        alpha = self.cfg.false_alarm_rate
        fam = self.cfg.family_false_alarm_rate
        if fam is not None and self.family_size:
            alpha = min(alpha, fam * self._needed_drifts() / self.family_size)
        return alpha

    def _needed_drifts(self) -> int:
        """Drifted family members that make the share breach."""
        return max(1, math.ceil(self.cfg.threshold * self.family_size - 1e-9))

    def _family_bound(self) -> dict[str, object]:
        """What the run-level verdict's false-alarm rate is held to, whatever the dependence
        between features: P(at least r of k alarms) <= k alpha / r (Markov), and the chance of
        any feature alarming <= k alpha (Bonferroni)."""
        k, r = self.family_size, self._needed_drifts()
        return {
            "feature_false_alarm_rate": self.alpha,
            "drifts_to_breach": r,
            "run_false_alarm_bound": min(1.0, k * self.alpha / r),
            "any_feature_false_alarm_bound": min(1.0, k * self.alpha),
        }

    def calibrate(self, n: int) -> None:
        """Compute (and cache) every column's null quantile for windows of n rows, e.g. at
        start-up for the window's capacity, so that no check waits for it."""
        if self.cfg.preset == "calibrated":
            for col in self.columns:
                assert col.test is not None
                self._null(col, col.test, n)

    def _null(self, col: _Column, test: stattests.StatTest, n: int) -> NullQuantile:
        return null_quantile(
            test,
            col.stats,
            n,
            column=col.name,
            alpha=self.alpha,
            replicates=self.replicates,
            seed=self.cfg.seed,
            cache=self.cache,
        )

    def run(self, window: WindowData) -> list[Measurement]:
        def column(col: _Column) -> tuple[stattests.StatTest, stattests.StatResult]:
            current = window.columns[col.name]
            test = col.test or stattests.default_stattest(col.stats, current)
            labels = window.vocabularies.get(col.name)
            result = test.compute(col.stats, current, threshold=col.threshold, labels=labels)
            return test, result

        done = column_map(column, self.columns)  # no column touches another's: threads may
        tests, results = [t for t, _ in done], [r for _, r in done]
        judge = _PRESETS[self.cfg.preset]
        judged = judge(self, tests, results)
        family = [j for j, c in zip(judged, self.columns, strict=True) if c.in_family]
        n_drifted = sum(j.drifted for j in family)
        n_judged = sum(j.judged for j in family)
        min_n = max(
            [self.cfg.min_samples]
            + [
                need
                for j in family
                if isinstance(need := j.measurement.params.get("n_needed"), int)
            ]
        )
        params: dict[str, object] = {
            "drifted_features": n_drifted,
            "features": n_judged,
            "family": [c.name for c in self.columns if c.in_family],
            "preset": self.cfg.preset,
        }
        if self.cfg.preset == "calibrated":
            params.update(self._family_bound(), n_needed=min_n)
            limited = [
                j.measurement.feature for j in family if "reference_limited" in j.measurement.params
            ]
            if limited:
                params["reference_limited"] = limited
        else:
            params["correction"] = self.cfg.multiple_testing
        # a share is known when every family member is judged, or when enough have drifted
        # that the rest cannot change the verdict (calibrated windows below a size)
        complete = (
            n_judged == len(family)
            or self.cfg.preset == "evidently"
            or n_drifted >= self._needed_drifts()
        )
        denominator = n_judged
        if complete and n_judged < len(family):  # the unjudged counted as not drifted
            params["unjudged_features"] = len(family) - n_judged
            denominator = len(family)
        out = [j.measurement for j in judged]
        out.append(
            Measurement(
                check_id=self.id,
                kind=self.kind,
                metric="drift_share",
                headline=True,
                value=n_drifted / denominator if denominator and complete else math.nan,
                method="share of drifted features",
                params=params,
                n_reference=self.n_reference,
                n_current=window.info.sampled,
                threshold=Threshold(
                    breach=self.cfg.threshold,
                    warn=self.cfg.warn,
                    direction="above",
                    inclusive=True,
                    min_samples=min_n
                    if self.cfg.preset == "calibrated" and not complete
                    else self.cfg.min_samples,
                ),
            )
        )
        return out

    def _measurement(
        self,
        col: _Column,
        test: stattests.StatTest,
        result: stattests.StatResult,
        *,
        value: float,
        threshold: Threshold,
        params: dict[str, object],
    ) -> Measurement:
        params = {
            "threshold": result.threshold,
            "stattest_kind": "p_value" if test.is_p_value else "distance",
            "role": col.role,
            **params,
        }
        if result.notes:  # how the test handled the data: unseen categories, scale used
            params["test_notes"] = dict(result.notes)
        return Measurement(
            check_id=self.id,
            kind=self.kind,
            metric="drift_score",
            feature=col.name,
            value=value,
            p_value=result.p_value,
            method=test.alias,
            params=params,
            n_reference=result.n_reference,
            n_current=result.n_current,
            threshold=threshold,
        )


def _evidently(
    check: DriftCheck, tests: list[stattests.StatTest], results: list[stattests.StatResult]
) -> list[_Judged]:
    """Evidently's verdicts; a p-value test's on its p-value corrected across the family."""
    method = check.cfg.multiple_testing
    family = [i for i, t in enumerate(tests) if t.is_p_value]
    adjusted = dict(zip(family, adjust([results[i].value for i in family], method), strict=True))
    out = []
    for i, (col, test, result) in enumerate(zip(check.columns, tests, results, strict=True)):
        value = adjusted.get(i, result.value)
        params: dict[str, object] = {}
        if test.is_p_value and method != "none":
            params.update(correction=method, raw_p_value=result.value, family=len(family))
        m = check._measurement(
            col,
            test,
            result,
            value=value,
            params=params,
            threshold=Threshold(
                breach=result.threshold,
                direction="below" if test.is_p_value else "above",
                inclusive=test.drifted_if(result.threshold, result.threshold),
                min_samples=check.cfg.min_samples,
            ),
        )
        judged = result.n_current >= check.cfg.min_samples
        drifted = judged and value == value and test.drifted_if(value, result.threshold)
        out.append(_Judged(measurement=m, judged=judged, drifted=bool(drifted)))
    return out


def _calibrated(
    check: DriftCheck, tests: list[stattests.StatTest], results: list[stattests.StatResult]
) -> list[_Judged]:
    """Beyond the null quantile at the window's size and beyond the effect floor."""
    out = []
    for col, test, result in zip(check.columns, tests, results, strict=True):
        floor = result.threshold
        n = result.n_current
        params: dict[str, object] = {"effect_floor": floor}
        inclusive = False
        need: int | None = check.cfg.min_samples
        if n < 1:
            breach = math.nan
        else:
            q = check._null(col, test, n)
            need = n_needed(test, q, floor, col.stats.n)
            at_n = quantile_at(test, q, n, col.stats.n)
            params.update(null=q.as_params(), null_quantile=at_n, n_needed=need)
            if test.is_p_value:  # p below both: the stricter of the two bounds
                breach = min(at_n, floor)
                inclusive = False
            else:
                breach = max(at_n, floor)
                inclusive = floor > at_n  # at the floor itself it drifts, as evidently
            if need is None:  # no window size helps: judge on the null quantile alone
                params["reference_limited"] = (
                    "the reference is too small for chance to stay below the effect floor at "
                    "any window size; judged on the null quantile alone"
                )
        threshold = Threshold(
            breach=breach,
            direction="below" if test.is_p_value else "above",
            inclusive=inclusive,
            min_samples=check.cfg.min_samples,
        )
        # beyond chance (at alpha, whatever n) and beyond the floor: drift, whatever the size;
        # not beyond: a pass only from the size at which an effect at the floor would show
        usable = n >= check.cfg.min_samples and breach == breach and result.value == result.value
        drifted = usable and _beyond(result.value, threshold)
        if not drifted and need is not None and need > threshold.min_samples:
            threshold = replace(threshold, min_samples=need)
        judged = drifted or (usable and n >= threshold.min_samples)
        m = check._measurement(
            col, test, result, value=result.value, threshold=threshold, params=params
        )
        out.append(_Judged(measurement=m, judged=judged, drifted=drifted))
    return out


def _beyond(value: float, t: Threshold) -> bool:
    if t.direction == "above":
        return value >= t.breach if t.inclusive else value > t.breach
    return value <= t.breach if t.inclusive else value < t.breach


_PRESETS: dict[
    str,
    Callable[[DriftCheck, list[stattests.StatTest], list[stattests.StatResult]], list[_Judged]],
] = {"evidently": _evidently, "calibrated": _calibrated}
