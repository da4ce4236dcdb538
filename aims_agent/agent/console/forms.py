"""The nonconformity lifecycle as a form: a person's fields become the same `Change` the API
decodes from JSON (`exporters.lifecycle.decode_change`), so the console follows the same rules
and gives the same refusals: 422 naming the field, 409 with the steps the record allows, 403 for
segregation of duties.

A field's form name is its path in the change (`corrective_action.owner`); empty fields are
left out. The form starts from the record's values and sends what differs. The effectiveness
review's `verified_by` is the signed-in person, not a typed name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from aims_agent.collectors.push import problem_of
from aims_agent.errors import (
    LifecycleError,
    NonconformityNotFoundError,
    PayloadError,
    SegregationOfDutiesError,
)
from aims_agent.exporters import lifecycle

# every field the form offers, by its path in the change
FIELDS = (
    "status",
    "justification",
    "severity",
    "reaction.action",
    "cause_analysis.root_cause",
    "cause_analysis.method",
    "corrective_action.description",
    "corrective_action.owner",
    "corrective_action.due_date",
    "corrective_action.status",
    "effectiveness_review.effective",
    "effectiveness_review.evidence",
    "management_system_change",
    "comment",
)
BOOLEANS = {"yes": True, "no": False}
MAX_FIELDS = 64
FORM_BYTES = 64 * 1024
# what a refused step answers, by the domain error (the API's statuses)
REFUSALS: dict[type[Exception], int] = {
    LifecycleError: 409,
    SegregationOfDutiesError: 403,
    NonconformityNotFoundError: 404,
}


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a step was refused: the status, the field if one is to blame, the message."""

    status: int
    message: str
    field: str | None = None


def parse(body: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body; PayloadError if it is not one."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body),
            max_num_fields=MAX_FIELDS,
        )  # fmt: skip
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"form body not understood: {exc}") from None
    return dict(pairs)


def current(nc: Mapping[str, Any]) -> dict[str, str]:
    """The record's clause 10.2 fields as the form shows them (its starting values)."""
    out: dict[str, str] = {}
    for name in FIELDS:
        head, _, tail = name.partition(".")
        value = nc.get(head)
        if tail:
            value = value.get(tail) if isinstance(value, Mapping) else None
        if isinstance(value, bool):
            value = "yes" if value else "no"
        if value is not None and name != "status":
            out[name] = str(value)
    return out


def change_of(
    form: Mapping[str, str], record: Mapping[str, str], *, reviewer: str, now: float
) -> Any:
    """The `Change` the form asks for: the fields that differ from the `record`'s (`current`),
    a group completed from the record's values (marking an action done keeps its owner);
    msgspec.ValidationError names a field out of range."""
    doc: dict[str, Any] = {}
    for name in FIELDS:
        value = form.get(name, "").strip()
        if not value or value == record.get(name):
            continue
        head, _, tail = name.partition(".")
        if tail:
            doc.setdefault(head, {})[tail] = value
        else:
            doc[head] = value
    for name, value in record.items():
        head, _, tail = name.partition(".")
        if tail and isinstance(doc.get(head), dict):
            doc[head].setdefault(tail, value)
    if "effectiveness_review" in doc:
        review = doc["effectiveness_review"]
        review["effective"] = BOOLEANS.get(review.get("effective"), review.get("effective"))
        review["verified_by"] = reviewer
    return lifecycle.decode_change(msgspec.json.encode(doc), now=now)


def invalid(exc: msgspec.ValidationError) -> Problem:
    field, reason = problem_of(str(exc))
    return Problem(422, f"{field}: {reason}", field)


def refused(exc: Exception) -> Problem:
    status = next(v for kind, v in REFUSALS.items() if isinstance(exc, kind))
    return Problem(status, str(exc))
