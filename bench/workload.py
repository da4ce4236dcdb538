#!/usr/bin/env python
"""The project's own deterministic workload: a tabular binary classifier in production.

Tests and benchmarks build their data here, so a clone of the repository is all they need.

Columns of `make(n, seed, current)` (a pandas DataFrame):
  * `num_00` .. `num_19`: 20 numeric features, seven families of distribution (normal,
    lognormal, uniform, exponential, gamma, Student t, a two-mode mixture);
  * `cat_0` .. `cat_7`: 8 categorical features with 5 to 30 levels (`c<k>_v<jj>`);
  * `group`: a sensitive attribute, A / B / C with shares 0.5 / 0.3 / 0.2;
  * `target` (0/1 ground truth), `score` (the model's probability), `prediction` (score >= 0.5).

`current=True` is production after a change: `num_00` .. `num_04` drift (a 0.5 sd and a 0.25 sd
shift, variance inflation, a unit change, a new mode) as do `cat_0` (its mix reversed) and
`cat_1` (mass moved to its rarest level), and the model degrades for group C (noisier and biased
upwards: more false positives). The distributions' parameters come from one fixed seed; rows
from `seed`, so `make(n, 42, False)` and `make(n, 43, True)` are a reference and a drifted
current that share their population.

    python bench/workload.py --n 100000 --outdir bench-data   # reference and current files
"""

from __future__ import annotations

import argparse
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

N_NUM = 20
LEVELS = (5, 8, 10, 12, 15, 20, 25, 30)
GROUPS = ("A", "B", "C")
GROUP_SHARES = (0.5, 0.3, 0.2)
FAMILIES = ("normal", "lognormal", "uniform", "exponential", "gamma", "t", "mixture")
PARAMS_SEED = 5_150_421

NUM_COLS = [f"num_{j:02d}" for j in range(N_NUM)]
CAT_COLS = [f"cat_{k}" for k in range(len(LEVELS))]
DRIFT_NUM = NUM_COLS[:5]
DRIFT_CAT = CAT_COLS[:2]


@cache
def _population() -> dict[str, Any]:
    """Distribution parameters and the true model's weights, fixed for every sample."""
    rng = np.random.default_rng(PARAMS_SEED)
    numeric = [
        {
            "family": FAMILIES[j % len(FAMILIES)],
            "centre": rng.uniform(-4, 4),
            "spread": rng.uniform(0.5, 2.5),
            "shape": rng.uniform(1.5, 4.0),
        }
        for j in range(N_NUM)
    ]
    mixes = [rng.dirichlet(np.full(k, 1.5)) for k in LEVELS]
    informative = rng.random(N_NUM) < 0.6
    weights = rng.normal(0, 0.6, N_NUM) * informative
    level_weights = [rng.normal(0, 0.5, k) for k in LEVELS]
    # standardising constants from a large sample of each distribution, not from the rows
    big = [
        _draw(np.random.default_rng(PARAMS_SEED + 1 + j), p, 20_000) for j, p in enumerate(numeric)
    ]
    return {
        "numeric": numeric,
        "mixes": mixes,
        "weights": weights,
        "level_weights": level_weights,
        "mean": np.array([b.mean() for b in big]),
        "sd": np.array([b.std() for b in big]),
    }


def _draw(rng: np.random.Generator, p: dict[str, Any], n: int) -> np.ndarray:
    family, c, s, k = p["family"], p["centre"], p["spread"], p["shape"]
    draws = {
        "normal": lambda: rng.normal(c, s, n),
        "lognormal": lambda: s * np.exp(rng.normal(0.0, 0.25 * k, n)),
        "uniform": lambda: rng.uniform(c - 2 * s, c + 2 * s, n),
        "exponential": lambda: rng.exponential(s, n),
        "gamma": lambda: rng.gamma(k, s, n),
        "t": lambda: c + s * rng.standard_t(2 * k + 2, n),
        "mixture": lambda: np.where(
            rng.random(n) < 0.35, rng.normal(c - 2 * s, 0.5 * s, n), rng.normal(c + s, 0.7 * s, n)
        ),
    }
    return draws[family]()


def _drift_numeric(
    raw: np.ndarray, rng: np.random.Generator, mean: np.ndarray, sd: np.ndarray
) -> None:
    raw[:, 0] += 0.5 * sd[0]  # mean shift of half a standard deviation
    raw[:, 1] = mean[1] + 1.6 * (raw[:, 1] - mean[1])  # wider
    raw[:, 2] += 0.25 * sd[2]  # a quarter standard deviation
    raw[:, 3] *= 1.4  # a change of unit
    moved = rng.random(len(raw)) < 0.25  # a new mode for a quarter of the rows
    raw[moved, 4] = mean[4] + 3 * sd[4] + rng.normal(0, 0.3 * sd[4], int(moved.sum()))


