"""Evidently's HTML data-drift report for a window, as an evidence attachment.

Evidently (and pandas) are heavy, so they never load into the sidecar: the window is handed to
a child process as a NumPy archive, the child renders the report, and the agent only hashes and
records the file. The file is written under a temporary name and renamed, so a reader never
sees a partial report.
"""

from __future__ import annotations

import hashlib
import os
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
    data = partial.read_bytes()
    os.replace(partial, final)
    return Attachment(
        attachment_id=f"AT-{uuid.uuid4().hex[:16]}",
        kind=KIND,
        path=str(final.relative_to(evidence_dir)),
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
    )
