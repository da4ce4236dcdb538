"""Load a model's reference data (CSV or Parquet) into the column encoding checks use.

Read once at start-up with pyarrow, which reads both formats without pandas, in a short-lived
child process (`load_references`) so that pyarrow's ~30 MB never stay in the sidecar. Categorical
columns are read as text so that `True`, `01` or `1` stay what the file says, and encoded as
codes into the sorted set of reference labels, the same vocabulary the window starts from.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aims_agent.checks import frames
from aims_agent.checks.base import Reference
from aims_agent.config import ModelConfig
from aims_agent.errors import AimsError, ReferenceDataError
from aims_agent.exporters.canonical import sha256_file
from aims_agent.records import WindowData, WindowInfo
from aims_agent.schema import ModelSchema


def _read_csv(path: Path, text_columns: list[str]) -> Any:
    from pyarrow import csv, string

    opts = csv.ConvertOptions(column_types={c: string() for c in text_columns})
    return csv.read_csv(path, convert_options=opts)


def _read_parquet(path: Path, text_columns: list[str]) -> Any:
    from pyarrow import parquet

    # the file reader, not read_table: that one loads pyarrow.dataset (and pandas with it).
    # Text columns come dictionary-encoded, as the file stores them: fewer strings made, and
    # their codes are counted without pyarrow.compute (checks.frames)
    meta = parquet.ParquetFile(path)
    names = set(meta.schema_arrow.names)
    wanted = [c for c in text_columns if c in names]
    if not wanted:
        return meta.read()
    return parquet.ParquetFile(path, metadata=meta.metadata, read_dictionary=wanted).read()


READERS: dict[str, Callable[[Path, list[str]], Any]] = {
    "csv": _read_csv,
    "parquet": _read_parquet,
}


def _format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower().lstrip(".")
    return {"pq": "parquet", "parquet": "parquet"}.get(suffix, "csv")


def load_reference(path: Path, schema: ModelSchema, *, fmt: str = "auto") -> Reference:
    """Read the reference file; every schema column except label and attributes must be present."""
    kind = _format(path, fmt)
    text_cols = [c.name for c in schema.columns if c.kind == "categorical"]
    try:
        table = READERS[kind](path, text_cols)
    except (OSError, ValueError) as exc:  # pyarrow's errors subclass these
        raise ReferenceDataError(f"{path}: cannot read as {kind}: {exc}") from exc
    present = set(table.column_names)
    optional = {"label", "attribute"}
    missing = [c.name for c in schema.columns if c.name not in present and c.source not in optional]
    if missing:
        raise ReferenceDataError(f"{path}: missing columns {', '.join(missing)}")
    if table.num_rows == 0:
        raise ReferenceDataError(f"{path}: has no rows")

    columns: dict[str, np.ndarray] = {}
    vocabularies: dict[str, tuple[str, ...]] = {}
    for col in schema.columns:
        if col.name not in present:
            continue
        data = table.column(col.name)
        if col.kind == "numeric":
            columns[col.name] = _numeric(data, col.name, path)
        else:
            columns[col.name], vocabularies[col.name] = frames.reference_codes(data)
    return Reference(
        reference_id=path.name,
        fingerprint=sha256_file(path),
        n_rows=table.num_rows,
        columns=columns,
        vocabularies=vocabularies,
    )


def load_current(
    path: Path, schema: ModelSchema, vocabularies: Mapping[str, Sequence[str]], *, now: float
) -> WindowData:
    """A batch of current data (CSV or Parquet) as a window, for a one-shot check."""
    text_cols = [c.name for c in schema.columns if c.kind == "categorical"]
    kind = _format(path, "auto")
    try:
        table = READERS[kind](path, text_cols)
    except (OSError, ValueError) as exc:
        raise ReferenceDataError(f"{path}: cannot read as {kind}: {exc}") from exc
    return current_from_table(table, schema, vocabularies, now=now, name=str(path))


def _numeric(column: Any, name: str, where: object) -> np.ndarray:
    try:
        return frames.numeric(column, name)
    except ReferenceDataError as exc:
        raise ReferenceDataError(f"{where}: {exc}") from exc


def current_from_table(
    data: Any,
    schema: ModelSchema,
    vocabularies: Mapping[str, Sequence[str]],
    *,
    now: float,
    name: str,
) -> WindowData:
    """Current data (a pyarrow Table or a pandas DataFrame) as a window. Categorical codes
    extend the reference vocabularies, as the live window's do."""
    table = frames.as_table(data, name)
    n = table.num_rows
    missing = [
        c.name
        for c in schema.columns
        if c.name not in table.column_names and c.source in {"feature", "prediction"}
    ]
    if missing:
        raise ReferenceDataError(f"{name}: missing columns {', '.join(missing)}")
    columns: dict[str, np.ndarray] = {}
    vocabs: dict[str, tuple[str, ...]] = {}
    for col in schema.columns:
        data = table.column(col.name) if col.name in table.column_names else None
        if col.kind == "numeric":
            columns[col.name] = (
                np.full(n, np.nan) if data is None else _numeric(data, col.name, name)
            )
        else:
            columns[col.name], vocabs[col.name] = frames.window_codes(
                data, n, vocabularies.get(col.name, ())
            )
    return WindowData(
        info=WindowInfo(start=now, end=now, seen=n, sampled=n),
        columns=columns,
        vocabularies=vocabs,
        record_ids=(),
    )


def _load(model: ModelConfig) -> Reference:
    return load_reference(
        model.reference.path, ModelSchema(model.schema_), fmt=model.reference.format
    )


def load_references(models: Sequence[ModelConfig]) -> list[Reference]:
    """Load every model's reference in a child process (this module run as a script)."""
    proc = subprocess.run(
        [sys.executable, "-m", "aims_agent.agent.reference"],
        input=pickle.dumps(list(models)),
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace")[-2000:]
        raise ReferenceDataError(f"reference loader failed (exit {proc.returncode}): {tail}")
    result = pickle.loads(proc.stdout)  # our own child's output
    if isinstance(result, AimsError):
        raise result
    return result  # type: ignore[no-any-return]


def _child() -> None:
    models = pickle.load(sys.stdin.buffer)
    try:
        out: object = [_load(m) for m in models]
    except AimsError as exc:
        out = exc
    sys.stdout.buffer.write(pickle.dumps(out))


if __name__ == "__main__":
    _child()
