"""Checking each evidence record against its ledger entry (`exporters.ledger_verify`).

A record must hash to its entry's content_sha256; a monitoring record's queried columns must
agree with its body; an attachment's file must still have its SHA-256. A monitoring record's
body is stored as canonical JSON, so the common case hashes its text and decodes only the
fields its columns repeat; any difference goes the long way, which names the field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import Connection, Text, cast, exists, select

from aims_agent.exporters import ledger
from aims_agent.exporters.canonical import iso, sha256_file, sha256_hex
from aims_agent.exporters.ledger import Source
from aims_agent.storage.schema import evidence_ledger

_L = evidence_ledger


def _columns_agree(row: Mapping[str, Any], _: Path | None) -> str | None:
    """The columns queried beside the body (streaks, listings) must say what the body says."""
    body = row["body"]
    said = {
        "record_id": body.get("record_id"),
        "model": (body.get("system") or {}).get("model"),
        "check_id": (body.get("check") or {}).get("id"),
        "outcome": (body.get("result") or {}).get("outcome"),
        "executed_at": body.get("executed_at"),
        "nonconformity_id": body.get("nonconformity_id"),
    }
    try:
        stored = {**row, "executed_at": iso(float(row["executed_at"]))}
    except (TypeError, ValueError, OverflowError, OSError):
        return "record altered: column executed_at is not a time"
    wrong = [
        k
        for k, v in said.items()
        if (v is not None or (k == "nonconformity_id" and k in body)) and stored[k] != v
    ]
    return f"record altered: column {', '.join(wrong)} disagrees with its body" if wrong else None


def _file_agrees(row: Mapping[str, Any], evidence_dir: Path | None) -> str | None:
    if evidence_dir is None:
        return None
    root = evidence_dir.resolve()
    path = (root / str(row["path"])).resolve()
    if not path.is_relative_to(root):
        return "attachment path leaves the evidence directory"
    try:
        digest = sha256_file(path)
    except FileNotFoundError:
        return f"attachment file missing: {row['path']}"
    except OSError as exc:
        return f"attachment file unreadable: {exc.strerror}"
    if digest != row["sha256"]:
        return f"attachment file altered: sha256 of {row['path']} differs"
    return None


_RECORD_CHECKS: dict[str, Callable[[Mapping[str, Any], Path | None], str | None]] = {
    "monitoring_record": _columns_agree,
    "attachment": _file_agrees,
}


def _stored_fields(conn: Connection, seq: int) -> Any:
    fields = conn.execute(select(_L.c.fields).where(_L.c.seq == seq)).scalar()
    return json.loads(fields) if isinstance(fields, str) else fields


_decode = msgspec.json.decode


class _Part(msgspec.Struct):
    id: Any = None
    model: Any = None
    outcome: Any = None


class _Said(msgspec.Struct):
    """What a monitoring record's body says that its columns repeat (the rest is skipped)."""

    record_id: Any = None
    system: _Part | None = None
    check: _Part | None = None
    result: _Part | None = None
    executed_at: Any = None
    nonconformity_id: Any = msgspec.UNSET


_said = msgspec.json.Decoder(_Said).decode


def _record_fast(row: Any, at: Mapping[str, int]) -> bool:
    """A monitoring record whose body text hashes to its entry and whose columns agree with
    it (row: _seq, _ref, _sha, _key, then the columns at `at`); False: look closer."""
    sha, body = row[2], row[at["body"]]
    record_id, model, check_id = row[at["record_id"]], row[at["model"]], row[at["check_id"]]
    executed_at, outcome, nc_id = (
        row[at["executed_at"]],
        row[at["outcome"]],
        row[at["nonconformity_id"]],
    )
    if not isinstance(body, str) or hashlib.sha256(body.encode()).hexdigest() != sha:
        return False
    try:
        said = _said(body)
        when = iso(float(executed_at))
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError, ValueError, OverflowError):
        return False
    return (
        said.record_id in (None, record_id)
        and (said.system is None or said.system.model in (None, model))
        and (said.check is None or said.check.id in (None, check_id))
        and (said.result is None or said.result.outcome in (None, outcome))
        and said.executed_at in (None, when)
        and (said.nonconformity_id is msgspec.UNSET or said.nonconformity_id == nc_id)
    )


