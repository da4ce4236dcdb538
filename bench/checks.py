"""Our checks against the peers that define them, at 100k and 1M rows per side, in one run.

Drift: aims-agent's drift check against Evidently's DataDriftPreset (same default tests and
thresholds: Evidently picks them, ours reproduces the pick). Fairness: aims-agent's fairness
check against fairlearn's MetricFrame (selection rate, TPR, FPR, FNR, accuracy by group) plus
demographic parity and equalized odds differences and ratios.

Each measurement runs in a fresh child process that first loads the data, so its wall time
and its peak resident memory above that baseline are the tool's own. Ours is reported twice:
per window (the check's `run` on data already in the window's columnar encoding, which is
what the sidecar pays every schedule tick) and with the one-off reference preparation.

End to end (`--only e2e`, also part of the default run): what a user waits for, from process
start to exit, from the same two Parquet files. Ours is `aims-agent check` (default settings:
the calibrated drift preset; evidence written to SQLite), first on a new reference (it
prepares and caches the reference's statistics) and then as every later run pays it; the peer
is a Python script that reads the files with pandas, runs Evidently's DataDriftPreset on the
same columns and writes its result as JSON. Wall time and peak resident memory of each whole
process (wait4). Goals: >= 20x Evidently at both sizes; 100k x 28 under 1.0 s and 1M x 28
under 6 s wall (cached reference).

    python bench/checks.py [--sizes 100000 1000000] [--only drift|fairness|e2e]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return int(fh.read().split("VmRSS:")[1].split()[0]) / 1024


def baseline_mb() -> float:
    """Resident memory now, and restart the high-water mark from here (Linux clear_refs 5)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return rss_mb()


def peak_mb() -> float:
    """Highest resident memory since `baseline_mb`."""
    with open("/proc/self/status") as fh:
        return int(fh.read().split("VmHWM:")[1].split()[0]) / 1024


