"""Segregation of duties on the nonconformity register (agent.segregation_of_duties): whoever
recorded the corrective action as done does not also record the effectiveness review or close
the record, and a record the agent opened is closed or rejected only by a person. The doer is
read from the chained events (the `updated` event flagged `corrective_action_done`, with its
actor under `by`), so the rule rests on ledgered evidence, not on a mutable field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select

from aims_agent.config.identity import SegregationConfig
from aims_agent.errors import SegregationOfDutiesError
from aims_agent.records import Actor
from aims_agent.storage.schema import nonconformity_events


def done_by(conn: Connection, nc_id: str) -> Actor | None:
    """Who last recorded the record's corrective action as done, if anyone did."""
    e = nonconformity_events.c
    rows = conn.execute(
        select(e.body).where(e.nc_id == nc_id, e.event == "updated").order_by(e.event_id.desc())
    )
    for (body,) in rows:
        if body.get("corrective_action_done") and isinstance(body.get("by"), Mapping):
            return Actor.from_dict(body["by"])
    return None


def check(
    conn: Connection,
    nc_id: str,
    body: Mapping[str, Any],
    *,
    closing: bool,
    reviews: bool,
    target: str,
    actor: Actor,
    marks_done: bool,
    duties: SegregationConfig,
) -> None:
    """SegregationOfDutiesError if this actor may not make this change: `closing` (to closed or
    rejected, `target`), `reviews` (records an effectiveness review or closes), `marks_done`
    (the change itself records the corrective action as done)."""
    detected = body.get("detected_by")
    by_agent = isinstance(detected, Mapping) and detected.get("type") == "check"
    if duties.person_closes_agent_records and closing and by_agent and actor.kind != "person":
        raise SegregationOfDutiesError(
            f"{nc_id} was opened by the agent: only a person can make it {target} "
            f"({actor.label!r} is a machine token; segregation of duties)"
        )
    if duties.reviewer_not_doer and reviews:
        doer = actor if marks_done else done_by(conn, nc_id)
        if doer is not None and doer.key == actor.key:
            raise SegregationOfDutiesError(
                f"{nc_id}: {actor.label!r} recorded the corrective action as done, so someone "
                "else must record the effectiveness review and close the record "
                "(segregation of duties)"
            )
