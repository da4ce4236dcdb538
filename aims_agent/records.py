"""The records that flow through the agent, from an ingested prediction to a nonconformity.

    Record -> Row -> WindowData -> Measurement -> Assessment -> CheckRun
           -> MonitoringRecord / Nonconformity

All are immutable. `Record` is a msgspec Struct because it is decoded on the ingest hot path;
the rest are frozen dataclasses. These are the names the layers share: collectors produce rows,
the window store keeps them (`Contents`, `Snapshot`), checks read `WindowData`, exporters read
`CheckRun`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import msgspec
import numpy as np

Scalar = float | int | str | bool | None
Cell = float | int | str | bool | None  # one decoded value of a row
Row = tuple[Cell, ...]  # one record's cells in the model schema's column order
Verdict = Literal["pass", "warn", "breach", "insufficient_data"]
AGENT_ACTOR = "aims-agent"  # the actor of what the agent itself records
ActorKind = Literal["person", "machine"]
ColumnKind = Literal["numeric", "categorical"]
Direction = Literal["above", "below"]

NcAction = Literal["open", "recur", "none"]
# (breaching runs in a row including this one, whether the check's record is open) -> what the
# breach does to the nonconformity register; the rule is the judge's (agent.judge)
BreachRule = Callable[[int, bool], NcAction]

# severity order for a run's verdict: an unjudged metric outranks a pass, never a warn or breach
VERDICT_ORDER: Mapping[Verdict, int] = {"pass": 0, "insufficient_data": 1, "warn": 2, "breach": 3}


class Record(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One prediction as the model made it, with ground truth and attributes if known."""

    id: str | int
    features: dict[str, Scalar]
    prediction: Scalar
    timestamp: float | str | None = None
    score: float | None = None
    label: Scalar = None
    attributes: dict[str, Scalar] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who made a change: a person (an OpenID Connect subject, or a static token declared a
    person's) or a machine (a service token, the agent itself), and the client it came through.
    Stored in full in every nonconformity event's body (`by`), so the ledger covers it."""

    kind: ActorKind
    subject: str  # OIDC `sub`, or the static token's name
    name: str | None = None
    email: str | None = None
    client: str | None = None  # OIDC `azp` / `client_id`, or the static token's name
    issuer: str | None = None  # OIDC `iss`; None for static tokens and the agent

    @property
    def label(self) -> str:
        """A short name for tables and messages: the name, else the email, else the subject."""
        return (self.name or self.email or self.subject)[:128]

    @property
    def key(self) -> tuple[str | None, str]:
        """Who this is, for segregation of duties: the same issuer and subject is one person."""
        return (self.issuer, self.subject)

    def as_dict(self) -> dict[str, str]:
        """The stored form: the fields that are set."""
        out = {"kind": self.kind, "subject": self.subject}
        for name in ("name", "email", "client", "issuer"):
            if (value := getattr(self, name)) is not None:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Actor:
        """The record back from its stored form (`as_dict`)."""
        kind: ActorKind = "person" if data.get("kind") == "person" else "machine"

        def text(name: str) -> str | None:
            value = data.get(name)
            return None if value is None else str(value)

        return cls(
            kind=kind,
            subject=str(data.get("subject", "")),
            name=text("name"),
            email=text("email"),
            client=text("client"),
            issuer=text("issuer"),
        )


AGENT = Actor(kind="machine", subject=AGENT_ACTOR, name=AGENT_ACTOR, client=AGENT_ACTOR)


@dataclass(frozen=True, slots=True, kw_only=True)
class Threshold:
    """When a value breaches: `above` (distances, shares) or `below` (p-values, accuracy).

    `inclusive` says whether the breach value itself breaches (`>=` / `<=`) or not (`>` / `<`),
    matching each statistical test's own convention. `warn` is a band before the breach value;
    `min_samples` guards against judging tiny windows.
    """

    breach: float
    direction: Direction = "above"
    inclusive: bool = True
    warn: float | None = None
    min_samples: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Measurement:
    """A number a check computed, and how. It carries the rule but not yet a verdict."""

    check_id: str
    kind: str
    metric: str
    value: float
    method: str
    feature: str | None = None
    params: Mapping[str, object] = field(default_factory=dict)
    n_reference: int = 0
    n_current: int = 0
    p_value: float | None = None
    threshold: Threshold | None = None
    headline: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Assessment:
    """A measurement with the verdict its threshold gives."""

    measurement: Measurement
    verdict: Verdict


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowInfo:
    """Which slice of traffic a check run saw."""

    start: float
    end: float
    seen: int
    sampled: int
    rejected: int = 0  # records refused by ingest in this window


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowData:
    """A consistent copy of a window: columns by name, plus vocabularies of categorical columns."""

    info: WindowInfo
    columns: Mapping[str, np.ndarray]
    vocabularies: Mapping[str, tuple[str, ...]]
    record_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """A whole window as arrays: the compact form a window is stored in."""

    window_start: float
    seen: int
    ids: list[str]
    timestamps: np.ndarray
    columns: Mapping[str, np.ndarray]
    vocabularies: Mapping[str, tuple[str, ...]]
    aliases: list[tuple[str, ...]] = field(default_factory=list)  # per id; empty: none at all


@dataclass(frozen=True, slots=True, kw_only=True)
class Contents:
    """Slots and their rows: a batch's changes, or a whole window (a snapshot)."""

    window_start: float
    seen: int
    slots: list[int]
    rows: list[Row]
    ids: list[str]
    timestamps: list[float]
    # the other ids each record is known by (labels join by any); empty: none at all
    aliases: list[tuple[str, ...]] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlTags:
    """What a check evidences: ISO/IEC 42001 controls and related articles and subcategories."""

    iso42001: tuple[str, ...]
    eu_ai_act: tuple[str, ...] = ()
    nist_ai_rmf: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """A file kept as evidence of a monitoring record (a drift report, a period report)."""

    attachment_id: str
    kind: str
    path: str  # relative to the evidence directory
    sha256: str
    bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckRun:
    """One execution of one check on one window, judged."""

    run_id: str
    model: str
    check_id: str
    kind: str
    started_at: float
    finished_at: float
    window: WindowInfo
    assessments: tuple[Assessment, ...]
    verdict: Verdict
    controls: ControlTags
    error: str | None = None

    @property
    def headline(self) -> Assessment | None:
        """The headline measurement that decided the verdict (the first of the worst)."""
        heads = [a for a in self.assessments if a.measurement.headline]
        decisive = [a for a in heads if a.verdict == self.verdict]
        return next(iter(decisive or heads), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class NonconformityRecord:
    """A clause 10.2 nonconformity as stored: opened by a breach, later breaches are recurrences."""

    nc_id: str
    model: str
    model_version: str
    ai_system_id: str
    check_id: str
    status: str
    severity: str
    opened_at: float
    detected_by: str
    requirement: str
    criterion: str
    observed: str
    expected: str
    controls: tuple[str, ...]
    recurrences: int
    last_seen_at: float
    opened_by_run: str
