"""Null quantiles of a drift test's value at a window's size, from seeded resampling.

Under no drift the window and the reference are two samples of one population. The value a
test gives then depends on both sizes: a 200-row window is far from a 50,000-row reference
by chance alone, and a 1,000-row reference is itself noisy. For a window of n rows against a
reference of N, the null distribution is estimated by the bootstrap, the reference standing
for the population:

* N <= `TWO_SAMPLE_MAX`: each replicate draws a pseudo-reference of N rows and a
  pseudo-window of n rows from the reference, with replacement, and runs the test between
  them (a two-sample bootstrap: the reference's own noise is in the null);
* larger references: a pseudo-window of the effective size n N / (n + N) against the
  reference itself, which has the same spread to first order for the CDF distances and
  divergences (their null shrinks with 1/n + 1/N).

Replicate windows above `MAX_REPLICATE` rows are drawn at that size and the quantile scaled
by (effective size ratio) ** `StatTest.null_power` (distances shrink as n ** -0.5, psi as
n ** -1; p-values are not scaled). The quantile is taken conformally: the k-th largest of B
replicates with k = ceil((1 - alpha)(B + 1)), so a new null window beyond it has chance at
most alpha (ties only lower it). Sizes are bucketed (the largest of 2 ** (j / 4) not above
n): the null is computed at the bucket, which is conservative for distances, and cached.

Pure: the cache is a mapping the caller may keep between runs; nothing here reads files.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import MutableMapping
from dataclasses import asdict, dataclass

import numpy as np

from aims_agent.checks.stattests import (
    CategoricalStats,
    NumericStats,
    ReferenceStats,
    StatTest,
    prepare_reference,
)

TWO_SAMPLE_MAX = 20_000  # references up to this size are resampled in every replicate
MAX_REPLICATE = 2_000  # replicate windows above this size are drawn at it and scaled
MIN_BUCKET = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class NullQuantile:
    """The value a test reaches by chance with probability alpha at one window size."""

    quantile: float  # upper quantile for distances, lower one for p-values
    alpha: float
    n: int  # the size bucket it was computed for (<= the window's size)
    n_effective: float  # n N / (n + N): the size that sets the spread
    replicate_n: int  # the pseudo-window size drawn (n, or capped and scaled)
    replicates: int
    seed: int
    method: str  # "two-sample bootstrap" or "one-sample bootstrap at the effective size"
    scale: float  # factor applied to the replicates' quantile (1 when not capped)

    def as_params(self) -> dict[str, object]:
        return asdict(self)


def bucket(n: int) -> int:
    """The size the null is computed at for a window of n rows: the largest 2 ** (j / 4)
    (rounded) not above n, and never below `MIN_BUCKET`."""
    if n <= MIN_BUCKET:
        return MIN_BUCKET
    j = math.floor(4 * math.log2(n))
    while round(2 ** (j / 4)) > n:
        j -= 1
    return int(round(2 ** (j / 4)))


def effective_n(n: float, n_ref: int) -> float:
    return n * n_ref / (n + n_ref)


def column_seed(seed: int, column: str, n: int) -> list[int]:
    """The seed of one column's replicates of n rows (stable across processes)."""
    return [seed, zlib.crc32(column.encode()), n]


class _Sampler:
    """Draws with replacement from a prepared reference, in the encoding tests take."""

    def __init__(self, stats: ReferenceStats) -> None:
        self.stats = stats
        if isinstance(stats, NumericStats):
            self.values: np.ndarray = stats.sorted
        else:
            assert isinstance(stats, CategoricalStats)
            self.values = np.repeat(np.arange(stats.counts.size), stats.counts)

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return self.values[rng.integers(0, self.values.size, size)]

    def prepare(self, sample: np.ndarray) -> ReferenceStats:
        n_cat = None if isinstance(self.stats, NumericStats) else self.stats.counts.size
        return prepare_reference(sample, kind=self.stats.kind, n_categories=n_cat)


def _conformal(values: np.ndarray, alpha: float, upper: bool) -> float:
    """The k-th largest (upper) or k-th smallest (lower) replicate, k from alpha and B."""
    v = np.sort(values[~np.isnan(values)])
    b = v.size
    if upper:
        k = math.ceil((1 - alpha) * (b + 1))  # 1-based from the bottom
        return float(v[k - 1]) if k <= b else math.inf
    k = math.floor(alpha * (b + 1))
    return float(v[k - 1]) if k >= 1 else 0.0  # nothing lies below 0: never beyond


def null_quantile(
    test: StatTest,
    stats: ReferenceStats,
    n: int,
    *,
    column: str,
    alpha: float,
    replicates: int,
    seed: int,
    cache: MutableMapping[str, object] | None = None,
) -> NullQuantile:
    """The null quantile of `test` against `stats` for a window of n rows (bucketed, cached).

    The replicates depend on the drawn size only, so every bucket drawn at the cap shares
    them: a reference is calibrated once for all large windows."""
    nb = bucket(n)
    n_ref = stats.n
    two_sample = n_ref <= TWO_SAMPLE_MAX
    n_eff = effective_n(nb, n_ref)
    target = nb if two_sample else max(1, round(n_eff))
    draw_n = min(target, MAX_REPLICATE)
    scale = 1.0
    if draw_n < target:  # fewer rows drawn: the replicates spread wider, shrink them back
        drawn_eff = effective_n(draw_n, n_ref) if two_sample else draw_n
        scale = (drawn_eff / n_eff) ** test.null_power
    key = f"null|{column}|{test.alias}|{draw_n}|{alpha!r}|{replicates}|{seed}|{n_ref}"
    hit = cache.get(key) if cache is not None else None
    if isinstance(hit, float):
        q = hit
    else:
        rng = np.random.default_rng(column_seed(seed, column, draw_n))
        sampler = _Sampler(stats)
        values = np.empty(replicates)
        for i in range(replicates):
            ref = sampler.prepare(sampler.draw(rng, n_ref)) if two_sample else stats
            values[i] = test.replicate_value(ref, sampler.draw(rng, draw_n))
        q = _conformal(values, alpha, upper=not test.is_p_value)
        if cache is not None:
            cache[key] = q
    out = NullQuantile(
        quantile=q * scale if not test.is_p_value else q,
        alpha=alpha,
        n=nb,
        n_effective=n_eff,
        replicate_n=draw_n,
        replicates=replicates,
        seed=seed,
        method="two-sample bootstrap"
        if two_sample
        else "one-sample bootstrap at the effective size",
        scale=scale if not test.is_p_value else 1.0,
    )
    return out


def quantile_at(test: StatTest, q: NullQuantile, n: int, n_ref: int) -> float:
    """The null quantile for exactly n rows, from its size bucket's: distances shrink as
    n_eff ** -power between the bucket and n; p-values are taken as they are."""
    if test.is_p_value or n <= q.n:
        return q.quantile
    return float(q.quantile * (q.n_effective / effective_n(n, n_ref)) ** test.null_power)


def n_needed(test: StatTest, q: NullQuantile, floor: float, n_ref: int) -> int | None:
    """The window size from which the null quantile falls below the effect floor, so that an
    effect of the floor's size stands out from chance; None when no window size will do
    (the reference is too small). Distances only (their null shrinks as n_eff ** -power);
    a p-value test needs 1 row here, the check's `min_samples` applies to it."""
    if test.is_p_value or test.null_power <= 0:
        return 1
    if q.quantile < floor:
        return q.n
    need_eff = q.n_effective * (q.quantile / floor) ** (1 / test.null_power)
    if need_eff >= n_ref:
        return None
    return int(math.ceil(need_eff * n_ref / (n_ref - need_eff)))
