"""Drift of every feature (and of the prediction and score) against the reference.

Each column gets a statistical test: the one configured for it, or Evidently's default choice
for its type and size, with that test's default threshold. The headline measurement is the
share of drifted features, which breaches at or above the configured share (Evidently's
dataset-drift rule).
"""

from __future__ import annotations

from dataclasses import dataclass

from aims_agent.checks import stattests
from aims_agent.checks.base import Reference, register, schema_columns
from aims_agent.checks.multiple_testing import adjust
from aims_agent.config import DriftCheckConfig, SchemaConfig
from aims_agent.records import ColumnKind, Measurement, Threshold, WindowData
from aims_agent.schema import ModelSchema

_SOURCES = {"feature", "prediction", "score"}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Column:
    name: str
    kind: ColumnKind
    is_feature: bool
    stats: stattests.ReferenceStats  # summarised once, shared by every test
    test: stattests.StatTest | None  # None: Evidently's default, chosen per window
    threshold: float | None


def _problems(where: str, check: DriftCheckConfig, schema: SchemaConfig) -> list[str]:
    columns = schema_columns(schema)
    return [
        f"{where}.columns.{c}: not a column of the schema"
        for c in check.columns
        if c not in columns
    ]


@register("drift", problems=_problems)
class DriftCheck:
    kind = "drift"

    def __init__(self, cfg: DriftCheckConfig, reference: Reference, schema: ModelSchema) -> None:
        self.id = cfg.id
        self.cfg = cfg
        self.n_reference = reference.n_rows
        wanted = _SOURCES if cfg.include_prediction else {"feature"}
        self.columns: list[_Column] = []
        for col in schema.columns:
            if col.source not in wanted or col.name not in reference.columns:
                continue
            override = cfg.columns.get(col.name)
            alias = override.test if override else None
            vocab = reference.vocabularies.get(col.name)
            self.columns.append(
                _Column(
                    name=col.name,
                    kind=col.kind,
                    is_feature=col.source == "feature",
                    stats=stattests.prepare_reference(
                        reference.columns[col.name],
                        kind=col.kind,
                        n_categories=len(vocab) if vocab is not None else None,
                    ),
                    test=stattests.get_stattest(alias, col.kind) if alias else None,
                    threshold=override.threshold if override else None,
                )
            )

    def run(self, window: WindowData) -> list[Measurement]:
        tests, results = [], []
        for col in self.columns:
            current = window.columns[col.name]
            test = col.test or stattests.default_stattest(col.stats, current)
            tests.append(test)
            results.append(
                test.compute(
                    col.stats,
                    current,
                    threshold=col.threshold,
                    labels=window.vocabularies.get(col.name),
                )
            )
        # the verdict of a p-value test is made on its p-value corrected across the family
        method = self.cfg.multiple_testing
        family = [i for i, t in enumerate(tests) if t.is_p_value]
        adjusted = dict(
            zip(family, adjust([results[i].value for i in family], method), strict=True)
        )
        out: list[Measurement] = []
        drifted = judged = 0
        for i, (col, test, result) in enumerate(zip(self.columns, tests, results, strict=True)):
            value = adjusted.get(i, result.value)
            params: dict[str, object] = {
                "threshold": result.threshold,
                "stattest_kind": "p_value" if test.is_p_value else "distance",
                "role": "feature" if col.is_feature else "output",
            }
            if result.notes:  # how the test handled the data: unseen categories, scale used
                params["test_notes"] = dict(result.notes)
            if test.is_p_value and method != "none":
                params.update(correction=method, raw_p_value=result.value, family=len(family))
            out.append(
                Measurement(
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
                    threshold=Threshold(
                        breach=result.threshold,
                        direction="below" if test.is_p_value else "above",
                        inclusive=test.drifted_if(result.threshold, result.threshold),
                        min_samples=self.cfg.min_samples,
                    ),
                )
            )
            if col.is_feature and result.n_current >= self.cfg.min_samples:
                judged += 1
                drifted += int(value == value and test.drifted_if(value, result.threshold))
        out.append(
            Measurement(
                check_id=self.id,
                kind=self.kind,
                metric="drift_share",
                headline=True,
                value=drifted / judged if judged else float("nan"),
                method="share of drifted features",
                params={"drifted_features": drifted, "features": judged, "correction": method},
                n_reference=self.n_reference,
                n_current=window.info.sampled,
                threshold=Threshold(
                    breach=self.cfg.threshold,
                    warn=self.cfg.warn,
                    direction="above",
                    inclusive=True,
                    min_samples=self.cfg.min_samples,
                ),
            )
        )
        return out
