"""CPU time of one model's whole check suite in the daemon: 30 features, a 100k-sample window.

Drift (Evidently's default tests), data quality, performance (accuracy, F1, ROC AUC, log loss,
Brier, ECE) and fairness (parity and odds, by group) run on bench/workload.py's data plus two
more numeric features, exactly as the scheduler runs them: a snapshot of the window, each check's
`run`, the judge. Reported is process CPU time per suite run once the checks are built
(reference statistics are computed once at start-up; that cost is shown apart).

    python bench/suite.py [--rows 100000]

Goal (issue 3): under one second of CPU per suite run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from checks import load_gen  # noqa: E402

from aims_agent.agent.judge import assess, overall  # noqa: E402
from aims_agent.agent.window import Window  # noqa: E402
from aims_agent.checks.base import Reference, build_check  # noqa: E402
from aims_agent.config import (  # noqa: E402
    DriftCheckConfig,
    FairnessCheckConfig,
    Limit,
    PerformanceCheckConfig,
    QualityCheckConfig,
    SchemaConfig,
)
from aims_agent.schema import ModelSchema  # noqa: E402


def frame(gen, n: int, seed: int, current: bool):  # type: ignore[no-untyped-def]
    df = gen.make(n, seed, current)
    rng = np.random.default_rng(seed)
    df["num_20"] = df["num_00"] * 0.5 + rng.normal(0, 1, n)
    df["num_21"] = rng.gamma(2.0, 1.5, n)
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--workload",
        type=Path,
        default=ROOT / "bench" / "workload.py",
        help="a generator with make(n, seed, current), NUM_COLS and CAT_COLS",
    )
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    gen = load_gen(args.workload)
    numeric = (*gen.NUM_COLS, "num_20", "num_21")
    schema = ModelSchema(
        SchemaConfig(
            numeric=numeric,
            categorical=tuple(gen.CAT_COLS),
            prediction="prediction",
            score="score",
            label="target",
            sensitive=("group",),
        )
    )
    ref, cur = frame(gen, args.rows, 42, False), frame(gen, args.rows, 43, True)

    # reference and window through the agent's own encoding: the window is filled by `offer`
    window = Window(
        schema, capacity=args.rows, span=1e12, reference_categories={}, rng=np.random.default_rng(0)
    )
    names = [c.name for c in schema.columns]
    window.offer(
        list(ref[names].itertuples(index=False, name=None)),
        [str(i) for i in range(args.rows)],
        [0.0] * args.rows,
        now=1.0,
    )
    ref_data = window.snapshot(now=1.0)
    reference = Reference(
        reference_id="ref",
        fingerprint="",
        n_rows=args.rows,
        columns=ref_data.columns,
        vocabularies=ref_data.vocabularies,
    )
    window = Window(
        schema,
        capacity=args.rows,
        span=1e12,
        reference_categories=reference.vocabularies,
        rng=np.random.default_rng(1),
    )
    window.offer(
        list(cur[names].itertuples(index=False, name=None)),
        [str(i) for i in range(args.rows)],
        [0.0] * args.rows,
        now=1.0,
    )

    configs = [
        DriftCheckConfig(id="drift"),
        QualityCheckConfig(id="quality"),
        PerformanceCheckConfig(
            id="performance",
            metrics={m: Limit(min=0.0) for m in ("accuracy", "f1", "roc_auc")}
            | {m: Limit(max=1.0) for m in ("log_loss", "brier", "ece")},
        ),
        FairnessCheckConfig(id="fairness"),
    ]
    c0 = time.process_time()
    checks = [build_check(c, reference, schema) for c in configs]
    prep = time.process_time() - c0
    for check in checks:  # first run: lazy imports, as the sidecar's first scheduled run
        check.run(window.snapshot(now=1.0))

    per_check: dict[str, list[float]] = {c.id: [] for c in checks}
    verdicts: dict[str, str] = {}
    totals = []
    for _ in range(args.repeat):
        t0 = time.process_time()
        for check in checks:
            c1 = time.process_time()
            verdicts[check.id] = overall(assess(check.run(window.snapshot(now=1.0))))
            per_check[check.id].append(time.process_time() - c1)
        totals.append(time.process_time() - t0)
    print(
        f"{len(schema.features)} features, window of {args.rows:,} sampled records, "
        f"{len(checks)} checks"
    )
    for name, times in per_check.items():
        print(f"  {name:<12} {np.median(times):.3f} s CPU  ({verdicts[name]})")
    print(
        f"suite: {np.median(totals):.3f} s CPU per run (median of {args.repeat}; goal < 1 s: "
        f"{np.median(totals):.2f}x of budget); reference preparation once: {prep:.3f} s CPU"
    )


if __name__ == "__main__":
    main()
