"""Train the tiny credit model that every upstream serves; run with the upstream venv's python.

    python train.py OUT_DIR [--mlflow] [--predict-fn predict|predict_proba]

Writes into OUT_DIR:
- ``model.joblib``: ``LogisticRegression`` fitted on a numpy array of columns x1, x2, x3 (what
  MLServer and the KServe script load; no feature names, so numpy inputs raise no warning);
- ``model.json``: its coefficients, for the stdlib JSON server (checked against predict_proba);
- with ``--mlflow``, ``mlflow-model/``: the same model fitted on a DataFrame with columns x1, x2,
  x3, saved by ``mlflow.sklearn.save_model`` with a signature and an input example.

The data are fixed (numpy seed 42): x1 ~ N(0, 1), x2 ~ Gamma(2, 2), x3 ~ U(0, 10),
label = x1 + 0.1 * x2 + N(0, 0.3) > 0.
"""

# mypy: disable-error-code="import-not-found,import-untyped"

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegression

FEATURES = ["x1", "x2", "x3"]
SEED = 42
N = 500


def dataset() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(SEED)
    x1 = rng.normal(0.0, 1.0, N)
    x2 = rng.gamma(2.0, 2.0, N)
    x3 = rng.uniform(0.0, 10.0, N)
    y = (x1 + 0.1 * x2 + rng.normal(0.0, 0.3, N) > 0).astype(np.int64)
    return pd.DataFrame({"x1": x1, "x2": x2, "x3": x3}), y


def pure_proba(coef: list[float], intercept: float, row: list[float]) -> float:
    z = intercept + sum(w * v for w, v in zip(coef, row, strict=True))
    return 1.0 / (1.0 + math.exp(-z))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--mlflow", action="store_true", help="also save an MLflow model")
    parser.add_argument("--predict-fn", default="predict", choices=["predict", "predict_proba"])
    opts = parser.parse_args()
    out: Path = opts.out
    out.mkdir(parents=True, exist_ok=True)

    frame, y = dataset()
    model = LogisticRegression().fit(frame.to_numpy(), y)
    joblib.dump(model, out / "model.joblib")

    coef = [float(c) for c in model.coef_[0]]
    intercept = float(model.intercept_[0])
    sample = frame.to_numpy()[:20]
    want = model.predict_proba(sample)[:, 1]
    got = [pure_proba(coef, intercept, list(map(float, r))) for r in sample]
    assert np.allclose(want, got, rtol=0, atol=1e-12), "coefficients do not reproduce the model"
    spec = {
        "features": FEATURES,
        "coef": coef,
        "intercept": intercept,
        "classes": [int(c) for c in model.classes_],
        "sklearn": sklearn.__version__,
    }
    (out / "model.json").write_text(json.dumps(spec, indent=2) + "\n")

    if opts.mlflow:
        import mlflow.sklearn
        from mlflow.models import infer_signature

        framed = LogisticRegression().fit(frame, y)
        outputs = getattr(framed, opts.predict_fn)(frame.head(3))
        mlflow.sklearn.save_model(
            framed,
            str(out / "mlflow-model"),
            signature=infer_signature(frame.head(3), outputs),
            input_example=frame.head(3),
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
            pyfunc_predict_fn=opts.predict_fn,
        )


if __name__ == "__main__":
    main()