def _drift_mix(k: int, mix: np.ndarray) -> np.ndarray:
    if k == 0:
        return mix[::-1].copy()
    if k == 1:
        rarest = np.zeros_like(mix)
        rarest[int(np.argmin(mix))] = 1.0
        return 0.6 * mix + 0.4 * rarest
    return mix


def make(n: int, seed: int, current: bool) -> Any:
    """`n` rows drawn with `seed`; `current` injects the drift and the group-C degradation."""
    import pandas as pd

    pop = _population()
    rng = np.random.default_rng(seed)
    raw = np.column_stack([_draw(rng, p, n) for p in pop["numeric"]])
    if current:
        _drift_numeric(raw, rng, pop["mean"], pop["sd"])
    cols: dict[str, Any] = dict(zip(NUM_COLS, raw.T, strict=True))
    logit = ((raw - pop["mean"]) / pop["sd"]) @ pop["weights"]
    for k, (levels, mix) in enumerate(zip(LEVELS, pop["mixes"], strict=True)):
        mix = _drift_mix(k, mix) if current else mix
        idx = rng.choice(levels, size=n, p=mix / mix.sum())
        names = np.array([f"c{k}_v{v:02d}" for v in range(levels)], dtype=object)
        cols[CAT_COLS[k]] = names[idx]
        logit = logit + pop["level_weights"][k][idx]
    g = rng.choice(len(GROUPS), size=n, p=GROUP_SHARES)
    cols["group"] = np.array(GROUPS, dtype=object)[g]
    logit = logit + np.array([0.0, -0.15, 0.1])[g] - 0.2
    target = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    model = 1.3 * logit + rng.normal(0, 1.0, n)
    if current:  # the model degrades for group C
        c = g == 2
        model[c] = 0.6 * logit[c] + rng.normal(0, 2.0, int(c.sum())) + 1.0
    score = 1 / (1 + np.exp(-model))
    cols.update(target=target, score=score, prediction=(score >= 0.5).astype(np.int64))
    return pd.DataFrame(cols)


CLASSES = ("approve", "refer", "decline")
SCORE_COLS = tuple(f"p_{c}" for c in CLASSES)


@cache
def _class_weights() -> tuple[Any, Any]:
    """A three-class model's weights: one logit per class from the same features."""
    rng = np.random.default_rng(PARAMS_SEED + 99)
    informative = rng.random((N_NUM, len(CLASSES))) < 0.6
    return rng.normal(0, 0.7, (N_NUM, len(CLASSES))) * informative, rng.normal(0, 0.3, 3)


def make_multiclass(n: int, seed: int, current: bool) -> Any:
    """`make`'s features and groups with a three-class outcome: `label` (approve / refer /
    decline, drawn from a softmax of per-class logits), the model's probability per class
    `p_approve`, `p_refer`, `p_decline` (a noisy, over-confident softmax; summing to 1) and
    `prediction`, the most probable class. `current` drifts the features as `make` does, and
    the model degrades for group C (noisier)."""
    pop = _population()
    df = make(n, seed, current)
    rng = np.random.default_rng(seed + 7)
    z = (df[NUM_COLS].to_numpy() - pop["mean"]) / pop["sd"]
    weights, bias = _class_weights()
    logits = z @ weights + bias
    truth = np.exp(logits - logits.max(axis=1, keepdims=True))
    truth /= truth.sum(axis=1, keepdims=True)
    label = (rng.random(n)[:, None] > np.cumsum(truth, axis=1)).sum(axis=1)
    model = 1.3 * logits + rng.normal(0, 0.8, (n, len(CLASSES)))
    if current:
        c = (df["group"] == "C").to_numpy()
        model[c] = 0.6 * logits[c] + rng.normal(0, 2.0, (int(c.sum()), len(CLASSES)))
    probs = np.exp(model - model.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    names = np.array(CLASSES, dtype=object)
    out = df.drop(columns=["target", "score", "prediction"])
    out["label"] = names[np.minimum(label, len(CLASSES) - 1)]
    for j, col in enumerate(SCORE_COLS):
        out[col] = probs[:, j]
    out["prediction"] = names[probs.argmax(axis=1)]
    return out


def write(n: int, outdir: Path, *, seed: int = 42, csv: bool = True) -> dict[str, Path]:
    """reference.parquet (seed) and current.parquet (seed + 1, drifted) under `outdir`, and
    their CSV twins unless `csv` is false. Returns the Parquet paths by name."""
    outdir.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, s, cur in (("reference", seed, False), ("current", seed + 1, True)):
        df = make(n, s, cur)
        out[name] = outdir / f"{name}.parquet"
        df.to_parquet(out[name], index=False)
        if csv:
            df.to_csv(outdir / f"{name}.csv", index=False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--outdir", type=Path, default=Path("bench-data"))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-csv", action="store_true")
    a = ap.parse_args()
    for name, path in write(a.n, a.outdir, seed=a.seed, csv=not a.no_csv).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
