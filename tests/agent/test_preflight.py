"""`validate` and `run` refuse the same configs, with the same messages and exit 2: what once
passed `validate` and then failed `run` (or swapped token scopes at run time)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from aims_agent.agent import cli
from tests.conftest import READ_TOKEN_ENV, TOKEN_ENV, base_config

ENV = {TOKEN_ENV: "writer-secret-" + "a" * 20, READ_TOKEN_ENV: "reader-secret-" + "b" * 20}


def _schedule(value: Any) -> Callable[[dict], None]:
    return lambda c: c["models"][0]["checks"][0].update(schedule_seconds=value)


def _drop_reference_column(c: dict) -> None:
    path = Path(c["models"][0]["reference"]["path"])
    with path.open() as f:
        rows = list(csv.DictReader(f))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, [k for k in rows[0] if k != "x2"])
        w.writeheader()
        w.writerows({k: v for k, v in r.items() if k != "x2"} for r in rows)


def _text_in_numeric_column(c: dict) -> None:
    path = Path(c["models"][0]["reference"]["path"])
    text = path.read_text().splitlines()
    head = text[0].split(",")
    i = head.index("x1")
    cells = text[1].split(",")
    cells[i] = "lots"
    path.write_text("\n".join([text[0], ",".join(cells), *text[2:]]) + "\n")


CASES: dict[str, tuple[Callable[[dict], None], dict[str, str], str]] = {
    "schedule .inf": (
        _schedule(float("inf")),
        ENV,
        "models[0].checks[0].schedule_seconds: must be a finite number",
    ),
    "schedule 1e12": (
        _schedule(1e12),
        ENV,
        "models[0].checks[0].schedule_seconds: must be <= 315360000 (ten years), got 1e+12",
    ),
    "threshold .nan": (
        lambda c: c["models"][0]["checks"][0].update(threshold=float("nan")),
        ENV,
        "models[0].checks[0].threshold: must be a finite number",
    ),
    "token variable unset": (
        lambda c: None,
        {TOKEN_ENV: ENV[TOKEN_ENV]},
        f"agent.tokens[1].env: environment variable {READ_TOKEN_ENV} is not set",
    ),
    "same env twice": (
        lambda c: c["agent"]["tokens"][1].update(env=TOKEN_ENV),
        ENV,
        f"agent.tokens[1].env: {TOKEN_ENV} is already agent.tokens[0].env",
    ),
    "same value twice": (
        lambda c: None,
        {TOKEN_ENV: ENV[TOKEN_ENV], READ_TOKEN_ENV: ENV[TOKEN_ENV]},
        f"agent.tokens[1].env: {READ_TOKEN_ENV} holds the same value as {TOKEN_ENV}",
    ),
    "reference lacks a schema column": (
        _drop_reference_column,
        ENV,
        "models[0].reference.path: ",
    ),
    "reference column of the wrong type": (
        _text_in_numeric_column,
        ENV,
        "column 'x1' is not numeric",
    ),
}


def _write(tmp_path: Path, reference_csv: Path, edit: Callable[[dict], None]) -> Path:
    data = base_config(reference_csv, tmp_path / "ev")
    edit(data)
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _exit(argv: list[str], env: dict[str, str], monkeypatch, capsys) -> tuple[int, str]:
    for name in (TOKEN_ENV, READ_TOKEN_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = cli.main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", list(CASES))
def test_validate_and_run_refuse_alike(case, tmp_path, reference_csv, monkeypatch, capsys):
    edit, env, message = CASES[case]
    path = _write(tmp_path, reference_csv, edit)
    served: list[object] = []
    monkeypatch.setattr("aims_agent.agent.server.serve", lambda *a, **k: served.append(a))
    validate = _exit(["validate", str(path)], env, monkeypatch, capsys)
    run = _exit(["run", "--config", str(path)], env, monkeypatch, capsys)
    assert validate[0] == run[0] == 2, (validate, run)
    assert message in validate[1], validate[1]
    assert validate[1] == run[1]
    assert not served
    assert "Traceback" not in validate[1] and ENV[TOKEN_ENV] not in validate[1]


def test_a_config_that_validates_runs(tmp_path, reference_csv, monkeypatch, capsys):
    path = _write(tmp_path, reference_csv, lambda c: None)
    served: list[object] = []
    monkeypatch.setattr("aims_agent.agent.server.serve", lambda *a, **k: served.append(a))
    assert _exit(["validate", str(path)], ENV, monkeypatch, capsys)[0] == 0
    assert _exit(["run", "--config", str(path)], ENV, monkeypatch, capsys)[0] == 0
    assert len(served) == 1


def test_a_config_file_that_is_not_utf8_is_named_not_a_traceback(
    tmp_path, reference_csv, monkeypatch, capsys
):
    path = _write(tmp_path, reference_csv, lambda c: None)
    path.write_bytes(path.read_bytes().replace(b"AIS-T", "AIS-\u00e9".encode("latin-1")))
    code, err = _exit(["validate", str(path)], ENV, monkeypatch, capsys)
    assert code == 2
    assert f"{path}: line " in err and "not UTF-8" in err and "Traceback" not in err


def test_report_on_breach_without_evidently_is_a_config_problem(
    tmp_path, reference_csv, monkeypatch, capsys
):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "evidently" else real(name, *a),
    )
    path = _write(
        tmp_path,
        reference_csv,
        lambda c: c["models"][0]["checks"][0].update(report_on_breach=True),
    )
    code, err = _exit(["validate", str(path)], ENV, monkeypatch, capsys)
    assert code == 2 and "models[0].checks[0].report_on_breach: Evidently is not installed" in err
    path = _write(tmp_path, reference_csv, lambda c: None)  # off unless asked
    assert _exit(["validate", str(path)], ENV, monkeypatch, capsys)[0] == 0
    path = _write(
        tmp_path,
        reference_csv,
        lambda c: c["models"][0]["checks"][0].update(report_on_breach=False),
    )
    assert _exit(["validate", str(path)], ENV, monkeypatch, capsys)[0] == 0
