"""aims-agent: a runtime monitoring sidecar that turns model traffic into ISO/IEC 42001 evidence."""

from __future__ import annotations

__version__ = "0.1.0"
