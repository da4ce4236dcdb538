"""Reference and window from data frames, encoded as the agent encodes them."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import numpy as np
import pandas as pd

from aims_agent.checks.base import Reference
from aims_agent.records import WindowData, WindowInfo


def encode(schema, ref, cur, *, rejected=0):
    """Reference and window as the agent encodes them: NaN for missing numbers, codes into the
    sorted reference labels, extended in order of appearance by labels only the window has."""
    ref_cols, ref_vocab, cur_cols, cur_vocab = {}, {}, {}, {}
    for col in schema.columns:
        if col.kind == "numeric":
            if col.name in ref:
                ref_cols[col.name] = ref[col.name].to_numpy(dtype=np.float64, na_value=np.nan)
            cur_cols[col.name] = cur[col.name].to_numpy(dtype=np.float64, na_value=np.nan)
            continue
        text = {
            name: [None if pd.isna(v) else str(v) for v in df[col.name]] if col.name in df else []
            for name, df in (("ref", ref), ("cur", cur))
        }
        vocab = sorted({v for v in text["ref"] if v is not None})
        labels = list(vocab)
        for v in text["cur"]:
            if v is not None and v not in labels:
                labels.append(v)
        index = {v: i for i, v in enumerate(labels)}
        if col.name in ref:
            ref_cols[col.name] = np.array([index.get(v, -1) for v in text["ref"]], dtype=np.int32)
            ref_vocab[col.name] = tuple(vocab)
        cur_cols[col.name] = np.array([index.get(v, -1) for v in text["cur"]], dtype=np.int32)
        cur_vocab[col.name] = tuple(labels)
    reference = Reference(
        reference_id="ref",
        fingerprint="0" * 64,
        n_rows=len(ref),
        columns=ref_cols,
        vocabularies=ref_vocab,
    )
    n = len(cur)
    window = WindowData(
        info=WindowInfo(start=0.0, end=1.0, seen=n, sampled=n, rejected=rejected),
        columns=cur_cols,
        vocabularies=cur_vocab,
        record_ids=(),
    )
    return reference, window


class Held:
    """An executor whose work waits until the test says: the agent's child still training.
    `future` resolves every submission; `calls` records what was submitted."""

    def __init__(self) -> None:
        self.future: Future[Any] = Future()
        self.calls: list[tuple[Any, tuple[Any, ...]]] = []

    def submit(self, fn: Any, *args: Any) -> Any:
        self.calls.append((fn, args))
        return self.future
