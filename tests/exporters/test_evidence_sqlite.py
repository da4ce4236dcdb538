"""A one-shot run's append without SQLAlchemy writes the rows the store's writer writes: two
stores given the same runs, one always through `record_run`, the other through
`evidence_sqlite` where it applies, hold identical rows, and both verify."""

from __future__ import annotations

import csv
import itertools
import sqlite3
import subprocess
import sys
import uuid

import numpy as np
import yaml

from aims_agent.agent import oneshot
from aims_agent.exporters import evidence_sqlite
from aims_agent.exporters.ledger_verify import verify
from aims_agent.storage.store import Store
from tests.conftest import base_config, make_rows, write_reference_csv


def _write_current(path, shift: float, seed: int):
    rows = make_rows(np.random.default_rng(seed), 800, shift=shift)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _rows(db) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}
    finally:
        conn.close()


def _run(tmp_path, monkeypatch, steps, *, light: bool) -> tuple[list[bool], object]:
    """The steps' checks on a new store (one config, so the records' config hash agrees), with
    ids and clocks that repeat between calls; which steps the light path wrote; the store's
    directory, moved aside."""
    reference = tmp_path / "reference.csv"
    if not reference.exists():
        write_reference_csv(reference)
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump(base_config(reference, tmp_path / "evidence", threshold=0.3)))
    real = evidence_sqlite.append_runs
    used = []
    for shift, seed in steps:
        current = _write_current(tmp_path / f"current-{shift}-{seed}.csv", shift, seed)
        ids = itertools.count(seed * 1000)
        monkeypatch.setattr(uuid, "uuid4", lambda ids=ids: uuid.UUID(int=next(ids)))
        wrote: list[bool] = []

        def spy(*args, wrote=wrote, **kwargs):
            out = real(*args, **kwargs) if light else None
            wrote.append(out is not None)
            return out

        monkeypatch.setattr(evidence_sqlite, "append_runs", spy)
        clock = itertools.count(1_700_000_000.0 + seed, 0.25).__next__
        oneshot.run_checks(config, current, write=True, clock=clock)
        used.append(any(wrote))
    monkeypatch.undo()
    moved = tmp_path / ("light" if light else "full")
    (tmp_path / "evidence").rename(moved)
    return used, moved


def _verified(db_dir) -> int:
    store = Store(f"sqlite:///{db_dir / 'aims.db'}")
    try:
        report = store.read(lambda c: verify(c, evidence_dir=db_dir))
    finally:
        store.close()
    assert report.ok, report.first_problem
    return report.entries


def test_both_paths_write_the_same_rows_and_both_verify(tmp_path, monkeypatch) -> None:
    # a new store (the full path makes it), two passing runs, a breach that opens a
    # nonconformity, a pass that counts towards its effectiveness: the last two are the full
    # path's on either store
    steps = [(0.0, 1), (0.0, 2), (0.0, 3), (1.5, 4), (0.0, 5)]
    used, light = _run(tmp_path, monkeypatch, steps, light=True)
    assert used == [False, True, True, False, False]
    _, full = _run(tmp_path, monkeypatch, steps, light=False)
    rows = _rows(full / "aims.db")
    assert _rows(light / "aims.db") == rows
    assert len(rows["monitoring_records"]) == 5 and len(rows["nonconformities"]) == 1
    assert _verified(light) == _verified(full) == len(rows["evidence_ledger"])


def test_only_a_plain_sqlite_url_is_read() -> None:
    assert evidence_sqlite.database_file("sqlite:////var/aims/aims.db").as_posix() == (
        "/var/aims/aims.db"
    )
    assert evidence_sqlite.database_file("sqlite:///aims.db").as_posix() == "aims.db"
    for url in (
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///aims.db?mode=ro",
        "sqlite:///my%20dir/aims.db",
        "postgresql://u@h/db",
    ):
        assert evidence_sqlite.database_file(url) is None


def test_a_store_at_another_revision_is_left_to_the_full_path(tmp_path) -> None:
    db = tmp_path / "aims.db"
    Store(f"sqlite:///{db}").close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE alembic_version SET version_num = '0004'")
    conn.commit()
    conn.close()
    before = _rows(db)
    assert evidence_sqlite.append_runs(f"sqlite:///{db}", [], durability="full") is None
    assert _rows(db) == before


def test_a_stored_check_loads_no_database_layer(write_config, tmp_path) -> None:
    """The second `check` on a store appends without importing SQLAlchemy."""
    cfg = write_config(threshold=0.3)
    current = _write_current(tmp_path / "current.csv", 0.0, 3)
    code = (
        "import sys; from aims_agent.agent.cli import main; "
        f"rc = main(['check', '--config', {str(cfg)!r}, '--current', {str(current)!r}]); "
        "print(rc, 'sqlalchemy' in sys.modules)"
    )
    outs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
        for _ in range(2)
    ]
    assert outs == ["0 True", "0 False"]
    assert len(_rows(tmp_path / "evidence" / "aims.db")["monitoring_records"]) == 2
