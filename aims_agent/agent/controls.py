"""The editable mapping from check kinds to the controls they evidence (configs/controls.yaml)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources

import yaml

from aims_agent.records import ControlTags


@cache
def control_mapping() -> Mapping[str, Mapping[str, list[str]]]:
    text = resources.files("aims_agent.configs").joinpath("controls.yaml").read_text()
    data: Mapping[str, Mapping[str, list[str]]] = yaml.safe_load(text)
    return data


def controls_for(kind: str, override: tuple[str, ...] | None = None) -> ControlTags:
    """Primary then supporting controls of a check kind; `override` replaces the ISO list."""
    entry = control_mapping().get(kind, {})
    iso = override or (*entry.get("primary", ()), *entry.get("supporting", ()))
    return ControlTags(
        iso42001=tuple(iso),
        eu_ai_act=tuple(entry.get("eu_ai_act", ())),
        nist_ai_rmf=tuple(entry.get("nist_ai_rmf", ())),
    )
