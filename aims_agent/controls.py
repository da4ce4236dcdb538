"""The editable mapping from check kinds to the controls they evidence (configs/controls.yaml)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import yaml

from aims_agent.records import ControlTags


@cache
def control_mapping() -> Mapping[str, Mapping[str, list[str]]]:
    text = resources.files("aims_agent.configs").joinpath("controls.yaml").read_text()
    data: Mapping[str, Mapping[str, list[str]]] = yaml.safe_load(text)
    return data


@cache
def annex_reference() -> Mapping[str, Any]:
    """configs/iso42001_annex_a.json: the ISO/IEC 42001 Annex A controls and clauses, with
    their titles and CISO Assistant URNs."""
    text = resources.files("aims_agent.configs").joinpath("iso42001_annex_a.json").read_text()
    data: Mapping[str, Any] = json.loads(text)
    return data


@cache
def controls_by_id() -> Mapping[str, Mapping[str, Any]]:
    """Every Annex A control and clause of the reference, by id."""
    data = annex_reference()
    return {c["id"]: c for c in (*data["annex_a_controls"], *data["clauses"])}


def control_order(control: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key: `A.6.2.10` after `A.6.2.9`; clauses (`9.1`) before Annex A."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in control.split("."))


def controls_for(kind: str, override: tuple[str, ...] | None = None) -> ControlTags:
    """Primary then supporting controls of a check kind; `override` replaces the ISO list."""
    entry = control_mapping().get(kind, {})
    iso = override or (*entry.get("primary", ()), *entry.get("supporting", ()))
    return ControlTags(
        iso42001=tuple(iso),
        eu_ai_act=tuple(entry.get("eu_ai_act", ())),
        nist_ai_rmf=tuple(entry.get("nist_ai_rmf", ())),
    )