def load_gen(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("aims_workload", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def encode(ref: Any, cur: Any, gen: Any) -> tuple[Any, Any, Any]:
    """Reference and window in the agent's encoding (codes into the reference's sorted labels)."""
    import numpy as np

    from aims_agent.checks.base import Reference
    from aims_agent.config import SchemaConfig
    from aims_agent.records import WindowData, WindowInfo
    from aims_agent.schema import ModelSchema

    schema = ModelSchema(
        SchemaConfig(
            numeric=tuple(gen.NUM_COLS),
            categorical=tuple(gen.CAT_COLS),
            prediction="prediction",
            score="score",
            label="target",
            sensitive=("group",),
        )
    )
    cols: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
    vocabs: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
    for c in schema.columns:
        r, w = ref[c.name].to_numpy(), cur[c.name].to_numpy()
        if c.kind == "numeric":
            cols[0][c.name], cols[1][c.name] = r.astype(np.float64), w.astype(np.float64)
            continue
        r, w = r.astype(str), w.astype(str)
        ref_labels = np.unique(r)
        labels = np.concatenate([ref_labels, np.setdiff1d(np.unique(w), ref_labels)])
        order = np.argsort(labels)
        codes = order.argsort()  # position of each sorted label in `labels`
        for side, values in ((0, r), (1, w)):
            cols[side][c.name] = codes[np.searchsorted(labels[order], values)].astype(np.int32)
        vocabs[0][c.name] = tuple(ref_labels.tolist())
        vocabs[1][c.name] = tuple(labels.tolist())
    n = len(cur)
    reference = Reference(
        reference_id="ref", fingerprint="", n_rows=len(ref), columns=cols[0], vocabularies=vocabs[0]
    )
    window = WindowData(
        info=WindowInfo(start=0, end=0, seen=n, sampled=n),
        columns=cols[1],
        vocabularies=vocabs[1],
        record_ids=(),
    )
    return schema, reference, window


def ours_drift(ref: Any, cur: Any, gen: Any) -> dict[str, Any]:
    from aims_agent.agent.judge import assess
    from aims_agent.checks.kinds.drift import DriftCheck
    from aims_agent.config import DriftCheckConfig

    schema, reference, window = encode(ref, cur, gen)
    # code the check loads on first use; Evidently's imports are likewise outside its baseline
    importlib.import_module("scipy.stats")
    importlib.import_module("scipy.spatial.distance")
    base = baseline_mb()
    t0 = time.perf_counter()
    cfg = DriftCheckConfig(id="drift", preset="evidently", include_prediction=False)
    check = DriftCheck(cfg, reference, schema)  # Evidently's tests: the same job as its preset
    measurements = check.run(window)  # cold: reference preparation, first-use imports
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(3):  # what each scheduled run costs once the sidecar is up
        t1 = time.perf_counter()
        check.run(window)
        warm.append(time.perf_counter() - t1)
    judged = assess(measurements)
    drifted = sorted(
        a.measurement.feature for a in judged if a.measurement.feature and a.verdict == "breach"
    )
    share = next(m.value for m in measurements if m.headline)
    tests = {m.feature: m.method for m in measurements if m.feature}
    return {
        "wall": sorted(warm)[1],
        "wall_with_prep": cold,
        "mem": peak_mb() - base,
        "drifted": drifted,
        "share": share,
        "tests": tests,
    }


def evidently_drift(ref: Any, cur: Any, gen: Any) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import DataDefinition, Dataset, Report
        from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
        from evidently.presets import DataDriftPreset

    from aims_agent.checks.stattests import STATTESTS

    cols = gen.NUM_COLS + gen.CAT_COLS
    names = {t.display_name: n for n, by in _registered_stat_tests.items() for t in by.values()}
    base = baseline_mb()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dd = DataDefinition(numerical_columns=gen.NUM_COLS, categorical_columns=gen.CAT_COLS)
        snap = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(cur[cols], data_definition=dd),
            Dataset.from_pandas(ref[cols], data_definition=dd),
        )
        metrics = snap.dict()["metrics"]
    wall = time.perf_counter() - t0
    drifted, tests = [], {}
    for m in metrics[1:]:
        cfg = m["config"]
        alias = names[cfg["method"]]
        tests[cfg["column"]] = alias
        # Evidently's comparison for that test (p <= t for ks, p < t, or distance >= t)
        if STATTESTS[alias].drifted_if(float(m["value"]), cfg["threshold"]):
            drifted.append(cfg["column"])
    return {
        "wall": wall,
        "mem": peak_mb() - base,
        "drifted": sorted(drifted),
        "share": metrics[0]["value"]["share"],
        "tests": tests,
    }


def ours_fairness(ref: Any, cur: Any, gen: Any) -> dict[str, Any]:
    from aims_agent.checks.kinds.fairness import FairnessCheck
    from aims_agent.config import FairnessCheckConfig, Limit

    schema, reference, window = encode(ref, cur, gen)
    cfg = FairnessCheckConfig(
        id="fair",
        metrics={
            "demographic_parity_difference": Limit(max=0.1),
            "demographic_parity_ratio": Limit(min=0.8),
            "equalized_odds_difference": Limit(max=0.1),
            "equalized_odds_ratio": Limit(min=0.8),
        },
    )
    base = baseline_mb()
    t0 = time.perf_counter()
    check = FairnessCheck(cfg, reference, schema)
    measurements = check.run(window)
    wall = time.perf_counter() - t0
    values = {m.metric: m.value for m in measurements if m.headline}
    return {"wall": wall, "mem": peak_mb() - base, "values": values}


def fairlearn_fairness(ref: Any, cur: Any, gen: Any) -> dict[str, Any]:
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        equalized_odds_ratio,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    y, p, g = cur["target"].to_numpy(), cur["prediction"].to_numpy(), cur["group"].to_numpy()
    base = baseline_mb()
    t0 = time.perf_counter()
    frame = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "fnr": false_negative_rate,
            "accuracy": accuracy_score,
        },
        y_true=y,
        y_pred=p,
        sensitive_features=g,
    )
    frame.by_group.to_numpy()  # the per-group table, as a user reads it
    values = {
        "demographic_parity_difference": demographic_parity_difference(y, p, sensitive_features=g),
        "demographic_parity_ratio": demographic_parity_ratio(y, p, sensitive_features=g),
        "equalized_odds_difference": equalized_odds_difference(y, p, sensitive_features=g),
        "equalized_odds_ratio": equalized_odds_ratio(y, p, sensitive_features=g),
    }
    wall = time.perf_counter() - t0
    return {
        "wall": wall,
        "mem": peak_mb() - base,
        "values": {k: float(v) for k, v in values.items()},
    }


