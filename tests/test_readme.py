"""The README's Python example runs as written."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
from markdown_it import MarkdownIt

from tests.conftest import make_rows

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_example(heading: str) -> str:
    """The first ```python block after the heading, as CommonMark parses the README."""
    tokens = MarkdownIt("commonmark").parse(README.read_text())
    seen = False
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tokens[i + 1].content == heading:
            seen = True
        elif seen and tok.type == "fence" and tok.info.strip() == "python":
            return tok.content
    raise AssertionError(f"no python example under {heading!r} in README.md")


def test_the_python_api_example_runs(write_config, tmp_path, monkeypatch) -> None:
    import pandas as pd

    config = write_config(threshold=0.3)
    monkeypatch.chdir(tmp_path)
    Path("agent.yaml").write_text(config.read_text())
    current = pd.DataFrame(make_rows(np.random.default_rng(5), 600, shift=1.5))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(_python_example("From Python"), {"current": current})  # noqa: S102
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("drift breach ")
    assert any(line.strip().startswith("drift_score") for line in lines[1:])
    assert not (tmp_path / "evidence").exists()  # nothing written unless asked


def test_the_drift_numbers_example_runs(tmp_path) -> None:
    import pandas as pd

    rng = np.random.default_rng(3)
    reference = pd.DataFrame(make_rows(rng, 2000, shift=0.0))
    current = pd.DataFrame(make_rows(rng, 800, shift=1.5))
    examples = [
        t.content
        for t in MarkdownIt("commonmark").parse(README.read_text())
        if t.type == "fence" and "checks.drift(" in t.content
    ]
    assert len(examples) == 1
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(examples[0], {"reference": reference, "current": current})  # noqa: S102
    lines = out.getvalue().splitlines()
    assert "of columns drifted: " in lines[0] and not lines[0].startswith("0%")
    assert len(lines) == 1 + len(reference.columns)


def test_the_readme_renders_as_written() -> None:
    """CommonMark's reading of the README: no section swallowed by a code block that closed
    early or never closed (the config reference once took the HTTP API section with it)."""
    import re

    text = README.read_text()
    tokens = MarkdownIt("commonmark").parse(text)
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    in_source = [
        line.lstrip("#").strip()
        for line in _outside_fences(text.splitlines())
        if re.match(r"^#{1,6} \S", line)
    ]
    assert headings == in_source
    for name in ("Config reference", "HTTP API", "Running the agent", "Evidence"):
        assert name in headings, name
    for tok in tokens:
        assert tok.type != "code_block", f"indented text read as code at line {tok.map}"
        if tok.type == "fence":
            inside = [ln for ln in tok.content.splitlines() if re.match(r"^#{2,6} [A-Z]", ln)]
            assert not inside, f"a heading inside the code block at lines {tok.map}: {inside}"
            assert tok.info.strip(), f"a code block without a language at lines {tok.map}"
    markers = [ln for ln in text.splitlines() if re.match(r"^ {0,3}(```|~~~)", ln)]
    assert len(markers) == 2 * sum(t.type == "fence" for t in tokens), "an unclosed fence"


def _outside_fences(lines: list[str]) -> list[str]:
    """The lines outside ``` fences, read the simple way (a fence opens with an info string or
    not and closes with a bare ```), to compare with the parser's reading."""
    out, fenced = [], False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced if (fenced and line.strip() == "```") or not fenced else fenced
            continue
        if not fenced:
            out.append(line)
    return out
