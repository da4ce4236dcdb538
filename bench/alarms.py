#!/usr/bin/env python
"""False alarms and detection of drift alarms: the calibrated preset beside Evidently's and
NannyML's defaults, on the same windows, in one run.

Data unlike the project's workload: a normal, a heavy-tailed (Student t, 3 df), a skewed
(lognormal, sigma 1) and two integer-count columns (Poisson 3; negative binomial, mean 4,
r 2, many zeros), a 40-level and a 6-level categorical (Dirichlet shares, many rare levels).

For each reference size (1k, 100k rows; several reference draws) and window size (100 ..
100k, 1M with --max-n 1000000), windows are fresh samples of the population:
* A/A: unchanged. Per-feature false-alarm rate = flagged feature tests / feature tests;
  run-level = runs whose drift share breaches (>= 0.5 of the 7 features);
* shifted: every numeric column's mean moved by 0.1 / 0.25 / 0.5 of its sd (counts through
  their rate), and both categoricals' mixes moved 30 % towards their reversed order.
  Detection = flagged shifted tests / shifted tests.

Methods:
* calibrated: the agent's drift check, default settings (`preset: calibrated`, 1 % per
  feature, the run breaching at a drift share of 0.5);
* evidently: Evidently 0.7.23's default tests and thresholds, through the agent's
  `preset: evidently`, which equals Evidently's own results (tests/checks/test_drift.py and
  test_stattests.py check it against Evidently's report on the same data); Evidently's
  dataset-drift rule (share >= 0.5);
* nannyml: NannyML's UnivariateDriftCalculator with its defaults (Jensen-Shannon for both
  kinds, alert above the mean + 3 sd of the reference's own chunks), chunk size = the window;
  not applicable where the reference holds fewer than 2 chunks.

Goals (issue 14): per-feature A/A rate within the configured 1 % + 2 standard errors at every
size and both reference sizes; 0.25 sd detected in >= 95 % of shifted tests from 1k rows;
run-level A/A breaches under 0.5 %.

    python bench/alarms.py                 # the table and PASS / FAIL per goal
    python bench/alarms.py --quick         # fewer runs (a smoke test)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aims_agent.agent.judge import assess, overall  # noqa: E402
from aims_agent.checks.base import Reference  # noqa: E402
from aims_agent.checks.kinds.drift import DriftCheck  # noqa: E402
from aims_agent.config import DriftCheckConfig, SchemaConfig  # noqa: E402
from aims_agent.records import WindowData, WindowInfo  # noqa: E402
from aims_agent.schema import ModelSchema  # noqa: E402

NUMERIC = ["normal", "heavy_t3", "lognormal", "poisson", "negbin"]
CATEGORICAL = ["cat40", "cat6"]
FEATURES = NUMERIC + CATEGORICAL
ALPHA = 0.01
SHIFTS = (0.1, 0.25, 0.5)
MIX = 0.3
_P40 = np.random.default_rng(40).dirichlet(np.full(40, 0.6))
_P6 = np.random.default_rng(6).dirichlet(np.full(6, 1.0))
_LN_SD = math.sqrt((math.e - 1) * math.e)
_NB_MEAN, _NB_R = 4.0, 2.0
_NB_SD = math.sqrt(_NB_MEAN + _NB_MEAN**2 / _NB_R)
VOCAB = {"cat40": tuple(f"a{i:02d}" for i in range(40)), "cat6": tuple("abcdef")}
SCHEMA = ModelSchema(SchemaConfig(numeric=tuple(NUMERIC), categorical=tuple(CATEGORICAL)))


def sample(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    mix = MIX if shift else 0.0
    mu = _NB_MEAN + shift * _NB_SD
    return {
        "normal": rng.normal(10 + 2 * shift, 2, n),
        "heavy_t3": rng.standard_t(3, n) + shift * math.sqrt(3),
        "lognormal": rng.lognormal(0, 1, n) + shift * _LN_SD,
        "poisson": rng.poisson(3 + shift * math.sqrt(3), n).astype(float),
        "negbin": rng.negative_binomial(_NB_R, _NB_R / (_NB_R + mu), n).astype(float),
        "cat40": rng.choice(40, n, p=(1 - mix) * _P40 + mix * _P40[::-1]).astype(np.int32),
        "cat6": rng.choice(6, n, p=(1 - mix) * _P6 + mix * _P6[::-1]).astype(np.int32),
    }


def window(cols: dict[str, np.ndarray]) -> WindowData:
    n = len(cols["normal"])
    return WindowData(
        info=WindowInfo(start=0, end=1, seen=n, sampled=n),
        columns=cols,
        vocabularies=VOCAB,
        record_ids=(),
    )


def judge(check: DriftCheck, data: WindowData) -> tuple[dict[str, str], str]:
    judged = assess(check.run(data))
    per = {a.measurement.feature: a.verdict for a in judged if a.measurement.feature}
    return per, overall(judged)


class Tally:
    """Counts per (method, reference size, window size, condition)."""

    def __init__(self) -> None:
        self.n: dict[tuple[Any, ...], int] = defaultdict(int)

    def add(self, key: tuple[Any, ...], value: int = 1) -> None:
        self.n[key] += value

    def rate(self, num: tuple[Any, ...], den: tuple[Any, ...]) -> float:
        d = self.n.get(den, 0)
        return self.n.get(num, 0) / d if d else math.nan


def nannyml_flags(
    ref: dict[str, np.ndarray], windows: list[dict[str, np.ndarray]], n: int
) -> list[dict[str, bool]] | None:
    """NannyML's default alerts per window and feature (one fit on the reference, one
    calculation over all windows, a chunk each); None where it cannot fit."""
    import pandas as pd

    if len(ref["normal"]) < 2 * n:
        return None
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # no analytics calls home
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import nannyml as nml

        def frame(cols: dict[str, np.ndarray]) -> pd.DataFrame:
            df = pd.DataFrame({c: cols[c] for c in NUMERIC})
            for c in CATEGORICAL:
                df[c] = pd.Categorical(np.asarray(VOCAB[c])[cols[c]])
            return df

        calc = nml.UnivariateDriftCalculator(
            column_names=FEATURES, treat_as_categorical=CATEGORICAL, chunk_size=n
        )
        calc.fit(frame(ref))
        analysis = pd.concat([frame(w) for w in windows], ignore_index=True)
        res = calc.calculate(analysis).filter(period="analysis").to_df()
    out = []
    for i in range(len(windows)):
        row = res.iloc[i]
        out.append({c: bool(row[(c, "jensen_shannon", "alert")]) for c in FEATURES})
    return out


def run(args: argparse.Namespace) -> Tally:
    t = Tally()
    sizes = [n for n in (100, 300, 1_000, 10_000, 100_000, 1_000_000) if n <= args.max_n]
    for n_ref in args.references:
        for draw in range(args.refs):
            rng = np.random.default_rng([n_ref, draw])
            ref_cols = sample(rng, n_ref)
            ref = Reference(
                reference_id="ref",
                fingerprint="-",
                n_rows=n_ref,
                columns=ref_cols,
                vocabularies=VOCAB,
            )
            ours = DriftCheck(DriftCheckConfig(id="c", include_prediction=False), ref, SCHEMA)
            ev = DriftCheck(
                DriftCheckConfig(id="e", preset="evidently", include_prediction=False), ref, SCHEMA
            )
            for n in sizes:
                runs = max(2, round(args.runs * min(1.0, 1_000 / n) ** 0.5 / args.refs))
                if n >= 1_000_000:
                    runs = max(1, args.runs // 100 // args.refs)
                ev_runs = runs if not (n_ref == 1_000 and n == 100) else max(2, runs // 4)
                t0 = time.perf_counter()
                conditions = (0.0, *SHIFTS)
                batches = {s: [sample(rng, n, s) for _ in range(runs)] for s in conditions}
                every = [w for s in conditions for w in batches[s]]
                all_flags = nannyml_flags(ref_cols, every, n) if args.nannyml else None
                for k, shift in enumerate(conditions):
                    windows = batches[shift]
                    nml_flags = None if all_flags is None else all_flags[k * runs : (k + 1) * runs]
                    for i, cols in enumerate(windows):
                        data = window(cols)
                        results = {"calibrated": judge(ours, data)}
                        if i < ev_runs:
                            results["evidently"] = judge(ev, data)
                        if nml_flags is not None:
                            flags = nml_flags[i]
                            per = {c: "breach" if flags[c] else "pass" for c in FEATURES}
                            share = sum(flags.values()) / len(FEATURES)
                            results["nannyml"] = (per, "breach" if share >= 0.5 else "pass")
                        for method, (per, verdict) in results.items():
                            key = (method, n_ref, n, shift)
                            t.add((*key, "runs"))
                            t.add((*key, "run_breach"), verdict == "breach")
                            for kind, cols_ in (("num", NUMERIC), ("cat", CATEGORICAL)):
                                for c in cols_:
                                    t.add((*key, c, "flagged"), per[c] == "breach")
                                    t.add((*key, kind, "tests"))
                                    t.add((*key, kind, "flagged"), per[c] == "breach")
                                    t.add(
                                        (*key, kind, "insufficient"), per[c] == "insufficient_data"
                                    )
                print(
                    f"  reference {n_ref:>7,} draw {draw}  window {n:>9,}: {runs} runs per "
                    f"condition  {time.perf_counter() - t0:6.1f} s",
                    file=sys.stderr,
                )
    return t


def _pct(x: float) -> str:
    return "   -  " if math.isnan(x) else f"{100 * x:5.1f}%"


def report(t: Tally, args: argparse.Namespace) -> int:
    methods = ["calibrated", "evidently"] + (["nannyml"] if args.nannyml else [])
    sizes = sorted({k[2] for k in t.n})
    goals: dict[str, list[tuple[str, bool]]] = {"aa_feature": [], "detect_025": [], "aa_run": []}
    print("\nA/A (same population): per-feature false-alarm rate | run-level breach rate")
    print(
        f"{'reference':>9} {'window':>9}  "
        + "  ".join(f"{m:>21}" for m in methods)
        + "  calibrated insufficient"
    )
    for n_ref in args.references:
        for n in sizes:
            cells, ins = [], math.nan
            for m in methods:
                key = (m, n_ref, n, 0.0)
                flagged = t.n.get((*key, "num", "flagged"), 0) + t.n.get(
                    (*key, "cat", "flagged"), 0
                )
                tests = t.n.get((*key, "num", "tests"), 0) + t.n.get((*key, "cat", "tests"), 0)
                feat = flagged / tests if tests else math.nan
                run_rate = t.rate((*key, "run_breach"), (*key, "runs"))
                cells.append(f"{_pct(feat)} | {_pct(run_rate)}")
                if m == "calibrated" and tests:
                    se = math.sqrt(ALPHA * (1 - ALPHA) / tests)
                    goals["aa_feature"].append(
                        (
                            f"ref {n_ref:,} window {n:,}: {_pct(feat)} <= {_pct(ALPHA + 2 * se)}",
                            feat <= ALPHA + 2 * se,
                        )
                    )
                    goals["aa_run"].append(
                        (f"ref {n_ref:,} window {n:,}: {_pct(run_rate)}", run_rate < 0.005)
                    )
                    insuf = t.n.get((*key, "num", "insufficient"), 0) + t.n.get(
                        (*key, "cat", "insufficient"), 0
                    )
                    ins = insuf / tests
            print(
                f"{n_ref:>9,} {n:>9,}  "
                + "  ".join(f"{c:>21}" for c in cells)
                + f"  {_pct(ins):>10}"
            )
    print("\nA/A per feature, calibrated (all windows of each reference size)")
    print(f"{'reference':>9}  " + " ".join(f"{c:>9}" for c in FEATURES))
    for n_ref in args.references:
        runs = sum(t.n.get(("calibrated", n_ref, n, 0.0, "runs"), 0) for n in sizes)
        rates = [
            sum(t.n.get(("calibrated", n_ref, n, 0.0, c, "flagged"), 0) for n in sizes)
            / max(runs, 1)
            for c in FEATURES
        ]
        print(f"{n_ref:>9,}  " + " ".join(f"{_pct(r):>9}" for r in rates) + f"   ({runs} windows)")
    print(
        "\nDetection: numeric shift of 0.1 / 0.25 / 0.5 sd | categorical mix 30 % towards reversed"
    )
    print(f"{'reference':>9} {'window':>9}  " + "  ".join(f"{m:>34}" for m in methods))
    for n_ref in args.references:
        for n in sizes:
            cells = []
            for m in methods:
                num = [
                    t.rate((m, n_ref, n, s, "num", "flagged"), (m, n_ref, n, s, "num", "tests"))
                    for s in SHIFTS
                ]
                cat = t.rate(
                    (m, n_ref, n, 0.25, "cat", "flagged"), (m, n_ref, n, 0.25, "cat", "tests")
                )
                cells.append(" ".join(_pct(x) for x in num) + " | " + _pct(cat))
                if m == "calibrated" and n >= 1_000:
                    goals["detect_025"].append(
                        (f"ref {n_ref:,} window {n:,}: {_pct(num[1])}", num[1] >= 0.95)
                    )
            print(f"{n_ref:>9,} {n:>9,}  " + "  ".join(f"{c:>34}" for c in cells))
    print("\nGoals (calibrated preset, defaults):")
    titles = {
        "aa_feature": f"per-feature A/A rate <= {ALPHA:.0%} + 2 SE at every size, both references",
        "aa_run": "run-level A/A breaches under 0.5 %",
        "detect_025": "0.25 sd shift detected in >= 95 % from 1k rows",
    }
    failed = 0
    for g, rows in goals.items():
        ok = all(r[1] for r in rows)
        failed += not ok
        worst = [r[0] for r in rows if not r[1]]
        print(
            f"  {'PASS' if ok else 'FAIL'}  {titles[g]}"
            + (f"  (failing: {'; '.join(worst)})" if worst else "")
        )
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--runs", type=int, default=600, help="A/A runs per condition at 1k rows (fewer above)"
    )
    p.add_argument("--refs", type=int, default=3, help="reference draws per reference size")
    p.add_argument("--max-n", type=int, default=100_000, help="largest window (1000000 for 1M)")
    p.add_argument("--no-nannyml", dest="nannyml", action="store_false")
    p.add_argument("--references", type=int, nargs="+", default=[1_000, 100_000])
    p.add_argument("--quick", action="store_true", help="few runs: a smoke test, not a measurement")
    args = p.parse_args()
    if args.quick:
        args.runs, args.refs = 40, 1
    if args.nannyml:
        try:
            import nannyml  # noqa: F401
        except ImportError:
            print("nannyml is not installed: its column is left out", file=sys.stderr)
            args.nannyml = False
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        t0 = time.perf_counter()
        tally = run(args)
        code = report(tally, args)
    print(
        f"\n({time.perf_counter() - t0:.0f} s; runs per condition at 1k rows: {args.runs} "
        f"over {args.refs} reference draws)"
    )
    return code


if __name__ == "__main__":
    raise SystemExit(main())
