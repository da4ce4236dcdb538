"""Evidently's HTML data-drift report for a window, as an evidence attachment.

Evidently (and pandas) are heavy, so they never load into the sidecar: the window is handed to
a child process as a NumPy archive, the child renders the report, and the agent only hashes and
records the file. The file is written under a temporary name and renamed, so a reader never
sees a partial report.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from aims_agent.errors import ReportError
from aims_agent.records import Attachment, WindowData
from aims_agent.schema import ModelSchema

KIND = "evidently-data-drift-html"
# Evidently embeds the report's data as two lines of JSON in an inline <script> of its page:
#     var metric_<hex> = {...};
#     var additional_graphs_metric_<hex> = {...};
# JSON strings keep `</script>` and `<!--` as they are, so a value from the window could end
# the script and start markup of its own: each line is parsed and written again with <, > and &
# as \u escapes (the same JSON, and nothing a browser's HTML parser reacts to)
_DATA_LINE = re.compile(
    r"^(?P<head>[ \t]*var (?:additional_graphs_)?metric_[0-9a-f]+ = )(?P<json>.*);[ \t]*$",
    re.MULTILINE,
)
_HTML_SIGNIFICANT = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def _escaped(match: re.Match[str]) -> str:
    try:
        value = json.loads(match["json"])
    except ValueError as exc:
        raise ReportError(f"Evidently's report data is not JSON: {exc}") from None
    return f"{match['head']}{json.dumps(value).translate(_HTML_SIGNIFICANT)};"


def escape_inline_data(page: str) -> str:
    """Evidently's HTML with its embedded data safe inside <script>; a page whose data lines
    are not where they are expected is refused rather than served unescaped."""
    escaped, count = _DATA_LINE.subn(_escaped, page)
    if count != 2:
        raise ReportError(f"Evidently's report has {count} data lines, expected 2")
    return escaped


def _archive(window: WindowData, schema: ModelSchema, path: Path) -> None:
    arrays: dict[str, Any] = {}
    for c in schema.features:
        values = window.columns[c.name]
        if c.kind == "numeric":
            arrays[f"num:{c.name}"] = values
        else:
            labels = np.asarray([*window.vocabularies[c.name], ""], dtype=str)
            arrays[f"cat:{c.name}"] = labels[values]  # code -1 -> "", the missing marker
    np.savez(path, **arrays)


def render(
    window: WindowData,
    schema: ModelSchema,
    reference: Path,
    evidence_dir: Path,
    *,
    name: str,
    timeout: float = 600.0,
) -> Attachment:
    """Render the report for `window` against the reference file and store it as an attachment."""
    try:
        return _render(window, schema, reference, evidence_dir, name=name, timeout=timeout)
    except OSError as exc:  # a full disk, a read-only evidence directory
        raise ReportError(f"Evidently report not written: {exc.strerror or exc}") from exc


def _render(
    window: WindowData,
    schema: ModelSchema,
    reference: Path,
    evidence_dir: Path,
    *,
    name: str,
    timeout: float,
) -> Attachment:
    out_dir = evidence_dir / "attachments"
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{name}.html"
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "current.npz"
        _archive(window, schema, archive)
        partial = out_dir / f".{name}.html.partial"
        try:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "aims_agent.exporters._evidently_child",
                    str(reference),
                    str(archive),
                    str(partial),
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ReportError(f"Evidently report timed out after {timeout:.0f}s") from exc
        if proc.returncode != 0:
            partial.unlink(missing_ok=True)
            raise ReportError(f"Evidently report failed: {proc.stderr.strip()[-1000:]}")
    try:
        data = escape_inline_data(partial.read_text(encoding="utf-8")).encode()
        partial.write_bytes(data)
    except ReportError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, final)
    return Attachment(
        attachment_id=f"AT-{uuid.uuid4().hex[:16]}",
        kind=KIND,
        path=str(final.relative_to(evidence_dir)),
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
    )