TOOLS = {
    "ours-drift": ours_drift,
    "evidently-drift": evidently_drift,
    "ours-fairness": ours_fairness,
    "fairlearn-fairness": fairlearn_fairness,
}


def child(tool: str, data: Path, workload: Path) -> None:
    import pandas as pd

    gen = load_gen(workload)
    ref, cur = (
        pd.read_parquet(data / "reference.parquet"),
        pd.read_parquet(data / "current.parquet"),
    )
    print(json.dumps(TOOLS[tool](ref, cur, gen)))


def measure(tool: str, data: Path, workload: Path) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            tool,
            "--data",
            str(data),
            "--workload",
            str(workload),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--workload",
        type=Path,
        default=ROOT / "bench" / "workload.py",
        help="a generator with make(n, seed, current), NUM_COLS and CAT_COLS",
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--child", choices=list(TOOLS))
    ap.add_argument("--data", type=Path)
    ap.add_argument("--only", choices=["drift", "fairness", "e2e"])
    args = ap.parse_args()
    if args.child:
        child(args.child, args.data, args.workload)
        return
    gen = load_gen(args.workload)
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp)
            gen.make(n, 42, False).to_parquet(data / "reference.parquet", index=False)
            gen.make(n, 43, True).to_parquet(data / "current.parquet", index=False)
            r = {
                tool: measure(tool, data, args.workload)
                for tool in TOOLS
                if args.only is None or tool.endswith(args.only)
            }
            if args.only in (None, "e2e"):
                r["e2e"] = end_to_end(data, gen, n)
        print(
            f"\n== {n:,} rows per side, {len(gen.NUM_COLS)} numeric + {len(gen.CAT_COLS)} "
            f"categorical features =="
        )
        if "ours-drift" in r:
            report_drift(r["ours-drift"], r["evidently-drift"])
        if "ours-fairness" in r:
            report_fairness(r["ours-fairness"], r["fairlearn-fairness"])
        if "e2e" in r:
            report_e2e(r["e2e"], n)


def report_drift(o: dict[str, Any], e: dict[str, Any]) -> None:
    same_tests = o["tests"] == e["tests"]
    print(
        f"drift     ours {o['wall']:.3f} s per window ({o['wall_with_prep']:.3f} s with "
        f"reference preparation), peak +{o['mem']:.0f} MB"
    )
    print(f"          Evidently DataDriftPreset {e['wall']:.2f} s, peak +{e['mem']:.0f} MB")
    print(
        f"          speed-up {e['wall'] / o['wall']:.0f}x per window, "
        f"{e['wall'] / o['wall_with_prep']:.0f}x with preparation; memory "
        f"{o['mem'] / max(e['mem'], 1e-9):.2f} of Evidently's"
    )
    print(
        f"          same tests chosen: {same_tests}; drifted share ours {o['share']:.4f} vs "
        f"Evidently {e['share']:.4f}; same drifted columns: {o['drifted'] == e['drifted']} "
        f"({', '.join(o['drifted'])})"
    )


def report_fairness(of: dict[str, Any], ff: dict[str, Any]) -> None:
    print(
        f"fairness  ours {of['wall']:.4f} s, peak +{of['mem']:.0f} MB; fairlearn "
        f"{ff['wall']:.3f} s, peak +{ff['mem']:.0f} MB; speed-up "
        f"{ff['wall'] / of['wall']:.0f}x"
    )
    for k, v in ff["values"].items():
        print(f"          {k:<30} ours {of['values'].get(k, float('nan')):.6f}  fairlearn {v:.6f}")


