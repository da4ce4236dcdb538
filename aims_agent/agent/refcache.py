"""The reference as the checks use it, cached on disk by the SHA-256 of the reference file.

A one-shot `check` otherwise reads and encodes the whole reference file, sorts every column
and resamples it for the calibrated drift preset's null quantiles, on every run. The first run
stores the encoded columns, the prepared column summaries and the null quantiles in
`<evidence_dir>/cache/reference-<sha256>.npz` (NumPy arrays and one JSON header; nothing is
unpickled); a later run with the same file, schema and format hashes the file, loads that
and reads nothing else. A cache that does not load is ignored and rewritten.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from aims_agent.checks.base import Reference
from aims_agent.checks.stattests import CategoricalStats, NumericStats
from aims_agent.exporters.canonical import sha256_file, sha256_hex
from aims_agent.schema import ModelSchema

VERSION = 1


def _schema_key(schema: ModelSchema, fmt: str) -> str:
    return sha256_hex([VERSION, fmt, [[c.name, c.kind, c.source] for c in schema.columns]])


def cache_path(cache_dir: Path, digest: str) -> Path:
    return cache_dir / f"reference-{digest}.npz"


def load(
    cache_dir: Path, path: Path, schema: ModelSchema, fmt: str
) -> tuple[str, Reference | None]:
    """The file's SHA-256 and its cached reference, or None when there is none usable."""
    digest = sha256_file(path)
    file = cache_path(cache_dir, digest)
    if not file.is_file():
        return digest, None
    try:
        with np.load(file, allow_pickle=False) as z:
            head = json.loads(str(z["header"]))
            if head.get("schema") != _schema_key(schema, fmt):
                return digest, None
            arrays = {k: z[k] for k in z.files if k != "header"}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
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
            np.savez(fh, header=np.array(json.dumps(header)), **arrays)  # type: ignore[arg-type]
        os.replace(tmp, cache_path(cache_dir, digest))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
