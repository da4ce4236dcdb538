"""Management reviews (ISO/IEC 42001 clause 9.3.3) kept as evidence.

A review names its date, attendees, inputs (period reports, by the SHA-256 of the file the
agent wrote and recorded), decisions and actions. It is written as a JSON document under
`<evidence_dir>/reviews/` and recorded as an attachment of kind `management_review` (the review
id in place of a monitoring record id), so its SHA-256 is chained in the ledger and `evidence
verify` hashes the file again. The period report of the period a review was held in lists it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import select

from aims_agent.exporters.canonical import canonical, iso
from aims_agent.records import Actor
from aims_agent.storage.schema import attachments

if TYPE_CHECKING:
    from sqlalchemy import Connection

SCHEMA = "aims.management-review/1"
KIND = "management_review"
REPORT_KIND = "period_report"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ReviewInput(msgspec.Struct, forbid_unknown_fields=True):
    """A period report the review considered, by the SHA-256 of its file."""

    sha256: str
    name: str | None = None


class ReviewAction(msgspec.Struct, forbid_unknown_fields=True):
    description: str
    owner: str | None = None
    due_date: date | None = None


class NewReview(msgspec.Struct, forbid_unknown_fields=True):
    date: date
    attendees: list[str]
    inputs: list[ReviewInput]
    decisions: list[str] = []
    actions: list[ReviewAction] = []


decode_new = msgspec.json.Decoder(NewReview).decode


def problems(new: NewReview) -> list[tuple[str, str]]:
    """(field, reason) for what the types alone do not catch."""
    out = []
    if not [a for a in new.attendees if a.strip()]:
        out.append(("attendees", "name at least one attendee"))
    if not new.inputs:
        out.append(("inputs", "name at least one period report (by its SHA-256)"))
    for i, item in enumerate(new.inputs):
        if not _SHA256.match(item.sha256):
            out.append((f"inputs[{i}].sha256", "must be 64 lowercase hex digits"))
    return out


def resolve_inputs(conn: Connection, new: NewReview) -> list[dict[str, Any]] | tuple[str, str]:
    """The period reports the inputs name (report id, SHA-256, path), or the (field, reason) of
    the first input that is no report the agent recorded."""
    a = attachments.c
    out = []
    for i, item in enumerate(new.inputs):
        row = conn.execute(
            select(a.monitoring_record_id, a.path, a.created_at)
            .where(a.kind == REPORT_KIND, a.sha256 == item.sha256)
            .order_by(a.created_at)
            .limit(1)
        ).first()
        if row is None:
            return (
                f"inputs[{i}].sha256",
                f"no period report with SHA-256 {item.sha256} in the evidence (write it with "
                "`aims-agent report` first)",
            )
        out.append(
            {
                "report_id": row.monitoring_record_id,
                "sha256": item.sha256,
                "path": row.path,
                "name": item.name,
                "recorded_at": iso(row.created_at),
            }
        )
    return out


def document(
    new: NewReview, inputs: list[dict[str, Any]], *, actor: Actor, now: float
) -> tuple[str, bytes]:
    """The review id and its document (canonical JSON)."""
    review_id = f"MRV-{uuid.uuid4().hex[:12]}"
    doc = {
        "schema_version": SCHEMA,
        "review_id": review_id,
        "clause": "9.3.3",
        "date": new.date.isoformat(),
        "attendees": [a for a in new.attendees if a.strip()],
        "inputs": inputs,
        "decisions": list(new.decisions),
        "actions": msgspec.to_builtins(new.actions),
        "recorded_by": actor.as_dict(),
        "recorded_at": iso(now),
    }
    return review_id, canonical(doc)


def relative_path(review_id: str) -> str:
    return f"reviews/{review_id}.json"


def in_period(conn: Connection, evidence_dir: Path, t0: float, t1: float) -> list[dict[str, Any]]:
    """The reviews held in [t0, t1) (by their date), oldest first, as the report shows them;
    a document that cannot be read is listed with the reason (verify names the alteration)."""
    a = attachments.c
    rows = conn.execute(
        select(a.monitoring_record_id, a.path, a.sha256)
        .where(a.kind == KIND)
        .order_by(a.created_at)
    ).all()
    first, last = iso(t0)[:10], iso(t1)[:10]
    out = []
    for row in rows:
        try:
            doc = json.loads((evidence_dir / row.path).read_bytes())
        except (OSError, ValueError) as exc:
            doc = {"review_id": row.monitoring_record_id, "decisions": [f"unreadable: {exc}"]}
        if not isinstance(doc, Mapping):
            doc = {
                "review_id": row.monitoring_record_id,
                "decisions": ["unreadable: not an object"],
            }
        elif doc.get("date") is not None and not first <= str(doc.get("date")) < last:
            continue
        who = doc.get("recorded_by") or {}
        out.append(
            {
                "review_id": doc.get("review_id"),
                "date": doc.get("date"),
                "attendees": list(doc.get("attendees") or ()),
                "inputs": list(doc.get("inputs") or ()),
                "decisions": list(doc.get("decisions") or ()),
                "actions": list(doc.get("actions") or ()),
                "recorded_by": who.get("name") or who.get("subject")
                if isinstance(who, Mapping)
                else None,
                "recorded_at": doc.get("recorded_at"),
                "sha256": row.sha256,
            }
        )
    return sorted(out, key=lambda r: str(r.get("date")))
