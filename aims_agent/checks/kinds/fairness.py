"""Group fairness of a binary classifier's decisions, with fairlearn's definitions.

For each sensitive attribute the window is counted once, `np.bincount` over (group, predicted
outcome, true outcome), and every per-group rate and disparity comes from that table:

* per group: selection rate (all rows with a prediction), true/false positive rate, false
  negative rate and accuracy (rows with a label too: ground truth may arrive late);
* disparities between groups (fairlearn's `method="between_groups"`): a `_difference` is the
  largest minus the smallest group rate, a `_ratio` the smallest over the largest. Equalized
  odds takes the worse of its TPR and FPR disparity (fairlearn's `agg="worst_case"`).

Between named privileged and unprivileged groups (`groups`): TrustyAI's SPD and DIR (`parity`).

The four-fifths rule of US employment practice is `demographic_parity_ratio >= 0.8`, the
default limit. A group rate takes part only when its own denominator (rows with a prediction,
labelled rows, labelled positives or labelled negatives) holds `min_group_size` rows; smaller
groups are reported as insufficient data, never judged. A disparity needs two such groups.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from aims_agent.checks import parity
from aims_agent.checks.base import Reference, limit_threshold, register, unknown_metrics
from aims_agent.config import FairnessCheckConfig, Limit, SchemaConfig
from aims_agent.records import ColumnKind, Measurement, Threshold, WindowData
from aims_agent.schema import ModelSchema

Counts = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
# outcome state of a prediction or label: 0 missing, 1 negative, 2 positive
States = npt.NDArray[np.intp]


def _categorical_states(values: np.ndarray, vocab: tuple[str, ...], positive: str) -> States:
    code = vocab.index(positive) if positive in vocab else -2  # -2 matches no row
    states: States = np.add(values >= 0, values == code, dtype=np.intp)
    return states


def _numeric_states(values: np.ndarray, vocab: tuple[str, ...], positive: str) -> States:
    try:
        target = float(positive)
    except ValueError:
        target = math.nan
    states: States = np.add(~np.isnan(values), values == target, dtype=np.intp)
    return states


_STATES: dict[ColumnKind, Callable[[np.ndarray, tuple[str, ...], str], States]] = {
    "categorical": _categorical_states,
    "numeric": _numeric_states,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Table:
    """Counts per group (index = group code) of one attribute."""

    rows: Counts
    predicted: Counts
    selected: Counts
    tp: Counts
    fp: Counts
    tn: Counts
    fn: Counts
    missing_attribute: int

    @classmethod
    def count(cls, groups: np.ndarray, outcome: States) -> _Table:
        # one pass: key = 9 * (group + 1) + 3 * prediction state + label state; group -1 -> row 0
        key = groups * 9 + outcome
        t = np.bincount(key, minlength=9)
        t = np.pad(t, (0, -len(t) % 9)).reshape(-1, 3, 3)  # whole rows up to the last group
        g = t[1:]
        return cls(
            rows=g.sum(axis=(1, 2)),
            predicted=g[:, 1:, :].sum(axis=(1, 2)),
            selected=g[:, 2, :].sum(axis=1),
            tn=g[:, 1, 1],
            fn=g[:, 1, 2],
            fp=g[:, 2, 1],
            tp=g[:, 2, 2],
            missing_attribute=int(t[0].sum()),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Rate:
    """A per-group rate: `method` is its fairlearn / scikit-learn name."""

    method: str
    numerator: Callable[[_Table], Counts]
    denominator: Callable[[_Table], Counts]
    needs_label: bool = True

    def of(self, t: _Table) -> tuple[Floats, Counts]:
        den = self.denominator(t)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.numerator(t) / den, den


RATES: dict[str, _Rate] = {
    "selection_rate": _Rate(
        method="selection_rate",
        numerator=lambda t: t.selected,
        denominator=lambda t: t.predicted,
        needs_label=False,
    ),
    "true_positive_rate": _Rate(
        method="true_positive_rate", numerator=lambda t: t.tp, denominator=lambda t: t.tp + t.fn
    ),
    "false_positive_rate": _Rate(
        method="false_positive_rate", numerator=lambda t: t.fp, denominator=lambda t: t.fp + t.tn
    ),
    "false_negative_rate": _Rate(
        method="false_negative_rate", numerator=lambda t: t.fn, denominator=lambda t: t.tp + t.fn
    ),
    "accuracy": _Rate(
        method="accuracy_score",
        numerator=lambda t: t.tp + t.tn,
        denominator=lambda t: t.tp + t.tn + t.fp + t.fn,
    ),
}


def _difference(rates: Floats) -> float:
    return float(rates.max() - rates.min())


def _ratio(rates: Floats) -> float:
    lo, hi = float(rates.min()), float(rates.max())
    return lo / hi if hi > 0 else math.nan  # all zero: undefined, as fairlearn's 0 / 0


# comparison -> (between groups, worst case across components)
_COMPARE: dict[str, tuple[Callable[[Floats], float], Callable[[list[float]], float]]] = {
    "difference": (_difference, max),
    "ratio": (_ratio, min),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Disparity:
    """A disparity metric: one comparison of one or more group rates, the worst one counting."""

    rates: tuple[str, ...]
    comparison: str  # "difference" | "ratio"
    method: str  # fairlearn's function name
    rule: tuple[str, float] | None = None  # a named pass rule reported in params

    @property
    def needs_label(self) -> bool:
        return any(RATES[r].needs_label for r in self.rates)


def _family(name: str, rates: tuple[str, ...], method: str = "") -> dict[str, Disparity]:
    return {
        f"{name}_{c}": Disparity(rates=rates, comparison=c, method=f"{method or name}_{c}")
        for c in _COMPARE
    }


METRICS: dict[str, Disparity] = {
    **_family("demographic_parity", ("selection_rate",)),
    **_family("equalized_odds", ("true_positive_rate", "false_positive_rate")),
    **_family("equal_opportunity", ("true_positive_rate",)),
    **{k: v for r, rate in RATES.items() for k, v in _family(r, (r,), rate.method).items()},
}
METRICS["demographic_parity_ratio"] = replace(
    METRICS["demographic_parity_ratio"], rule=("four_fifths_rule", 0.8)
)
NEEDS_LABEL = frozenset(name for name, m in METRICS.items() if m.needs_label)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Result:
    value: float
    n: int  # rows the compared rates rest on
    parts: dict[str, float]  # rate -> its comparison across the eligible groups
    eligible: dict[str, list[int]]  # rate -> group codes large enough for it


def _labels(vocab: tuple[str, ...], t: _Table) -> list[str]:
    """The category label of each group code of a table."""
    return [vocab[i] if i < len(vocab) else f"#{i}" for i in range(len(t.rows))]


def _problems(where: str, check: FairnessCheckConfig, schema: SchemaConfig) -> list[str]:
    problems = unknown_metrics(where, check.metrics, {**METRICS, **parity.PAIR_METRICS})
    pairs = [m for m in check.metrics if m in parity.PAIR_METRICS]
    if pairs and not check.groups:
        problems += [f"{where}.metrics.{m}: needs groups (privileged, unprivileged)" for m in pairs]
    if not schema.label:
        problems += [
            f"{where}.metrics.{m}: needs schema.label" for m in check.metrics if m in NEEDS_LABEL
        ]
    attrs = check.sensitive if check.sensitive is not None else schema.sensitive
    if not attrs:
        problems.append(f"{where}.sensitive: no sensitive attribute (set schema.sensitive)")
    problems += [
        f"{where}.sensitive.{a}: not in schema.sensitive"
        for a in attrs
        if a not in schema.sensitive
    ]
    problems += [
        f"{where}.groups.{a}: not a sensitive attribute" for a in check.groups if a not in attrs
    ]
    return problems


@register("fairness", problems=_problems)
class FairnessCheck:
    kind = "fairness"

    def __init__(self, cfg: FairnessCheckConfig, reference: Reference, schema: ModelSchema) -> None:
        self.id = cfg.id
        self.cfg = cfg
        by_source = {c.source: c for c in schema.columns}
        self.prediction = by_source["prediction"]
        self.label = by_source.get("label")
        self.attributes = cfg.sensitive or tuple(
            c.name for c in schema.columns if c.source == "attribute"
        )
        self.rates = tuple(r for r in RATES if self.label or not RATES[r].needs_label)
        self.min_samples = max(cfg.min_samples, 2 * cfg.min_group_size)
        # relative limits compare with the reference's own value; computed only if needed
        self.n_reference = reference.n_rows
        self.reference_values: dict[tuple[str, str], float] = {}
        if any(limit.relative for limit in cfg.metrics.values()):
            for attr, table in self._tables(reference.columns, reference.vocabularies).items():
                labels = _labels(reference.vocabularies.get(attr, ()), table)
                for name in cfg.metrics:
                    if name not in parity.PAIR_METRICS:
                        self.reference_values[attr, name] = self._disparity(name, table).value
                    elif attr in cfg.groups:
                        pair = self._pair_result(attr, name, table, labels)
                        self.reference_values[attr, name] = pair.value

    def _tables(
        self, columns: Mapping[str, np.ndarray], vocabularies: Mapping[str, tuple[str, ...]]
    ) -> dict[str, _Table]:
        pred = self.prediction
        if pred.name not in columns:
            return {}
        positive = self.cfg.positive_label
        outcome = 3 * _STATES[pred.kind](
            columns[pred.name], vocabularies.get(pred.name, ()), positive
        )
        if self.label and self.label.name in columns:
            name = self.label.name
            outcome += _STATES[self.label.kind](columns[name], vocabularies.get(name, ()), positive)
        outcome += 9  # shifts group -1 (missing) to row 0 of the table
        return {a: _Table.count(columns[a], outcome) for a in self.attributes if a in columns}

    def _disparity(self, name: str, t: _Table) -> _Result:
        """One disparity metric over the groups whose denominators are large enough."""
        metric = METRICS[name]
        between, worst = _COMPARE[metric.comparison]
        present = np.flatnonzero(t.rows)
        parts: dict[str, float] = {}
        eligible: dict[str, list[int]] = {}
        n = 0
        for r in metric.rates:
            rate, den = RATES[r].of(t)
            ok = (
                present[den[present] >= self.cfg.min_group_size] if r in self.rates else present[:0]
            )
            eligible[r] = ok.tolist()
            parts[r] = between(rate[ok]) if len(ok) >= 2 else math.nan
            n += int(den[ok].sum())
        # short of two groups for a rate: insufficient; a 0 / 0 ratio alone is left out
        defined = [v for v in parts.values() if not math.isnan(v)]
        short = any(len(groups) < 2 for groups in eligible.values())
        value = worst(defined) if defined and not short else math.nan
        return _Result(value=value, n=n, parts=parts, eligible=eligible)

    def run(self, window: WindowData) -> list[Measurement]:
        out: list[Measurement] = []
        for attr, t in self._tables(window.columns, window.vocabularies).items():
            labels = _labels(window.vocabularies.get(attr, ()), t)
            out += self._groups(attr, t, labels)
            for name, limit in self.cfg.metrics.items():
                if name not in parity.PAIR_METRICS:
                    out.append(self._headline(attr, name, limit, t, labels))
                elif attr in self.cfg.groups:
                    out.append(self._pair_headline(attr, name, limit, t, labels))
        return out

    def _pair_result(self, attr: str, name: str, t: _Table, labels: list[str]) -> parity.PairResult:
        pair, size = self.cfg.groups[attr], self.cfg.min_group_size
        return parity.pair_result(name, t.selected, t.predicted, labels, pair, min_group_size=size)

    def _pair_headline(
        self, attr: str, name: str, limit: Limit, t: _Table, labels: list[str]
    ) -> Measurement:
        ref = self.reference_values.get((attr, name))
        return parity.pair_measurement(
            self._pair_result(attr, name, t, labels),
            check_id=self.id,
            attr=attr,
            name=name,
            limit=limit,
            cfg=self.cfg,
            reference=ref,
            n_reference=self.n_reference if ref is not None else 0,
            min_samples=self.min_samples,
        )

    def _groups(self, attr: str, t: _Table, labels: list[str]) -> list[Measurement]:
        """Per-group size and rates: informational, insufficient data below `min_group_size`."""
        small = Threshold(breach=math.nan, min_samples=self.cfg.min_group_size)
        columns = {"group_size": ("count", t.rows.astype(np.float64), t.rows)}
        columns |= {r: (RATES[r].method, *RATES[r].of(t)) for r in self.rates}
        labelled = t.tp + t.fp + t.tn + t.fn
        return [
            Measurement(
                check_id=self.id,
                kind=self.kind,
                metric=metric,
                feature=f"{attr}={labels[g]}",
                value=float(value[g]),
                method=method,
                params={
                    "attribute": attr,
                    "group": labels[g],
                    "rows": int(t.rows[g]),
                    "labelled": int(labelled[g]),
                    "positive_label": self.cfg.positive_label,
                },
                n_current=int(den[g]),
                threshold=None if den[g] >= self.cfg.min_group_size else small,
            )
            for g in np.flatnonzero(t.rows).tolist()
            for metric, (method, value, den) in columns.items()
        ]

    def _headline(
        self, attr: str, name: str, limit: Limit, t: _Table, labels: list[str]
    ) -> Measurement:
        metric = METRICS[name]
        res = self._disparity(name, t)
        used = sorted(set().union(*res.eligible.values()))
        rates = {r: RATES[r].of(t) for r in metric.rates}
        params: dict[str, object] = {
            "attribute": attr,
            "comparison": "between_groups",
            "positive_label": self.cfg.positive_label,
            "min_group_size": self.cfg.min_group_size,
            "groups": [labels[g] for g in used],
            "group_rates": {
                r: {labels[g]: parity.num(float(rates[r][0][g])) for g in res.eligible[r]}
                for r in metric.rates
            },
            # groups left out of a rate, with that rate's denominator (rows it would rest on)
            "excluded_groups": {
                labels[g]: {
                    r: int(rates[r][1][g]) for r in metric.rates if g not in res.eligible[r]
                }
                for g in np.flatnonzero(t.rows).tolist()
                if any(g not in res.eligible[r] for r in metric.rates)
            },
            "missing_attribute": t.missing_attribute,
        }
        if len(res.parts) > 1:
            params["agg"] = "worst_case"
            params["components"] = {
                f"{r}_{metric.comparison}": parity.num(v) for r, v in res.parts.items()
            }
        if metric.rule is not None:
            rule, bound = metric.rule
            params[rule] = None if math.isnan(res.value) else res.value >= bound
        if self.label is None and metric.needs_label:
            params["note"] = "needs a label column (schema.label)"
        ref = self.reference_values.get((attr, name))
        if ref is not None:
            params["reference_value"] = parity.num(ref)
        return Measurement(
            check_id=self.id,
            kind=self.kind,
            metric=name,
            feature=attr,
            value=res.value,
            method=metric.method,
            params=params,
            n_reference=self.n_reference if ref is not None else 0,
            n_current=res.n,
            threshold=limit_threshold(
                limit, res.value, reference=ref, min_samples=self.min_samples
            ),
            headline=True,
        )
