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


def _valid(arr: Any) -> np.ndarray | None:
    """Where a flat array holds a value (None: everywhere), from its validity bitmap."""
    if not arr.null_count:
        return None
    bits = np.frombuffer(arr.buffers()[0], dtype=np.uint8)
    return np.unpackbits(bits, bitorder="little")[arr.offset : arr.offset + len(arr)].astype(bool)


def _values(arr: Any, dtype: Any, missing: Any) -> np.ndarray:
    """A flat fixed-width array's values as numpy (a copy), `missing` where null. Read from
    its buffers: pyarrow's `to_numpy` and scalar conversions import pandas (~0.4 s)."""
    if len(arr) == 0 or arr.buffers()[1] is None:
        return np.full(len(arr), missing, dtype=dtype)
    out = np.frombuffer(
        arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * np.dtype(dtype).itemsize
    ).copy()
    valid = _valid(arr)
    if valid is not None:
        out[~valid] = missing
    return out


def numeric(column: Any, name: str) -> np.ndarray:
    """A column as float64, missing values NaN."""
    import pyarrow as pa

    arr = _whole(column)
    if arr.type != pa.float64():  # a cast loads pyarrow.compute (a twentieth of a `check`)
        try:
            arr = arr.cast(pa.float64())
        except (ValueError, TypeError, NotImplementedError) as exc:  # pyarrow's errors
            raise ReferenceDataError(f"column {name!r} is not numeric") from exc
    return _values(arr, np.float64, np.nan)


def _int_dtype(t: Any) -> np.dtype[Any] | None:
    """numpy's dtype for an arrow integer type (None for any other type)."""
    import pyarrow as pa

    if not pa.types.is_integer(t):
        return None
    return np.dtype(f"{'i' if pa.types.is_signed_integer(t) else 'u'}{t.bit_width // 8}")


def _first_seen(indices: np.ndarray, size: int) -> np.ndarray:
    """The distinct non-negative values of `indices` (all below `size`) in order of first
    appearance."""
    present = indices[indices >= 0]
    if not present.size:
        return present
    # a file's writer builds its dictionary in order of appearance, so the codes usually first
    # appear in ascending order: then exactly where their running maximum rises (no sort)
    running = np.maximum.accumulate(present)
    rises = running[np.flatnonzero(np.concatenate(([True], running[1:] != running[:-1])))]
    if rises.size == np.count_nonzero(np.bincount(present, minlength=size)):
        return rises
    values, first = np.unique(present, return_index=True)
    return np.asarray(values[np.argsort(first)])


def _from_dictionaries(chunks: Sequence[Any]) -> tuple[np.ndarray, list[str | None]] | None:
    """`_dictionary` of dictionary-encoded text (a Parquet file's categorical columns as read)
    from the dictionaries and indices: no decoding, no hashing. None for other value types."""
    import pyarrow as pa

    labels: list[str | None] = []
    seen: dict[str, int] = {}
    parts = []
    for chunk in chunks:
        idx_dtype = _int_dtype(chunk.indices.type)
        if idx_dtype is None or not pa.types.is_string(chunk.dictionary.type):
            return None
        idx = _values(chunk.indices, idx_dtype, -1).astype(np.int64, copy=False)
        names = chunk.dictionary.to_pylist()
        lookup = np.full(len(names) + 1, -1, dtype=np.int32)  # [-1] -> -1: missing
        for code in _first_seen(idx, len(names)).tolist():
            label = names[code]
            if label is not None:
                lookup[code] = seen.setdefault(label, len(seen))
                if lookup[code] == len(labels):
                    labels.append(label)
        parts.append(lookup[idx])
    if not parts:
        return np.zeros(0, np.int32), labels
    return np.concatenate(parts), labels


def _from_integers(column: Any, dtype: np.dtype[Any]) -> tuple[np.ndarray, list[str | None]]:
    """`_dictionary` of an integer column: labels are the numbers as decimal text."""
    values = _values(column, dtype, 0)
    valid = _valid(column)
    present = values if valid is None else values[valid]
    indices = np.full(values.size, -1, dtype=np.int32)
    where = slice(None) if valid is None else valid
    if present.size and int(present.max()) - (lo := int(present.min())) < 1 << 20:
        # a few classes or levels: the values less the smallest are codes already
        shifted = np.full(values.size, -1, dtype=np.int64)
        wide = present.astype(np.uint64 if dtype.kind == "u" else np.int64)  # no overflow
        shifted[where] = (wide - wide.dtype.type(lo)).astype(np.int64)
        order = _first_seen(shifted, int(shifted.max()) + 1)
        lookup = np.full(int(shifted.max()) + 2, -1, dtype=np.int32)  # [-1] -> -1: missing
        lookup[order] = np.arange(order.size, dtype=np.int32)
        return np.asarray(lookup[shifted]), [str(lo + v) for v in order.tolist()]
    distinct, first, inverse = np.unique(present, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty(order.size, dtype=np.int32)
    rank[order] = np.arange(order.size, dtype=np.int32)
    indices[where] = rank[inverse.ravel()]
    return indices, [str(v) for v in distinct[order].tolist()]


def _dictionary(column: Any) -> tuple[np.ndarray, list[str | None]]:
    """Indices into the column's distinct values (in order of first appearance; -1 missing)
    and those values as labels: each distinct value is turned into text once.

    Dictionary-encoded text and integers are counted here; other types by pyarrow.compute,
    which takes a twentieth of a one-shot `check` to load."""
    import pyarrow as pa

    if pa.types.is_dictionary(column.type):
        chunks = column.chunks if hasattr(column, "chunks") else [column]
        if (done := _from_dictionaries(chunks)) is not None:
            return done
    column = _whole(column)
    if (dtype := _int_dtype(column.type)) is not None:
        return _from_integers(column, dtype)
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    encoded = pc.dictionary_encode(column)
    indices = _values(encoded.indices.cast(pa.int32()), np.int32, -1)
    return indices, labels(encoded.dictionary)


def _codes(indices: np.ndarray, distinct: list[str | None], index: dict[str, int]) -> np.ndarray:
    lookup = np.array([-1 if v is None else index[v] for v in distinct] + [-1], dtype=np.int32)
    return np.asarray(lookup[indices])  # -1 indexes the trailing -1: missing stays missing


def reference_codes(column: Any) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes into the sorted set of the column's own labels, and that vocabulary."""
    indices, distinct = _dictionary(column)
    vocab = tuple(sorted({v for v in distinct if v is not None}))
    return _codes(indices, distinct, {v: i for i, v in enumerate(vocab)}), vocab


def window_codes(
    column: Any | None, n: int, vocabulary: Sequence[str]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes into `vocabulary` extended by the labels it lacks (in order of first
    appearance), and the extended vocabulary. No column: `n` missing values."""
    if column is None:
        return np.full(n, -1, dtype=np.int32), tuple(vocabulary)
    vocab = list(vocabulary)
    index = {v: i for i, v in enumerate(vocab)}
    indices, distinct = _dictionary(column)
    for v in distinct:
        if v is not None and v not in index:
            index[v] = len(vocab)
            vocab.append(v)
    return _codes(indices, distinct, index), tuple(vocab)


def _whole(column: Any) -> Any:
    return column.combine_chunks() if hasattr(column, "combine_chunks") else column
