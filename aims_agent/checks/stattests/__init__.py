"""Evidently 0.7.23's legacy data-drift stattests, reproduced on precomputed reference stats.

Same value, p-value and verdict as Evidently's `get_stattest(...)(reference, current,
column_type, threshold)` on columns cleaned as `get_one_column_drift` cleans them (inf ->
missing, missing dropped). Numeric results are bit-equal; categorical ones agree to
rounding, because Evidently sums over a Python set of labels whose order changes with the
hash seed. The reference is summarised once (`prepare_reference`); a window then costs a
sort of the current sample plus lookups into the reference (`ks`, binned `psi` /
`jensenshannon` / `hellinger`, categorical tests), a pass over the reference's distinct
values (`anderson`, few-valued numeric columns) or over its sorted values (`wasserstein`).

Numeric columns are float64 (NaN missing, +/-inf dropped like missing); categorical
columns are integer codes into a vocabulary shared with the window (-1 missing). Where
Evidently raises instead of answering (empty current window, `anderson` on a single
distinct value, Sturges bins over a range wider than the largest float) the result is
value NaN, not drifted.
"""

from __future__ import annotations

import operator

import numpy as np
import numpy.typing as npt

from aims_agent.checks.stattests import divergence, ecdf, frequency, two_sample
from aims_agent.checks.stattests._core import (
    CategoricalStats,
    NumericStats,
    ReferenceStats,
    StatResult,
    StatTest,
    clean_categorical,
    clean_numeric,
    prepare_reference,
)
from aims_agent.checks.stattests._counts import (
    union_nunique_categorical,
    union_nunique_numeric,
)
from aims_agent.errors import UnknownAliasError
from aims_agent.records import ColumnKind

__all__ = [
    "REGISTRY",
    "STATTESTS",
    "TWO_SAMPLE",
    "CategoricalStats",
    "NumericStats",
    "ReferenceStats",
    "StatResult",
    "StatTest",
    "default_stattest",
    "get_stattest",
    "prepare_reference",
]

_NUMERIC: frozenset[ColumnKind] = frozenset({"numeric"})
_CATEGORICAL: frozenset[ColumnKind] = frozenset({"categorical"})
_BOTH: frozenset[ColumnKind] = _NUMERIC | _CATEGORICAL

_TESTS = (
    StatTest(alias="ks", kinds=_NUMERIC, is_p_value=True, default_threshold=0.05,
             drifted_if=operator.le, numeric=ecdf.ks),
    StatTest(alias="wasserstein", kinds=_NUMERIC, is_p_value=False, default_threshold=0.1,
             drifted_if=operator.ge, numeric=ecdf.wasserstein,
             replicate=two_sample.wasserstein_std_fast),
    StatTest(alias="anderson", kinds=_NUMERIC, is_p_value=True, default_threshold=0.1,
             drifted_if=operator.lt, numeric=ecdf.anderson),
    StatTest(alias="psi", kinds=_BOTH, is_p_value=False, default_threshold=0.1,
             drifted_if=operator.ge, null_power=1.0, numeric=divergence.psi_numeric,
             categorical=divergence.psi_categorical),
    StatTest(alias="jensenshannon", kinds=_BOTH, is_p_value=False, default_threshold=0.1,
             drifted_if=operator.ge, numeric=divergence.js_numeric,
             categorical=divergence.js_categorical),
    StatTest(alias="hellinger", kinds=_BOTH, is_p_value=False, default_threshold=0.1,
             drifted_if=operator.ge, numeric=divergence.hellinger_numeric,
             categorical=divergence.hellinger_categorical),
    StatTest(alias="chisquare", kinds=_CATEGORICAL, is_p_value=True, default_threshold=0.05,
             drifted_if=operator.lt, numeric=frequency.chisquare_numeric,
             categorical=frequency.chisquare_categorical),
    StatTest(alias="z", kinds=_CATEGORICAL, is_p_value=True, default_threshold=0.05,
             drifted_if=operator.lt, numeric=frequency.z_numeric,
             categorical=frequency.z_categorical),
)  # fmt: skip

STATTESTS: dict[str, StatTest] = {t.alias: t for t in _TESTS}  # Evidently's, as it defines them

# two-sample tests and robust distances defined by scipy, not by Evidently
_SCIPY = (
    StatTest(alias="chi2_contingency", kinds=_BOTH, is_p_value=True, origin="scipy",
             default_threshold=0.05, drifted_if=operator.lt,
             numeric=two_sample.chi2_contingency_numeric,
             categorical=two_sample.chi2_contingency_categorical),
    StatTest(alias="g_test", kinds=_BOTH, is_p_value=True, origin="scipy",
             default_threshold=0.05, drifted_if=operator.lt,
             numeric=two_sample.g_test_numeric, categorical=two_sample.g_test_categorical),
    StatTest(alias="wasserstein_iqr", kinds=_NUMERIC, is_p_value=False, origin="scipy",
             default_threshold=0.1, drifted_if=operator.ge, numeric=two_sample.wasserstein_iqr,
             replicate=two_sample.wasserstein_iqr_fast),
    StatTest(alias="wasserstein_mad", kinds=_NUMERIC, is_p_value=False, origin="scipy",
             default_threshold=0.1, drifted_if=operator.ge, numeric=two_sample.wasserstein_mad,
             replicate=two_sample.wasserstein_mad_fast),
)  # fmt: skip
TWO_SAMPLE: dict[str, StatTest] = {t.alias: t for t in _SCIPY}
REGISTRY: dict[str, StatTest] = {**STATTESTS, **TWO_SAMPLE}  # every test a config can name


def get_stattest(alias: str, kind: ColumnKind) -> StatTest:
    """The test registered under `alias` for columns of `kind`, as Evidently would accept it."""
    test = REGISTRY.get(alias)
    if test is None or kind not in test.kinds:
        known = (a for a, t in REGISTRY.items() if kind in t.kinds)
        raise UnknownAliasError(f"{kind} stattest", alias, known)
    return test


def default_stattest(reference: ReferenceStats, current: npt.ArrayLike) -> StatTest:
    """Evidently's default test for this column and window (`get_stattest(..., None)`).

    The choice depends on the reference size (<= 1000 rows or more) and on the number of
    distinct values in reference and current together, so it can change from one window
    to the next when the current window brings new values.
    """
    if isinstance(reference, NumericStats):
        n_values = union_nunique_numeric(reference, np.sort(clean_numeric(current)))
        if reference.n <= 1000:
            few = "chisquare" if n_values > 2 else "z"
            return STATTESTS[few if n_values <= 5 else "ks"]
        return STATTESTS["jensenshannon" if n_values <= 5 else "wasserstein"]
    if reference.n > 1000:
        return STATTESTS["jensenshannon"]
    n_values = union_nunique_categorical(reference, clean_categorical(current))
    return STATTESTS["chisquare" if n_values > 2 else "z"]
