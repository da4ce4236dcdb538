"""Verifying the evidence ledger (`exporters.ledger`): `aims-agent evidence verify`.

`verify` reports every problem, first by seq; one problem per entry (the first explains it):

- the chain, walked in seq order: "entry missing (gap after seq N)"; "entry altered" (its hash
  is not SHA-256 over its fields); "out of order: written as seq N" (its hash fits another
  seq: entries were swapped or renumbered); "entry rewritten" (its hash was recomputed, so the
  next entry, the ledger head or the signed head no longer links to it);
- the head: the `ledger_head` row and the latest signed head must lie on the chain
  ("entry missing (the ledger ends at seq N, its head is at M)" shows a cut tail);
- the signed head, if any (or if a public key is given): its Ed25519 signature, with the
  trusted key when one is given;
- the records: each entry's record must exist ("record removed") and hash to its
  content_sha256 ("record altered: content hash differs"); a monitoring record's columns must
  agree with its body; an attachment's file must still have its SHA-256; every evidence row
  must have an entry ("record not in the ledger"), and a record whose content hash differs is
  named with its fields ("record altered: field result.value differs from what was chained");
  every field of a nonconformity must be what its events set ("field body.severity altered:
  stored ..., its events say ...", `exporters.nc_record`).

What the chain cannot show alone: a cut tail with the head row rewritten and the cut records
deleted. A signed head, checked with `--public-key`, covers the chain up to its seq.
Each read is one statement, so a verify beside a running agent sees no half-written append.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Text, cast, exists, select

from aims_agent.errors import CanonicalJSONError
from aims_agent.exporters import ledger, nc_record
from aims_agent.exporters.canonical import iso, sha256_file, sha256_hex
from aims_agent.exporters.ledger import (
    CONTENT,
    GENESIS,
    HEAD_ID,
    LedgerEntry,
    SignedHead,
    Source,
    entry_hash,
    latest_signed_head,
)
from aims_agent.storage.schema import (
    evidence_ledger,
    ledger_head,
)

_L = evidence_ledger


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """What verify found wrong; `seq` is the ledger entry it concerns, if there is one."""

    seq: int | None
    kind: str | None
    ref_id: str | None
    reason: str

    def __str__(self) -> str:
        what = " ".join(str(x) for x in (self.kind, self.ref_id) if x is not None)
        if self.seq is None:
            return f"{what}: {self.reason}" if what else self.reason
        return f"entry {self.seq}{f' ({what})' if what else ''}: {self.reason}"


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    ok: bool
    entries: int
    head_seq: int  # of the last entry; 0 for an empty ledger
    head_hash: str | None
    first_problem: Problem | None
    problems: tuple[Problem, ...]  # at most MAX_PROBLEMS, first by seq
    problem_count: int
    signed_head: SignedHead | None = None
    signature_trusted: bool = False  # checked against a key the verifier gave


MAX_PROBLEMS = 1000
_RELOCATIONS = 32  # entries whose original seq is looked for, at most


@dataclass
class _Found:
    problems: list[Problem] = field(default_factory=list)
    count: int = 0
    _seqs: set[int] = field(default_factory=set)

    def add(self, p: Problem) -> None:
        """One problem per entry: the first explains it; later ones are consequences."""
        if p.seq is not None:
            if p.seq in self._seqs:
                return
            self._seqs.add(p.seq)
        self.count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(p)


@dataclass
class _Walk:
    entries: int = 0
    last: LedgerEntry | None = None
    seen: dict[int, LedgerEntry] = field(default_factory=dict)  # watched seqs

    @property
    def last_seq(self) -> int:
        return self.last.seq if self.last else 0


def _problem(e: LedgerEntry, reason: str) -> Problem:
    return Problem(seq=e.seq, kind=e.kind, ref_id=e.ref_id, reason=reason)


def _hash_of(e: LedgerEntry) -> str | None:
    try:
        fields = asdict(e)
        del fields["hash"]
        return entry_hash(**fields)
    except (CanonicalJSONError, UnicodeError, TypeError):
        return None


def _written_as(conn: Connection, e: LedgerEntry) -> int | None:
    """The seq an entry was written with, if it now sits at another one (reordered)."""
    candidates = [1] if e.prev_hash == GENESIS else []
    before = conn.execute(select(_L.c.seq).where(_L.c.hash == e.prev_hash).limit(1)).scalar()
    after = conn.execute(select(_L.c.seq).where(_L.c.prev_hash == e.hash).limit(1)).scalar()
    candidates += [int(before) + 1] if before is not None else []
    candidates += [int(after) - 1] if after is not None else []
    candidates += range(max(1, e.seq - 16), e.seq + 17)
    for seq in dict.fromkeys(candidates):
        if seq != e.seq and _hash_of(replace(e, seq=seq)) == e.hash:
            return seq
    return None


def _walk(conn: Connection, found: _Found, watch: set[int], since: LedgerEntry | None) -> _Walk:
    walk, prev, prev_flagged, relocations = _Walk(last=since), since, False, 0
    if since is not None and since.seq in watch:
        walk.seen[since.seq] = since
    rows = conn.execute(
        select(*ledger.ENTRY_COLUMNS)
        .where(_L.c.seq > (since.seq if since else 0))
        .order_by(_L.c.seq)
        .execution_options(yield_per=1000)
    )
    for row in rows:
        e = LedgerEntry(**row._mapping)
        walk.entries += 1
        if e.seq in watch:
            walk.seen[e.seq] = e
        expected = walk.last_seq + 1
        gap = e.seq != expected
        if gap:
            reason = (
                f"entry missing (gap after seq {expected - 1})"
                if expected > 1
                else f"entry missing (the ledger starts at seq {e.seq})"
            )
            found.add(Problem(seq=expected, kind=None, ref_id=None, reason=reason))
        flagged = _hash_of(e) != e.hash
        if flagged:
            moved = _written_as(conn, e) if relocations < _RELOCATIONS else None
            relocations += 1
            found.add(
                _problem(e, f"out of order: written as seq {moved}" if moved else "entry altered")
            )
        elif not (gap or prev_flagged) and e.prev_hash != (prev.hash if prev else GENESIS):
            # intact itself but not linked: the one before was rewritten with a fresh hash
            if prev is None:
                found.add(_problem(e, "entry rewritten: it does not start the chain"))
            else:
                found.add(_problem(prev, f"entry rewritten: entry {e.seq} does not link to it"))
        walk.last, prev, prev_flagged = e, e, flagged
    return walk


def _check_head(head: Any, walk: _Walk, found: _Found) -> None:
    if head is None:
        if walk.entries:
            found.add(Problem(seq=None, kind=None, ref_id=None, reason="ledger head missing"))
        return
    seq, hash_ = int(head.seq), str(head.hash)
    if seq > walk.last_seq:
        reason = f"entry missing (the ledger ends at seq {walk.last_seq}, its head is at {seq})"
        found.add(Problem(seq=walk.last_seq + 1, kind=None, ref_id=None, reason=reason))
    elif seq < 1 and walk.entries:
        found.add(Problem(seq=None, kind=None, ref_id=None, reason="ledger head reset to seq 0"))
    elif (e := walk.seen.get(seq)) is not None and e.hash != hash_:
        found.add(_problem(e, "entry rewritten: the ledger head holds another hash for it"))


def _check_signed(
    signed: SignedHead | None, public_key: bytes | None, walk: _Walk, found: _Found
) -> bool:
    """Whether the latest signed head is in the ledger and verifies with the trusted key."""
    if signed is None:
        reason = "no signed head, but a public key was given to check it"
        found.add(Problem(seq=None, kind=None, ref_id=None, reason=reason))
        return False
    if signed.seq > walk.last_seq:
        reason = (
            f"entry missing (the ledger ends at seq {walk.last_seq}, a signed head at {signed.seq})"
        )
        found.add(Problem(seq=walk.last_seq + 1, kind=None, ref_id=None, reason=reason))
    elif (e := walk.seen.get(signed.seq)) is not None and e.hash != signed.hash:
        found.add(_problem(e, "entry rewritten: the signed head holds another hash for it"))
    from aims_agent.exporters.ledger_signing import signature_problem

    why = signature_problem(signed, public_key)
    if why:
        found.add(Problem(seq=None, kind=None, ref_id=None, reason=f"signed head: {why}"))
    return why is None and public_key is not None


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


def _record_problem(
    conn: Connection, kind: str, source: Source, m: Mapping[str, Any], evidence_dir: Path | None
) -> str | None:
    row = {k: v for k, v in m.items() if not k.startswith("_")}
    try:
        for c in source.json_columns:
            row[c] = json.loads(row[c])
        digest = sha256_hex(source.content(row))
    except (TypeError, ValueError):  # not JSON, or JSON without a canonical form (NaN)
        return "record altered: not valid JSON"
    if digest != m["_sha"]:
        fields = _stored_fields(conn, int(m["_seq"]))
        named = ledger.differing_fields(source.content(row), fields, source.expand)
        if not named:
            return "record altered: content hash differs"
        return f"record altered: field {', '.join(named)} differs from what was chained"
    check = _RECORD_CHECKS.get(kind)
    return check(row, evidence_dir) if check else None


def _check_records(
    conn: Connection,
    kind: str,
    source: Source,
    found: _Found,
    evidence_dir: Path | None,
    since: int,
) -> None:
    t = source.table
    cols = [
        cast(t.c[n], Text).label(n) if n in source.json_columns else t.c[n] for n in source.columns
    ]
    entries = (
        select(_L.c.seq.label("_seq"), _L.c.ref_id.label("_ref"), _L.c.content_sha256.label("_sha"))
        .add_columns(source.key.label("_key"), *cols)
        .select_from(_L.outerjoin(t, source.key == _L.c.ref_id))
        .where(_L.c.kind == kind, _L.c.seq > since)
        .order_by(_L.c.seq)
        .execution_options(yield_per=1000)
    )
    for row in conn.execute(entries):
        m = row._asdict()
        why = (
            "record removed"
            if m["_key"] is None
            else _record_problem(conn, kind, source, m, evidence_dir)
        )
        if why:
            found.add(Problem(seq=int(m["_seq"]), kind=kind, ref_id=str(m["_ref"]), reason=why))
    if since:  # an incremental check: records without an entry are left to the full one
        return
    unchained = select(source.key).where(
        ~exists().where(_L.c.kind == kind, _L.c.ref_id == source.key)
    )
    for ref in conn.execute(unchained).scalars():
        found.add(Problem(seq=None, kind=kind, ref_id=str(ref), reason="record not in the ledger"))


def _check_projections(conn: Connection, found: _Found) -> None:
    for nc_id, why in nc_record.problems(conn):
        seq = conn.execute(
            select(_L.c.seq).where(_L.c.kind == "nonconformity", _L.c.ref_id == nc_id)
        ).scalar()
        found.add(Problem(seq=seq, kind="nonconformity", ref_id=nc_id, reason=why))


def verify(
    conn: Connection,
    *,
    evidence_dir: Path | None = None,
    public_key: bytes | None = None,
    since: LedgerEntry | None = None,
) -> VerifyReport:
    """Recompute the chain and check every record against it.

    `evidence_dir`: where attachment files are (None: their files are not checked).
    `public_key`: the raw Ed25519 key that must have signed the latest signed head.
    `since`: an entry verified before (`exporters.ledger_check`): only the entries after it
    and their records are checked (and every nonconformity's fields, which change in place);
    `entries` then counts the new entries.
    """
    found = _Found()
    head = conn.execute(
        select(ledger_head.c.seq, ledger_head.c.hash).where(ledger_head.c.id == HEAD_ID)
    ).first()
    signed = latest_signed_head(conn)  # read before the walk: the walk must reach it
    watch = {int(head.seq) if head else 0, signed.seq if signed else 0}
    walk = _walk(conn, found, watch, since)
    _check_head(head, walk, found)
    trusted = False
    if signed is not None or public_key is not None:
        trusted = _check_signed(signed, public_key, walk, found)
    for kind, source in CONTENT.items():
        _check_records(conn, kind, source, found, evidence_dir, since.seq if since else 0)
    _check_projections(conn, found)
    problems = sorted(found.problems, key=lambda p: (p.seq is None, p.seq or 0))
    return VerifyReport(
        ok=not problems,
        entries=walk.entries,
        head_seq=walk.last_seq,
        head_hash=walk.last.hash if walk.last else None,
        first_problem=problems[0] if problems else None,
        problems=tuple(problems),
        problem_count=found.count,
        signed_head=signed,
        signature_trusted=trusted,
    )