EVIDENTLY_SCRIPT = """
import json, sys, warnings
warnings.simplefilter("ignore")
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
num, cat = json.loads(sys.argv[3]), json.loads(sys.argv[4])
cols = num + cat
ref = pd.read_parquet(sys.argv[1], columns=cols)
cur = pd.read_parquet(sys.argv[2], columns=cols)
dd = DataDefinition(numerical_columns=num, categorical_columns=cat)
snap = Report([DataDriftPreset()]).run(
    Dataset.from_pandas(cur, data_definition=dd), Dataset.from_pandas(ref, data_definition=dd)
)
with open(sys.argv[5], "w") as fh:
    json.dump(snap.dict(), fh, default=str)
"""


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Wall seconds, peak resident MB and CPU seconds (user + system) of one whole process.
    CPU time shows what wall time hides on a busy host: waiting for a core."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode not in (0, 1):  # 1: a breach, which this data has
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}): {err[-2000:]}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def end_to_end(data: Path, gen: Any, n: int) -> dict[str, Any]:
    import yaml

    evidence = data / "evidence"
    cfg = {
        "agent": {
            "evidence_dir": str(evidence),
            "tokens": [{"name": "ci", "env": "AIMS_BENCH_TOKEN", "scopes": ["read"]}],
        },
        "models": [
            {
                "name": "bench",
                "version": "1",
                "ai_system_id": "AIS-BENCH",
                "reference": {"path": str(data / "reference.parquet")},
                "schema": {
                    "numeric": gen.NUM_COLS,
                    "categorical": gen.CAT_COLS,
                    "prediction": "prediction",
                    "score": "score",
                },
                "checks": [{"id": "drift", "kind": "drift"}],
            }
        ],
    }
    (data / "agent.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, AIMS_BENCH_TOKEN="b" * 32)
    agent = str(Path(sys.executable).with_name("aims-agent"))
    ours = [agent, "check", "--config", str(data / "agent.yaml")]
    ours += ["--current", str(data / "current.parquet")]
    cold = timed(ours, env)
    warm = sorted(timed(ours, env) for _ in range(3))[1]  # the median of three
    script = [sys.executable, "-c", EVIDENTLY_SCRIPT, str(data / "reference.parquet")]
    script += [str(data / "current.parquet"), json.dumps(gen.NUM_COLS + ["score"])]
    script += [json.dumps(gen.CAT_COLS + ["prediction"]), str(data / "evidently.json")]
    peer = timed(script)
    return {"cold": cold, "warm": warm, "evidently": peer}


def report_e2e(r: dict[str, Any], n: int) -> None:
    cold, warm, peer = r["cold"], r["warm"], r["evidently"]
    limit = 1.0 if n <= 100_000 else 6.0
    print(
        f"end to end  aims-agent check {warm[0]:.2f} s wall ({warm[2]:.2f} s CPU), peak "
        f"{warm[1]:.0f} MB; first run on a new reference {cold[0]:.2f} s wall "
        f"({cold[2]:.2f} s CPU), peak {cold[1]:.0f} MB"
    )
    print(
        f"          Evidently script {peer[0]:.2f} s wall ({peer[2]:.2f} s CPU), peak "
        f"{peer[1]:.0f} MB"
    )
    ratio = peer[0] / warm[0]
    print(
        f"          {ratio:.1f}x Evidently wall ({peer[2] / warm[2]:.1f}x CPU; "
        f"{peer[0] / cold[0]:.1f}x wall on a new reference); memory "
        f"{warm[1] / peer[1]:.2f} of Evidently's; host load {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    print(f"          {'PASS' if ratio >= 20 else 'FAIL'}  >= 20x Evidently end to end")
    print(
        f"          {'PASS' if warm[0] < limit else 'FAIL'}  under {limit:g} s wall "
        f"({n:,} x {28} features, cached reference)"
    )


if __name__ == "__main__":
    main()
