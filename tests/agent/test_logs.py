"""Log lines: readable text with their fields, JSON lines for pipelines, a quiet scheduler."""

from __future__ import annotations

import json
import logging

import pytest

from aims_agent.agent import logs


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("apscheduler").level)
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    logging.getLogger("apscheduler").setLevel(saved[2])


def _emit(capsys, level: str, fmt: str) -> list[str]:
    logs.setup(level, fmt)
    logging.getLogger("aims_agent.agent.runner").warning(
        "check breached: %s = %s",
        "drifted_share",
        0.75,
        extra={"event": "check_breached", "model": "m1", "check": "drift", "nc_id": None},
    )
    logging.getLogger("apscheduler.executors.default").info('Running job "check m1/drift"')
    logging.getLogger("apscheduler.scheduler").warning("Run time of job was missed by 0:00:31")
    return capsys.readouterr().err.splitlines()


def test_text_lines_carry_their_fields(capsys, restore_logging):
    lines = _emit(capsys, "info", "text")
    assert len(lines) == 2  # the scheduler's per-run line is DEBUG only; its warning stays
    assert lines[0].endswith(
        "WARNING aims_agent.agent.runner: check breached: drifted_share = 0.75 "
        "event=check_breached model=m1 check=drift"
    )
    assert "was missed" in lines[1]


def test_json_lines_are_objects_with_the_fields(capsys, restore_logging):
    first, missed = (json.loads(line) for line in _emit(capsys, "info", "json"))
    assert first["level"] == "WARNING" and first["logger"] == "aims_agent.agent.runner"
    assert first["message"] == "check breached: drifted_share = 0.75"
    assert (first["event"], first["model"], first["check"]) == ("check_breached", "m1", "drift")
    assert first["nc_id"] is None and "time" in first
    assert missed["logger"] == "apscheduler.scheduler"


def test_debug_shows_the_scheduler_chatter(capsys, restore_logging):
    lines = _emit(capsys, "debug", "text")
    assert any("Running job" in line for line in lines)