_FAST: dict[str, Callable[[Any, Mapping[str, int]], bool]] = {"monitoring_record": _record_fast}


def _record_problem(
    conn: Connection, kind: str, source: Source, m: Mapping[str, Any], evidence_dir: Path | None
) -> str | None:
    row = {k: v for k, v in m.items() if not k.startswith("_")}
    try:
        # the column holding the whole content, written as canonical JSON: its text is what
        # the ledger hashed, so a match needs no canonicalising
        whole = row[source.whole] if source.whole else None
        same = isinstance(whole, str) and hashlib.sha256(whole.encode()).hexdigest() == m["_sha"]
        for c in source.json_columns:
            row[c] = _decode(row[c])
        digest = m["_sha"] if same else sha256_hex(source.content(row))
    except (TypeError, ValueError, msgspec.DecodeError, UnicodeError):
        return "record altered: not valid JSON"  # or JSON without a canonical form (NaN)
    if digest != m["_sha"]:
        fields = _stored_fields(conn, int(m["_seq"]))
        named = ledger.differing_fields(source.content(row), fields, source.expand)
        if not named:
            return "record altered: content hash differs"
        return f"record altered: field {', '.join(named)} differs from what was chained"
    check = _RECORD_CHECKS.get(kind)
    return check(row, evidence_dir) if check else None


def _columns(source: Source) -> list[Any]:
    t = source.table
    return [
        cast(t.c[n], Text).label(n) if n in source.json_columns else t.c[n] for n in source.columns
    ]


def _problems(
    conn: Connection, kind: str, source: Source, rows: Iterable[Any], evidence_dir: Path | None
) -> Iterator[tuple[int | None, str, str]]:
    """rows: (_seq, _ref, _sha, _key, *source.columns), _key None if the record is gone."""
    fast = _FAST.get(kind)
    at = {n: i + 4 for i, n in enumerate(source.columns)}
    names = ("_seq", "_ref", "_sha", "_key", *source.columns)
    for row in rows:
        if fast is not None and row[3] is not None and fast(row, at):
            continue
        m = dict(zip(names, row, strict=True))
        why = (
            "record removed"
            if m["_key"] is None
            else _record_problem(conn, kind, source, m, evidence_dir)
        )
        if why:
            yield int(m["_seq"]), str(m["_ref"]), why


def check_records(
    conn: Connection, kind: str, source: Source, evidence_dir: Path | None
) -> Iterator[tuple[int | None, str, str]]:
    """(seq, ref_id, why) for each record of this kind that is not as chained, and (None,
    ref_id, why) for each row that has no entry."""
    t = source.table
    entries = (
        select(_L.c.seq.label("_seq"), _L.c.ref_id.label("_ref"), _L.c.content_sha256.label("_sha"))
        .add_columns(source.key.label("_key"), *_columns(source))
        .select_from(_L.outerjoin(t, source.key == _L.c.ref_id))
        .where(_L.c.kind == kind)  # in any order: verify sorts what it found
        .execution_options(yield_per=5000)
    )
    yield from _problems(conn, kind, source, conn.execute(entries), evidence_dir)
    unchained = select(source.key).where(
        ~exists().where(_L.c.kind == kind, _L.c.ref_id == source.key)
    )
    for ref in conn.execute(unchained).scalars():
        yield None, str(ref), "record not in the ledger"


def check_new_records(
    conn: Connection,
    kind: str,
    source: Source,
    entries: Sequence[tuple[int, str, str]],
    evidence_dir: Path | None,
) -> Iterator[tuple[int | None, str, str]]:
    """The same for some entries only, (seq, ref_id, content_sha256) of this kind: their
    records are read by key, so checking new entries costs what they are, not the ledger."""
    for i in range(0, len(entries), 500):
        chunk = entries[i : i + 500]
        query = select(source.key.label("_key"), *_columns(source)).where(
            source.key.in_([ref for _, ref, _ in chunk])
        )
        found = {str(r[0]): tuple(r) for r in conn.execute(query)}
        empty = (None,) * (len(source.columns) + 1)
        rows = [(seq, ref, sha, *found.get(ref, empty)) for seq, ref, sha in chunk]
        yield from _problems(conn, kind, source, rows, evidence_dir)
