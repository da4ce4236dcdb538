"""The layers hold: imports point down only, and no package's modules import each other in a
circle (the import-linter contracts in pyproject.toml)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "aims_agent"


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(lint), str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "2 kept, 0 broken" in proc.stdout


def test_nothing_outside_agent_imports_it() -> None:
    """Also at run time inside functions, where a lazy import could hide a climb."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if PACKAGE / "agent" in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno}"
                for name in names
                if name == "aims_agent.agent" or name.startswith("aims_agent.agent.")
            ]
    assert offenders == []


def test_modules_stay_small() -> None:
    """No module over 400 lines (the house ceiling); a module that must be longer says why in
    its docstring with `longer than 400 lines because`."""
    long = [
        f"{p.relative_to(ROOT)} ({n} lines)"
        for p in sorted(PACKAGE.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > 400
        and "longer than 400 lines because" not in p.read_text()
    ]
    assert long == []
