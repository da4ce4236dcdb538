"""Synthetic credit-scoring data with a sensitive attribute, and a small scikit-learn model on it.

Used by `aims-agent demo`. `drift=True` shifts the applicant population the way a new marketing
channel might: younger, higher-income applicants from other regions.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

NUMERIC = ("age", "income", "debt_ratio", "credit_history_months", "open_accounts")
CATEGORICAL = ("region", "employment", "purpose")
SENSITIVE = "gender"
REGIONS = ("north", "south", "east", "west", "central")
EMPLOYMENT = ("employed", "self-employed", "unemployed", "retired")
PURPOSE = ("car", "home", "education", "business", "medical", "other")


@dataclass(frozen=True, slots=True)
class Batch:
    numeric: np.ndarray  # (n, 5) float
    categorical: np.ndarray  # (n, 3) object
    gender: np.ndarray  # (n,) object
    label: np.ndarray  # (n,) int, 1 = default


def subset(b: Batch, rows: np.ndarray) -> Batch:
    """The batch's rows at these positions."""
    return Batch(
        numeric=b.numeric[rows],
        categorical=b.categorical[rows],
        gender=b.gender[rows],
        label=b.label[rows],
    )


def applicants(rng: np.random.Generator, n: int, *, drift: bool = False) -> Batch:
    gender = rng.choice(np.array(["F", "M"], dtype=object), size=n, p=[0.48, 0.52])
    age = np.clip(rng.normal(34 if drift else 42, 12, n), 18, 90).round()
    income = rng.lognormal(10.6, 0.5, n) * (1.6 if drift else 1.0)
    debt = rng.beta(2, 5, n)
    history = rng.gamma(3, 30, n).round()
    accounts = rng.poisson(4, n).astype(float)
    region_p = [0.05, 0.1, 0.15, 0.2, 0.5] if drift else [0.25, 0.2, 0.2, 0.2, 0.15]
    region = rng.choice(np.array(REGIONS, dtype=object), size=n, p=region_p)
    employment = rng.choice(np.array(EMPLOYMENT, dtype=object), size=n, p=[0.6, 0.2, 0.1, 0.1])
    purpose = rng.choice(np.array(PURPOSE, dtype=object), size=n)
    logit = (
        -1.2
        + 3.0 * debt
        - 0.8 * np.log(income / 40_000)
        - 0.03 * (age - 40)
        + 0.9 * (employment == "unemployed")
        - 0.004 * (history - 90)
        + 0.15 * (gender == "F")
    )
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return Batch(
        numeric=np.column_stack([age, income, debt, history, accounts]),
        categorical=np.column_stack([region, employment, purpose]),
        gender=gender,
        label=label,
    )


class CreditModel:
    """One-hot + scaling + logistic regression: small, fast, and a real scikit-learn model."""

    def __init__(self, train: Batch) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        self._scale = StandardScaler().fit(train.numeric)
        self._onehot = OneHotEncoder(handle_unknown="ignore").fit(train.categorical)
        self._clf = LogisticRegression(max_iter=500).fit(self._x(train), train.label)

    def _x(self, b: Batch) -> Any:
        from scipy.sparse import hstack

        return hstack([self._scale.transform(b.numeric), self._onehot.transform(b.categorical)])

    def score(self, b: Batch) -> np.ndarray:
        return self._clf.predict_proba(self._x(b))[:, 1]  # type: ignore[no-any-return]


def rows(b: Batch, scores: np.ndarray) -> Iterator[dict[str, Any]]:
    """Flat rows as the reference file holds them."""
    for i in range(len(b.label)):
        row: dict[str, Any] = dict(zip(NUMERIC, b.numeric[i].tolist(), strict=True))
        row.update(zip(CATEGORICAL, b.categorical[i].tolist(), strict=True))
        row.update(
            prediction=int(scores[i] >= 0.5),
            score=round(float(scores[i]), 6),
            default=int(b.label[i]),
            gender=b.gender[i],
        )
        yield row


def write_reference(path: Path, b: Batch, scores: np.ndarray) -> None:
    data = list(rows(b, scores))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(data[0]))
        writer.writeheader()
        writer.writerows(data)


def records(
    b: Batch, scores: np.ndarray, *, start_id: int, now: float, labelled: bool = True
) -> list[dict[str, Any]]:
    """The same rows as ingest records (without their label when `labelled` is false)."""
    out = []
    for i, row in enumerate(rows(b, scores)):
        record = {
            "id": f"req-{start_id + i:08d}",
            "timestamp": now,
            "features": {k: row[k] for k in (*NUMERIC, *CATEGORICAL)},
            "prediction": row["prediction"],
            "score": row["score"],
            "label": row["default"],
            "attributes": {SENSITIVE: row[SENSITIVE]},
        }
        if not labelled:
            del record["label"]
        out.append(record)
    return out
