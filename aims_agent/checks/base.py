"""The contract of a check, the reference it compares against, and the registry of check kinds."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from aims_agent.agent.window import WindowData
from aims_agent.errors import UnknownAliasError
from aims_agent.records import Measurement
from aims_agent.schema import ModelSchema


@dataclass(frozen=True, slots=True, kw_only=True)
class Reference:
    """Reference data as columns, in the same encoding as a window (categorical codes, NaN)."""

    reference_id: str
    fingerprint: str  # SHA-256 of the reference file
    n_rows: int
    columns: Mapping[str, np.ndarray]
    vocabularies: Mapping[str, tuple[str, ...]]


class Check(Protocol):
    """A configured check bound to its reference; statistics of the reference are precomputed."""

    id: str
    kind: str

    def run(self, window: WindowData) -> list[Measurement]: ...


CheckFactory = Callable[[Any, Reference, ModelSchema], Check]
CHECKS: dict[str, CheckFactory] = {}


def register(kind: str) -> Callable[[CheckFactory], CheckFactory]:
    def deco(factory: CheckFactory) -> CheckFactory:
        CHECKS[kind] = factory
        return factory

    return deco


def build_check(settings: Any, reference: Reference, schema: ModelSchema) -> Check:
    """Instantiate the check kind named by `settings.kind`."""
    import aims_agent.checks.drift  # noqa: F401 - registers itself

    try:
        factory = CHECKS[settings.kind]
    except KeyError:
        raise UnknownAliasError("check kind", settings.kind, CHECKS) from None
    return factory(settings, reference, schema)
