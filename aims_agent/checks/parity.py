"""Disparity between a named privileged and unprivileged group of one attribute, as TrustyAI
(and AIF360) define it, for the fairness check:

* statistical parity difference = P(favorable | unprivileged) - P(favorable | privileged)
* disparate impact ratio = P(favorable | unprivileged) / P(favorable | privileged)

Each side may be several values of the attribute (TrustyAI's lists); a side whose rows with a
prediction number fewer than `min_group_size` leaves the value undefined (insufficient data),
and so does a ratio over a privileged rate of 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aims_agent.checks.base import limit_threshold
from aims_agent.config.checks import FairnessCheckConfig, GroupPair, Limit
from aims_agent.records import Measurement

Counts = npt.NDArray[np.int64]


def _difference(unprivileged: float, privileged: float) -> float:
    return unprivileged - privileged


def _ratio(unprivileged: float, privileged: float) -> float:
    return unprivileged / privileged if privileged > 0 else math.nan


PAIR_METRICS: dict[str, Callable[[float, float], float]] = {
    "statistical_parity_difference": _difference,
    "disparate_impact_ratio": _ratio,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class PairResult:
    value: float
    rates: tuple[float, float]  # privileged, unprivileged
    rows: tuple[int, int]  # rows with a prediction on each side


def pair_result(
    name: str,
    selected: Counts,
    predicted: Counts,
    labels: Sequence[str],
    pair: GroupPair,
    *,
    min_group_size: int,
) -> PairResult:
    """`name` between the two sides, from per-group counts (index = group code, `labels` the
    code's category label)."""
    code = {label: i for i, label in enumerate(labels)}

    def side(values: Sequence[object]) -> tuple[float, int]:
        index = [code[str(v)] for v in values if str(v) in code]
        n = int(predicted[index].sum())
        return (int(selected[index].sum()) / n if n else math.nan), n

    (priv, n_priv), (unpriv, n_unpriv) = side(pair.privileged), side(pair.unprivileged)
    enough = min(n_priv, n_unpriv) >= min_group_size
    value = PAIR_METRICS[name](unpriv, priv) if enough else math.nan
    return PairResult(value=value, rates=(priv, unpriv), rows=(n_priv, n_unpriv))


def pair_measurement(
    res: PairResult,
    *,
    check_id: str,
    attr: str,
    name: str,
    limit: Limit,
    cfg: FairnessCheckConfig,
    reference: float | None,
    n_reference: int,
    min_samples: int,
) -> Measurement:
    """The headline measurement of SPD or DIR on one attribute."""
    pair = cfg.groups[attr]
    params: dict[str, object] = {
        "attribute": attr,
        "privileged": [str(v) for v in pair.privileged],
        "unprivileged": [str(v) for v in pair.unprivileged],
        "positive_label": cfg.positive_label,
        "min_group_size": cfg.min_group_size,
        "group_rates": {"privileged": num(res.rates[0]), "unprivileged": num(res.rates[1])},
        "group_rows": {"privileged": res.rows[0], "unprivileged": res.rows[1]},
    }
    if reference is not None:
        params["reference_value"] = num(reference)
    return Measurement(
        check_id=check_id,
        kind="fairness",
        metric=name,
        feature=attr,
        value=res.value,
        method=name,
        params=params,
        n_reference=n_reference,
        n_current=sum(res.rows),
        threshold=limit_threshold(limit, res.value, reference=reference, min_samples=min_samples),
        headline=True,
    )


def num(x: float) -> float | None:
    return None if math.isnan(x) else x  # NaN is not JSON
