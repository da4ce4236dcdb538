"""The reference cache's file: arrays back as written, mapped privately, damage refused."""

from __future__ import annotations

import numpy as np
import pytest

from aims_agent.agent import refcache


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "col/x": rng.normal(size=1001),
        "col/c": rng.integers(-1, 40, 777).astype(np.int32),
        "num/x/counts": np.arange(5, dtype=np.intp),
        "cat/c/counts": np.zeros(0, np.intp),  # an empty array keeps its place too
        "grid": np.arange(12.0).reshape(3, 4)[:, ::2],  # not contiguous: written as values
    }


def test_arrays_come_back_as_written(tmp_path) -> None:
    file = tmp_path / "reference-x.arrays"
    arrays = _arrays()
    with file.open("wb") as fh:
        refcache._write_arrays(fh, {"schema": "s", "nulls": {"null|a": 0.25}}, arrays)
    head, back = refcache._read_arrays(file)
    assert head["schema"] == "s" and head["nulls"] == {"null|a": 0.25}
    assert list(back) == list(arrays)
    for name, a in arrays.items():
        assert back[name].dtype == a.dtype and back[name].shape == a.shape
        assert np.array_equal(back[name], a)
        assert back[name].ctypes.data % 64 == 0 or a.size == 0
    before = file.read_bytes()
    back["col/x"][0] = 99.0  # a check may write into its arrays: private to this process
    assert file.read_bytes() == before


@pytest.mark.parametrize("cut", [1, 100, 4096])
def test_a_short_or_foreign_file_is_refused(tmp_path, cut) -> None:
    file = tmp_path / "reference-x.arrays"
    with file.open("wb") as fh:
        refcache._write_arrays(fh, {"schema": "s"}, _arrays())
    whole = file.read_bytes()
    file.write_bytes(whole[:-cut])
    with pytest.raises(ValueError, match="wrong size"):
        refcache._read_arrays(file)
    file.write_bytes(b"PK\x03\x04" + whole[4:])
    with pytest.raises(ValueError, match="not a reference cache"):
        refcache._read_arrays(file)
