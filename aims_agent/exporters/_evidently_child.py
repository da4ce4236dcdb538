"""Child process of `evidently_report`: render Evidently's data-drift report to an HTML file.

Usage: python -m aims_agent.exporters._evidently_child REFERENCE CURRENT.npz OUT.html
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path


def main(reference: str, archive: str, out: str) -> None:
    warnings.simplefilter("ignore")  # Evidently's dependencies warn about their own internals
    import numpy as np
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    npz = np.load(archive)
    numeric = [k.split(":", 1)[1] for k in npz.files if k.startswith("num:")]
    categorical = [k.split(":", 1)[1] for k in npz.files if k.startswith("cat:")]
    current = pd.DataFrame(
        {
            **{c: npz[f"num:{c}"] for c in numeric},
            **{c: pd.Series(npz[f"cat:{c}"]).replace("", None) for c in categorical},
        }
    )
    path = Path(reference)
    ref = (
        pd.read_parquet(path)
        if path.suffix.lower() in {".parquet", ".pq"}
        else pd.read_csv(path, dtype=dict.fromkeys(categorical, str))
    )
    ref = ref[numeric + categorical]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    for c in categorical:
        ref[c] = ref[c].astype("string").astype(object)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
    )
    snapshot.save_html(out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
