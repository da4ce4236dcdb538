"""Tables as the columns checks read: numeric as float64 (NaN missing), categorical as int32
codes into a vocabulary (-1 missing).

A reference's vocabulary is the sorted set of its labels; a window's codes extend it with the
labels the reference never had, so the same label has the same code on both sides. Labels are
text as a file would say them: booleans `True` / `False`, whole floats without `.0`. Input is a
pyarrow Table, a pandas DataFrame or a mapping of column name to array; pyarrow is imported
here, on first use, never by the sidecar's check path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from aims_agent.errors import ReferenceDataError
from aims_agent.records import ColumnKind


def as_table(data: Any, name: str) -> Any:
    """A pyarrow Table from a pyarrow Table, a pandas DataFrame or a mapping of arrays."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    try:
        if type(data).__name__ == "DataFrame" and hasattr(data, "columns"):
            return pa.Table.from_pandas(data, preserve_index=False)
        if isinstance(data, Mapping):
            return pa.table({str(k): _array(v) for k, v in data.items()})
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise ReferenceDataError(f"{name}: cannot read as a table: {exc}") from exc
    raise ReferenceDataError(
        f"{name}: expected a pandas DataFrame, a pyarrow Table or a mapping of column name "
        f"to array, got {type(data).__name__}"
    )


def _array(values: Any) -> Any:
    import pyarrow as pa

    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    arr = np.asarray(values)
    # numpy's NaN in an object or text column is a missing value, as pandas reads it
    return pa.array(arr, from_pandas=arr.dtype.kind in "OUSf")


def infer_kind(column: Any) -> ColumnKind:
    """`numeric` for integer and floating columns, `categorical` for anything else (text,
    booleans, dictionaries)."""
    import pyarrow as pa

    t = column.type
    return "numeric" if pa.types.is_integer(t) or pa.types.is_floating(t) else "categorical"


def labels(column: Any) -> list[str | None]:
    """A column's values as category labels (None: missing)."""
    import pyarrow as pa

    column = _whole(column)
    if pa.types.is_boolean(column.type):
        return [None if v is None else ("True" if v else "False") for v in column.to_pylist()]
    if pa.types.is_floating(column.type):
        values = column.to_pylist()
        return [
            None if v is None or v != v else str(int(v)) if v.is_integer() else str(v)
            for v in values
        ]
    return column.cast(pa.string()).to_pylist()  # type: ignore[no-any-return]


def numeric(column: Any, name: str) -> np.ndarray:
    """A column as float64, missing values NaN."""
    try:
        arr = _whole(column).cast("float64").to_numpy(zero_copy_only=False)
    except (ValueError, TypeError, NotImplementedError) as exc:  # pyarrow's errors
        raise ReferenceDataError(f"column {name!r} is not numeric") from exc
    return np.asarray(arr, dtype=np.float64)


def reference_codes(column: Any) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes into the sorted set of the column's own labels, and that vocabulary."""
    values = labels(column)
    vocab = tuple(sorted({v for v in values if v is not None}))
    index = {v: i for i, v in enumerate(vocab)}
    codes = np.fromiter(
        (-1 if v is None else index[v] for v in values), dtype=np.int32, count=len(values)
    )
    return codes, vocab


def window_codes(
    column: Any | None, n: int, vocabulary: Sequence[str]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes into `vocabulary` extended by the labels it lacks, and the extended vocabulary.
    No column: `n` missing values."""
    vocab = list(vocabulary)
    index = {v: i for i, v in enumerate(vocab)}
    values = labels(column) if column is not None else [None] * n
    codes = np.empty(len(values), dtype=np.int32)
    for i, v in enumerate(values):
        if v is None:
            codes[i] = -1
            continue
        code = index.get(v)
        if code is None:
            code = index[v] = len(vocab)
            vocab.append(v)
        codes[i] = code
    return codes, tuple(vocab)


def _whole(column: Any) -> Any:
    return column.combine_chunks() if hasattr(column, "combine_chunks") else column
