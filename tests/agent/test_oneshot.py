from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from aims_agent.agent.cli import main
from tests.conftest import make_rows


def write_csv(path, rows):
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture
def current(tmp_path):
    def make(shift: float, n: int = 800):
        return write_csv(
            tmp_path / f"current-{shift}.csv", make_rows(np.random.default_rng(11), n, shift=shift)
        )

    return make


def test_breach_exits_1_and_writes_evidence(write_config, current, tmp_path, capsys):
    cfg = write_config(threshold=0.3)
    code = main(["check", "--config", str(cfg), "--model", "m1", "--current", str(current(1.5))])
    assert code == 1
    out = capsys.readouterr().out
    assert "BREACH" in out and "nonconformity NC-" in out
    engine = create_engine(f"sqlite:///{tmp_path / 'evidence' / 'aims.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from monitoring_records")).scalar() == 1
        assert conn.execute(text("select count(*) from nonconformities")).scalar() == 1
    engine.dispose()


def test_pass_exits_0_and_json_is_the_monitoring_record(write_config, current, capsys):
    cfg = write_config()
    code = main(
        [
            "check",
            "--config",
            str(cfg),
            "--model",
            "m1",
            "--current",
            str(current(0.0)),
            "--format",
            "json",
        ]
    )
    assert code == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["result"]["outcome"] == "pass"
    assert record["window"]["records_sampled"] == 800
    assert record["method"]["reference"]["id"] == "reference.csv"


def test_reference_override(write_config, current, tmp_path, capsys):
    cfg = write_config(threshold=0.3)
    shifted = current(1.5)
    # the shifted file compared with itself does not drift
    code = main(
        [
            "check",
            "--config",
            str(cfg),
            "--model",
            "m1",
            "--current",
            str(shifted),
            "--reference",
            str(shifted),
        ]
    )
    assert code == 0
    capsys.readouterr()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nope"], "no model named 'nope'"),
        (["--current", "/nonexistent.csv"], "cannot read"),
    ],
)
def test_bad_input_exits_2_with_a_message(write_config, current, capsys, args, message):
    base = {"--config": str(write_config()), "--model": "m1", "--current": str(current(0.0))}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    code = main(["check", *[x for kv in base.items() for x in kv]])
    assert code == 2
    assert message in capsys.readouterr().err


def _db_counts(path) -> tuple[int, int]:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return (
                conn.execute(text("select count(*) from monitoring_records")).scalar(),
                conn.execute(text("select count(*) from nonconformities")).scalar(),
            )
    finally:
        engine.dispose()


def test_dry_run_stores_nothing_and_still_exits_1(write_config, current, tmp_path, capsys):
    cfg = write_config(threshold=0.3)
    code = main(["check", "--config", str(cfg), "--current", str(current(1.5)), "--dry-run"])
    assert code == 1  # --model omitted: the config has one model
    out = capsys.readouterr().out
    assert "BREACH" in out and "dry run: nothing stored" in out
    assert not (tmp_path / "evidence" / "aims.db").exists()


def test_model_is_required_when_the_config_has_several(tmp_path, reference_csv, current, capsys):
    import yaml

    from tests.conftest import base_config

    data = base_config(reference_csv, tmp_path / "ev")
    data["models"].append({**data["models"][0], "name": "m2"})
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(data))
    code = main(["check", "--config", str(path), "--current", str(current(0.0))])
    assert code == 2
    assert "--model: the config has several models: m1, m2" in capsys.readouterr().err


def test_python_api_takes_a_dataframe_and_writes_nothing_unless_asked(
    write_config, tmp_path
) -> None:
    import pandas as pd

    import aims_agent

    cfg = aims_agent.load_config(write_config(threshold=0.3))
    frame = pd.DataFrame(make_rows(np.random.default_rng(11), 800, shift=1.5))
    (record,) = aims_agent.check(cfg, frame)
    assert record["result"]["outcome"] == "breach"
    assert record["window"]["records_sampled"] == 800
    assert not (tmp_path / "evidence" / "aims.db").exists()

    (stored,) = aims_agent.check(cfg, frame, write_evidence=True)
    assert stored["nonconformity_id"].startswith("NC-")
    assert _db_counts(tmp_path / "evidence" / "aims.db") == (1, 1)
    # the same numbers whether stored or not
    assert stored["result"]["measurements"] == record["result"]["measurements"]


def test_calibrated_preset_end_to_end(write_config, current, capsys):
    """The calibrated preset through the CLI: an 800-row window against the 2000-row reference
    cannot pass (too small for chance to stay under the effect floor: insufficient data, with
    the size it needs), but a large shift is drift at any size."""
    cfg = write_config(preset="calibrated", threshold=0.3, replicates=49)
    args = ["check", "--config", str(cfg), "--model", "m1", "--dry-run", "--format", "json"]
    assert main([*args, "--current", str(current(0.0))]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["result"]["outcome"] == "insufficient_data"
    share = next(m for m in record["result"]["measurements"] if m["metric"] == "drift_share")
    assert share["params"]["n_needed"] > 800
    assert main([*args, "--current", str(current(1.5))]) == 1
    (record,) = json.loads(capsys.readouterr().out)
    assert record["result"]["outcome"] == "breach"
    drift = [m for m in record["result"]["measurements"] if m["metric"] == "drift_score"]
    assert all("null" in m["params"] and m["params"]["effect_floor"] > 0 for m in drift)


def test_second_run_reads_the_reference_from_its_cache(
    write_config, current, tmp_path, monkeypatch
):
    """The first run stores the encoded reference, its column summaries and null quantiles
    under the evidence directory, by the file's SHA-256; the next run reads none of the file's
    contents again and gives the same records. A damaged cache is ignored and rewritten."""
    from aims_agent.agent import oneshot

    cfg = write_config(preset="calibrated", threshold=0.3)
    cur = current(1.5)
    first = oneshot.run_checks(cfg, cur, cache_reference=True)
    (cached,) = (tmp_path / "evidence" / "cache").glob("reference-*.arrays")

    def no_read(*_a, **_k):
        raise AssertionError("the reference was read again")

    monkeypatch.setattr(oneshot, "load_reference", no_read)
    second = oneshot.run_checks(cfg, cur, cache_reference=True)
    strip = ("record_id", "created_at", "executed_at", "run_id")

    def body(o):
        return [
            {k: v for k, v in m.items() if k not in strip}
            for m in o.record["result"]["measurements"]
        ]

    assert [body(o) for o in second] == [body(o) for o in first]
    monkeypatch.undo()
    cached.write_bytes(b"not a cache")
    third = oneshot.run_checks(cfg, cur, cache_reference=True)
    assert [body(o) for o in third] == [body(o) for o in first]
    assert cached.read_bytes()[:8] == b"AIMSREF2"  # rewritten


def test_dry_run_loads_no_database_layer_pandas_or_evidently(write_config, current):
    """What a dry run imports is what it costs: no SQLAlchemy, pandas or Evidently."""
    import subprocess
    import sys

    cfg = write_config(threshold=0.3)
    code = (
        "import sys; from aims_agent.agent.cli import main; "
        f"main(['check', '--config', {str(cfg)!r}, '--current', {str(current(0.0))!r}, "
        "'--dry-run']); "
        "print(sorted(m for m in ('sqlalchemy', 'pandas', 'evidently', 'scipy.spatial') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"
