"""What the OSCAL export's parts share: constants, stable uuids, props, the agent and model
components."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from aims_agent.controls import annex_reference

JsonDict = dict[str, Any]
OSCAL_VERSION = "1.2.1"  # what compliance-trestle 5.2's models implement
NS = "urn:aims-agent:oscal"
UUIDS = uuid.uuid5(uuid.NAMESPACE_URL, NS)
RISK_STATUS = {  # nonconformity lifecycle -> OSCAL risk status
    "open": "open",
    "investigating": "investigating",
    "corrective_action": "remediating",
    "verifying": "remediating",
    "closed": "closed",
    "rejected": "closed",
}
ANNEX_A = re.compile(r"A\.\d+\.\d+(\.\d+)*")
TAGS = (
    ("iso42001", "iso42001-control"),
    ("eu_ai_act", "eu-ai-act"),
    ("nist_ai_rmf", "nist-ai-rmf"),
)


def uuid_of(*parts: object) -> str:
    return str(uuid.uuid5(UUIDS, "/".join(str(p) for p in parts)))


def one_line(value: object) -> str:
    """One line without outer blanks: what OSCAL titles and property values accept."""
    return " ".join(str(value).split()) or "-"


def prop(name: str, value: object, **extra: str) -> JsonDict:
    return {"name": name, "ns": NS, "value": one_line(value), **extra}


def token(value: object) -> str:
    text = re.sub(r"[^A-Za-z0-9_.-]", "-", str(value))
    return text if re.match(r"[A-Za-z_]", text) else f"_{text}"


def control_id(control: str) -> str:
    """An ISO/IEC 42001 id as an OSCAL control id: `A.6.2.6` -> `a.6.2.6` (CISO Assistant's
    spelling); a clause, which cannot start a token, `9.1` -> `clause-9.1`."""
    return control.lower() if ANNEX_A.fullmatch(control) else f"clause-{control}"


def framework_urn() -> str:
    return str(annex_reference()["ciso_assistant_framework_urn"])


def as_float(t: float | datetime) -> float:
    return t.timestamp() if isinstance(t, datetime) else float(t)


def tool(agent: str) -> list[JsonDict]:
    return [{"actors": [{"type": "tool", "actor-uuid": agent}]}]


def model_component(model: str, version: str, ais: str, env: str) -> JsonDict:
    return {
        "uuid": uuid_of("component", "model", model, version),
        "type": "software",
        "title": one_line(f"Model {model} {version}"),
        "description": f"The monitored model {model} version {version} of AI system {ais} ({env}).",
        "props": [
            prop("ai-system-id", ais),
            prop("model", model),
            prop("model-version", version),
            prop("environment", env),
        ],
        "status": {"state": "operational"},
    }
