"""Canonical JSON lives in `aims_agent.canonical` (the store writes JSON columns with it);
this module keeps the exporters' import path."""

from aims_agent.canonical import (
    _dumps,
    canonical,
    iso,
    json_safe,
    number,
    sha256_file,
    sha256_hex,
)

__all__ = [
    "_dumps",
    "canonical",
    "iso",
    "json_safe",
    "number",
    "sha256_file",
    "sha256_hex",
]
