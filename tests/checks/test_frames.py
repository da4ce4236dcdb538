"""Categorical codes counted without pyarrow.compute (dictionary-encoded text, integers) are
the codes pyarrow.compute's dictionary_encode gives, chunks, nulls and unused entries and all."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from aims_agent.checks import frames


def _by_pyarrow(column):
    """What `_dictionary` computed before it counted anything itself."""
    if pa.types.is_dictionary(column.type):  # chunk by chunk: pyarrow cannot combine
        chunks = column.chunks if hasattr(column, "chunks") else [column]  # null entries
        column = pa.chunked_array([c.dictionary_decode() for c in chunks], pa.string())
    column = frames._whole(column)
    encoded = pc.dictionary_encode(column)
    indices = frames._values(encoded.indices.cast(pa.int32()), np.int32, -1)
    return indices, frames.labels(encoded.dictionary)


_words = st.lists(st.sampled_from(["a", "b", "é", "", "c d", "10", "True"]), min_size=1)
_chunk = st.tuples(
    _words.map(lambda w: list(dict.fromkeys(w))),  # a dictionary (unique entries)
    st.lists(st.integers(-1, 6), max_size=40),  # indices; -1 or past the end: missing
    st.booleans(),  # a null entry in the dictionary
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_chunk, min_size=1, max_size=4), st.sampled_from([pa.int8(), pa.int32()]))
def test_dictionary_text_codes_equal_pyarrows(chunks, index_type) -> None:
    arrays = []
    for words, idx, null_entry in chunks:
        dictionary = pa.array([*words, None] if null_entry else words, pa.string())
        indices = pa.array([i if 0 <= i < len(dictionary) else None for i in idx], type=index_type)
        arrays.append(pa.DictionaryArray.from_arrays(indices, dictionary))
    column = pa.chunked_array(arrays, type=arrays[0].type)
    got, want = frames._dictionary(column), _by_pyarrow(column)
    assert got[1] == want[1]
    assert np.array_equal(got[0], want[0]) and got[0].dtype == np.int32
    sliced = arrays[0].slice(1)  # an offset into the buffers
    got, want = frames._dictionary(sliced), _by_pyarrow(sliced)
    assert got[1] == want[1] and np.array_equal(got[0], want[0])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(
            st.one_of(st.none(), st.integers(-3, 6), st.integers(-(2**40), 2**40)), max_size=30
        ),
        min_size=1,
    ),
    st.sampled_from([pa.int64(), pa.int16(), pa.uint32()]),
)
def test_integer_codes_equal_pyarrows(chunks, arrow_type) -> None:
    lo, hi = (0, 2**32 - 1) if arrow_type == pa.uint32() else (-(2**15), 2**15 - 1)
    if arrow_type != pa.int64():
        chunks = [[None if v is None else min(max(v, lo), hi) for v in c] for c in chunks]
    column = pa.chunked_array([pa.array(c, arrow_type) for c in chunks], type=arrow_type)
    got, want = frames._dictionary(column), _by_pyarrow(column)
    assert got[1] == want[1]
    assert np.array_equal(got[0], want[0]) and got[0].dtype == np.int32


def test_float_columns_are_read_without_a_cast() -> None:
    column = pa.chunked_array([[1.5, None], [float("nan"), -2.0]])
    got = frames.numeric(column, "x")
    assert np.array_equal(got, [1.5, np.nan, np.nan, -2.0], equal_nan=True)
    assert np.array_equal(
        frames.numeric(pa.array([1, None, 3]), "y"), [1.0, np.nan, 3.0], equal_nan=True
    )
