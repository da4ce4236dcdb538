"""aims-agent: a runtime monitoring sidecar that turns model traffic into ISO/IEC 42001 evidence.

The Python API, for notebooks and pipelines:

    import aims_agent

    cfg = aims_agent.load_config("agent.yaml")          # validated, every problem at once
    records = aims_agent.check(cfg, current=frame)      # clause 9.1 monitoring records
    breached = [r for r in records if r["result"]["outcome"] == "breach"]

The package root is the public face of the process layer: its functions import the one-shot
runner (`agent/oneshot.py`) when called, so importing any submodule (as the sidecar does) loads
nothing above the layer it belongs to.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aims_agent.config import Config

__version__ = "0.1.0"
__all__ = ["__version__", "check", "load_config"]
_ONESHOT = "aims_agent.agent.oneshot"


def load_config(config: Config | str | os.PathLike[str]) -> Config:
    """Read and validate an agent config file (every problem with its YAML path in one
    `aims_agent.errors.ConfigError`); a `Config` is returned as it is."""
    loaded: Config = importlib.import_module(_ONESHOT).load_config(config)
    return loaded


def check(
    config: Config | str | os.PathLike[str],
    current: Any,
    *,
    model: str | None = None,
    reference: str | os.PathLike[str] | None = None,
    write_evidence: bool = False,
    environ: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Run a model's checks once on `current` (a CSV or Parquet path, a pandas DataFrame or a
    pyarrow Table) and return their clause 9.1 monitoring records as JSON-ready dicts.

    `model` may be omitted when the config has one model; `reference` overrides the config's
    reference file. No evidence is written unless `write_evidence` is true, in which case the
    records (and any nonconformity a breach opens) are stored as the agent stores them."""
    records: list[dict[str, Any]] = importlib.import_module(_ONESHOT).check(
        config,
        current,
        model=model,
        reference=reference,
        write_evidence=write_evidence,
        environ=environ,
    )
    return records
