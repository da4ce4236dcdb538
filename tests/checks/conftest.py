"""The shared benchmark workload, for oracle tests of every check family."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

# shared/ lies beside the repository's checkout
WORKLOAD = Path(__file__).resolve().parents[3] / "shared" / "workload" / "gen.py"


@pytest.fixture(scope="session")
def gen() -> ModuleType:
    """The workload generator (`make(n, seed, current)`, NUM_COLS, CAT_COLS)."""
    if not WORKLOAD.is_file():
        pytest.fail(f"the shared workload generator is missing: {WORKLOAD}")
    spec = importlib.util.spec_from_file_location("aims_workload", WORKLOAD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
