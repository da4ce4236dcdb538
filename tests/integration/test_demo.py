"""The demo as a user runs it: a real agent process, live traffic, drift injected partway.

It must open no nonconformity before the drift, open one after it, open one from the estimated
performance after the labels stop, and leave signed evidence whose verify command (printed at the
end) passes with the printed public key."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path


def aims(*args: str | Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aims_agent.agent.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_demo_opens_a_nonconformity_after_the_drift_and_leaves_signed_evidence(tmp_path):
    evidence = tmp_path / "evidence"
    proc = aims("demo", "--duration", "40", "--evidence-dir", evidence)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    lines = out.splitlines()
    drift = next(i for i, line in enumerate(lines) if "injecting drift" in line)
    opened = [i for i, line in enumerate(lines) if "nonconformity" in line and "opened" in line]
    assert opened and min(opened) > drift, out  # no false alarm before the drift
    assert "Traceback" not in proc.stderr
    # labels stop partway; the estimate from the scores goes on, and when borderline applicants
    # come it opens a nonconformity while the label-based check has too few labels to judge
    stop = next(i for i, line in enumerate(lines) if "labels stop arriving" in line)
    after = lines[stop:]
    assert any("check performance: INSUFFICIENT_DATA" in line for line in after), out
    # either estimate may cross its limit first (accuracy or ROC AUC)
    assert any("opened" in line and ": estimated_" in line for line in after), out

    public_hex = re.search(r"Public key: ([0-9a-f]{64})", out)
    assert public_hex, out
    command = re.search(r"aims-agent evidence verify --config (\S+) --public-key (\S+)", out)
    assert command, out
    config, public = Path(command.group(1)), Path(command.group(2))
    assert public.parent == evidence.resolve()
    assert not any("PRIVATE KEY" in p.read_text(errors="ignore") for p in evidence.rglob("*.p*"))

    hex_file = tmp_path / "trusted.hex"  # the printed hex is a key verify accepts as well
    hex_file.write_text(public_hex.group(1))
    for key in (public, hex_file):
        verified = aims(
            "evidence", "verify", "--config", config, "--public-key", key, "--format", "json"
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
        report = json.loads(verified.stdout)
        assert report["ok"] and report["signed_head"]["trusted"]
        # the agent signs its head on the way out: the whole ledger is vouched for
        assert report["signed_head"]["seq"] == report["head_seq"]
        assert report["signed_head"]["public_key"] == public_hex.group(1)

    # every check of the demo, the intended-use one included, is in the period report
    report = tmp_path / "report.md"
    period = "2020-01-01..2100-01-01"
    made = aims("report", "--config", config, "--period", period, "--format", "md", "--out", report)
    assert made.returncode == 0, made.stderr
    text = report.read_text()
    checks = ("feature-drift", "data-quality", "performance", "fairness", "intended-use")
    for check in (*checks, "estimated-performance", "oversight"):
        assert f"| {check} |" in text, check
    assert "| intended-use | intended_use | A.9.4, A.7.4" in text
