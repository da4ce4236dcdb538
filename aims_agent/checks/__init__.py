"""Checks: pure functions from (reference, window, settings) to measurements. No I/O, no clock.

The check kinds a config names live in `checks.kinds`; the numbers alone, for a notebook or a
pipeline, are `aims_agent.checks.drift(reference, current)` (`checks.numbers`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aims_agent.checks.numbers import ColumnDrift, DriftResult, drift

__all__ = ["ColumnDrift", "DriftResult", "drift"]


def __getattr__(name: str) -> Any:
    """The numbers API on first use (PEP 562): a sidecar that imports a check kind does not
    pay for it."""
    if name in __all__:
        from aims_agent.checks import numbers

        return getattr(numbers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
