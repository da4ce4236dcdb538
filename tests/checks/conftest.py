"""The project's workload generator (bench/workload.py), for oracle tests of every check family."""

from __future__ import annotations

from types import ModuleType

import pytest

from bench import workload


@pytest.fixture(scope="session")
def gen() -> ModuleType:
    """The workload generator (`make(n, seed, current)`, NUM_COLS, CAT_COLS)."""
    return workload
