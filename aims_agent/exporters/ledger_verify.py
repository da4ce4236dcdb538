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

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from aims_agent.errors import CanonicalJSONError
from aims_agent.exporters import ledger, nc_record
from aims_agent.exporters.ledger import (
    CONTENT,
    GENESIS,
    HEAD_ID,
    LedgerEntry,
    SignedHead,
    entry_hash,
    latest_signed_head,
)
from aims_agent.exporters.ledger_records import check_new_records, check_records
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
    new: list[tuple[int, str, str, str]] = field(default_factory=list)  # incremental: entries

    @property
    def last_seq(self) -> int:
        return self.last.seq if self.last else 0


def _problem(e: LedgerEntry, reason: str) -> Problem:
    return Problem(seq=e.seq, kind=e.kind, ref_id=e.ref_id, reason=reason)


def _hash_of(e: LedgerEntry) -> str | None:
    try:
        return entry_hash(
            seq=e.seq,
            kind=e.kind,
            ref_id=e.ref_id,
            at=e.at,
            content_sha256=e.content_sha256,
            prev_hash=e.prev_hash,
        )
    except (CanonicalJSONError, UnicodeError, TypeError, AttributeError):
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


def _entry(row: Any) -> LedgerEntry:
    seq, kind, ref_id, at, content_sha256, prev_hash, hash_ = row
    return LedgerEntry(
        seq=seq,
        kind=kind,
        ref_id=ref_id,
        at=at,
        content_sha256=content_sha256,
        prev_hash=prev_hash,
        hash=hash_,
    )


def _walk(conn: Connection, found: _Found, watch: set[int], since: LedgerEntry | None) -> _Walk:
    """Walk the entries after `since` in seq order; rows stay tuples unless one is needed."""
    walk, relocations = _Walk(last=since), 0
    if since is not None and since.seq in watch:
        walk.seen[since.seq] = since
    rows = conn.execute(
        select(*ledger.ENTRY_COLUMNS)
        .where(_L.c.seq > (since.seq if since else 0))
        .order_by(_L.c.seq)
        .execution_options(yield_per=5000)
    )
    prev: Any = (
        None
        if since is None
        else (since.seq, since.kind, since.ref_id, since.at, "", "", since.hash)
    )
    last_seq, prev_flagged, n = since.seq if since else 0, False, 0
    for row in rows:
        seq, kind, ref_id, at, sha, prev_hash, hash_ = row
        n += 1
        if since is not None:
            walk.new.append((seq, kind, ref_id, sha))
        if seq in watch:
            walk.seen[seq] = _entry(row)
        gap = seq != last_seq + 1
        if gap:
            reason = (
                f"entry missing (gap after seq {last_seq})"
                if last_seq + 1 > 1
                else f"entry missing (the ledger starts at seq {seq})"
            )
            found.add(Problem(seq=last_seq + 1, kind=None, ref_id=None, reason=reason))
        try:
            flagged = (
                entry_hash(
                    seq=seq,
                    kind=kind,
                    ref_id=ref_id,
                    at=at,
                    content_sha256=sha,
                    prev_hash=prev_hash,
                )
                != hash_
            )
        except (CanonicalJSONError, UnicodeError, TypeError, AttributeError):
            flagged = True
        if flagged:
            e = _entry(row)
            moved = _written_as(conn, e) if relocations < _RELOCATIONS else None
            relocations += 1
            found.add(
                _problem(e, f"out of order: written as seq {moved}" if moved else "entry altered")
            )
        elif not (gap or prev_flagged) and prev_hash != (prev[6] if prev else GENESIS):
            # intact itself but not linked: the one before was rewritten with a fresh hash
            if prev is None:
                found.add(_problem(_entry(row), "entry rewritten: it does not start the chain"))
            else:
                reason = f"entry rewritten: entry {seq} does not link to it"
                found.add(Problem(seq=prev[0], kind=prev[1], ref_id=prev[2], reason=reason))
        prev, prev_flagged, last_seq = row, flagged, seq
    walk.entries = n
    if n:
        walk.last = _entry(prev)
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
    projections: bool = True,
) -> VerifyReport:
    """Recompute the chain and check every record against it.

    `evidence_dir`: where attachment files are (None: their files are not checked).
    `public_key`: the raw Ed25519 key that must have signed the latest signed head.
    `since`: an entry verified before (`exporters.ledger_check`): only the entries after it
    and their records are checked (and every nonconformity's fields, which change in place,
    unless `projections` is False: the caller knows no row changed); `entries` then counts the
    new entries.
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
        if since is None:
            bad = check_records(conn, kind, source, evidence_dir)
        else:  # records without an entry are left to the full verify
            new = [(seq, ref, sha) for seq, k, ref, sha in walk.new if k == kind]
            bad = check_new_records(conn, kind, source, new, evidence_dir)
        for seq, ref, why in bad:
            found.add(Problem(seq=seq, kind=kind, ref_id=ref, reason=why))
    if projections:
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
