"""The reference as the checks use it, cached on disk by the SHA-256 of the reference file.

A one-shot `check` otherwise reads and encodes the whole reference file, sorts every column
and resamples it for the calibrated drift preset's null quantiles, on every run. The first run
stores the encoded columns, the prepared column summaries and the null quantiles in
`<evidence_dir>/cache/reference-<sha256>.arrays`; a later run with the same file, schema and
format hashes the file, maps that into memory and reads nothing else. A cache that does not
load is ignored and rewritten.

The file is a JSON header and the arrays' raw bytes (nothing is unpickled):

    b"AIMSREF2" | header length (8 bytes, little-endian) | header JSON | arrays, 64-byte aligned

The header names each array's dtype, shape and offset, and the file's size. The arrays are
views of one private (copy-on-write) mapping of the file: a run pages in only what its checks
touch, where reading an .npz copied every array (a tenth of a 100k-row run).
"""

from __future__ import annotations

import json
import math
import mmap
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from aims_agent.checks.base import Reference
from aims_agent.checks.stattests import CategoricalStats, NumericStats
from aims_agent.exporters.canonical import sha256_file, sha256_hex
from aims_agent.schema import ModelSchema

VERSION = 2
MAGIC = b"AIMSREF2"
_ALIGN = 64


def _schema_key(schema: ModelSchema, fmt: str) -> str:
    return sha256_hex([VERSION, fmt, [[c.name, c.kind, c.source] for c in schema.columns]])


def cache_path(cache_dir: Path, digest: str) -> Path:
    return cache_dir / f"reference-{digest}.arrays"


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _write_arrays(fh: BinaryIO, header: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """The header (with each array's place) and the arrays' bytes, each at a 64-byte boundary
    counted from the end of the header, itself padded to 64 bytes."""
    contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    layout: dict[str, Any] = {}
    body = 0
    for name, a in contiguous.items():
        if a.dtype.hasobject:
            raise TypeError(f"{name}: object arrays are not cached")
        layout[name] = {"dtype": a.dtype.str, "shape": list(a.shape), "offset": body}
        body = _aligned(body + a.nbytes)
    text = json.dumps({**header, "arrays": layout, "data_bytes": body}).encode()
    lead = MAGIC + len(text).to_bytes(8, "little") + text
    fh.write(lead + b"\0" * (_aligned(len(lead)) - len(lead)))
    for a in contiguous.values():
        fh.write(a.data)
        fh.write(b"\0" * (_aligned(a.nbytes) - a.nbytes))


def _read_arrays(file: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and the arrays, as views of a private mapping of the file (ValueError when
    the file is not one this module wrote whole)."""
    with file.open("rb") as fh:
        lead = fh.read(len(MAGIC) + 8)
        if len(lead) != len(MAGIC) + 8 or not lead.startswith(MAGIC):
            raise ValueError("not a reference cache")
        length = int.from_bytes(lead[len(MAGIC) :], "little")
        head = json.loads(fh.read(length))
        start = _aligned(len(lead) + length)
        size = os.fstat(fh.fileno()).st_size
        if start + head["data_bytes"] != size:  # a short file would fault past its end
            raise ValueError("reference cache has the wrong size")
        view = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
    arrays = {}
    for name, meta in head["arrays"].items():
        dtype, shape = np.dtype(meta["dtype"]), tuple(meta["shape"])
        count = math.prod(shape)
        offset = start + meta["offset"]
        if dtype.hasobject or offset + count * dtype.itemsize > size:
            raise ValueError(f"reference cache: bad array {name}")
        arrays[name] = np.frombuffer(view, dtype=dtype, count=count, offset=offset).reshape(shape)
    return head, arrays


def load(
    cache_dir: Path, path: Path, schema: ModelSchema, fmt: str
) -> tuple[str, Reference | None]:
    """The file's SHA-256 and its cached reference, or None when there is none usable."""
    digest = sha256_file(path)
    file = cache_path(cache_dir, digest)
    if not file.is_file():
        return digest, None
    try:
        head, arrays = _read_arrays(file)
        if head.get("schema") != _schema_key(schema, fmt):
            return digest, None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # not ours, or damaged
        return digest, None
    cache: dict[str, object] = dict(head["nulls"])
    for name, meta in head["stats"].items():
        if meta["kind"] == "numeric":
            srt = arrays[f"num/{name}/sorted"]
            tied = f"num/{name}/uniques" in arrays
            cache[f"stats|{name}"] = NumericStats(
                n=meta["n"],
                sorted=srt,
                uniques=arrays[f"num/{name}/uniques"] if tied else srt,
                counts=arrays[f"num/{name}/counts"]
                if tied
                else np.broadcast_to(np.intp(1), srt.shape),
                std=meta["std"],
                cache=dict(meta.get("scales", {})),
            )
        else:
            counts = arrays[f"cat/{name}/counts"]
            cache[f"stats|{name}"] = CategoricalStats(
                n=meta["n"], counts=counts, n_unique=int(np.count_nonzero(counts))
            )
    reference = Reference(
        reference_id=head["reference_id"],
        fingerprint=digest,
        n_rows=head["n_rows"],
        columns={k[4:]: v for k, v in arrays.items() if k.startswith("col/")},
        vocabularies={k: tuple(v) for k, v in head["vocabularies"].items()},
        cache=cache,
    )
    return digest, reference


def save(cache_dir: Path, reference: Reference, schema: ModelSchema, fmt: str, digest: str) -> None:
    """Store the reference and what the checks cached on it (atomically: write, rename)."""
    arrays: dict[str, np.ndarray] = {
        f"col/{k}": np.asarray(v) for k, v in reference.columns.items()
    }
    stats: dict[str, Any] = {}
    nulls: dict[str, float] = {}
    for key, value in reference.cache.items():
        if key.startswith("null|") and isinstance(value, float):
            nulls[key] = value
        elif key.startswith("stats|") and isinstance(value, NumericStats):
            name = key[6:]
            scales = {k: v for k, v in value.cache.items() if isinstance(v, float)}  # iqr, mad
            stats[name] = {"kind": "numeric", "n": value.n, "std": value.std, "scales": scales}
            arrays[f"num/{name}/sorted"] = value.sorted
            if value.uniques is not value.sorted:
                arrays[f"num/{name}/uniques"] = value.uniques
                arrays[f"num/{name}/counts"] = np.asarray(value.counts)
        elif key.startswith("stats|") and isinstance(value, CategoricalStats):
            stats[key[6:]] = {"kind": "categorical", "n": value.n}
            arrays[f"cat/{key[6:]}/counts"] = value.counts
    header = {
        "schema": _schema_key(schema, fmt),
        "reference_id": reference.reference_id,
        "n_rows": reference.n_rows,
        "vocabularies": {k: list(v) for k, v in reference.vocabularies.items()},
        "stats": stats,
        "nulls": nulls,
    }
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            _write_arrays(fh, header, arrays)
        os.replace(tmp, cache_path(cache_dir, digest))
        cache_path(cache_dir, digest).with_suffix(".npz").unlink(missing_ok=True)  # version 1
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
