"""Verify before read: reports, exports, the SoA and the API's evidence reads check the ledger
first, and say what they found.

`check_store` verifies from the last verified head (`ledger_verified`): that entry must still
be in the ledger with the same, correctly computed hash; then only the entries after it are
walked and their records checked, and every nonconformity is rebuilt from its events if any
nonconformity row changed (a digest of the rows is kept with the verified head).
A million-entry ledger therefore costs a few milliseconds per read. A whole-store verify runs
when there is no verified head, when that entry changed, and at least every `FULL_EVERY`
seconds (an old immutable record altered in place is only seen by a whole-store verify, as are
rows without an entry). `aims-agent evidence verify` is always a whole-store verify.

On a broken chain the reader refuses (`LedgerTamperedError`: CLI exit 1, HTTP 409) naming the
first bad entry, unless it allows unverified output, which is then stamped "UNVERIFIED" first.
Every output states the ledger head (seq and hash), its signature state and when it was
verified (`LedgerState.statement`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from aims_agent.errors import LedgerTamperedError
from aims_agent.exporters import nc_record
from aims_agent.exporters.canonical import iso, sha256_hex
from aims_agent.exporters.ledger import ENTRY_COLUMNS, LedgerEntry, entry_hash
from aims_agent.exporters.ledger_signing import signature_problem
from aims_agent.exporters.ledger_verify import VerifyReport, verify
from aims_agent.storage.schema import evidence_ledger, ledger_verified
from aims_agent.storage.store import UPSERT, Store

FULL_EVERY = 24 * 3600.0  # seconds between whole-store verifies at the latest
VERIFIED_ID = 1
_L, _V = evidence_ledger, ledger_verified


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerState:
    """What a verify before read found, as outputs state it."""

    ok: bool
    head_seq: int
    head_hash: str | None
    signature: str  # "signed", "signed up to seq N", "unsigned", "signature invalid"
    signed_seq: int | None
    signed_key: str | None
    verified_at: float
    mode: str  # "full" or "incremental"
    checked: int  # entries walked
    first_problem: str | None
    ncs_sha256: str | None = None  # the nonconformity rows as verified

    def statement(self) -> dict[str, Any]:
        """The ledger section of a report or export (JSON)."""
        out: dict[str, Any] = {
            "verified": self.ok,
            "head_seq": self.head_seq,
            "head_sha256": self.head_hash,
            "signature": self.signature,
            "signed_seq": self.signed_seq,
            "signing_key": self.signed_key,
            "verified_at": iso(self.verified_at),
            "verification": self.mode,
        }
        if not self.ok:
            out = {"stamp": "UNVERIFIED", **out, "first_problem": self.first_problem}
        return out

    def line(self) -> str:
        """One line for text outputs."""
        text = (
            f"Evidence ledger: head seq {self.head_seq}, sha256 {self.head_hash or '-'}; "
            f"signature: {self.signature}"
            f"{f' (key {self.signed_key[:16]}...)' if self.signed_key else ''}; "
            f"verified at {iso(self.verified_at)} ({self.mode})"
        )
        if self.ok:
            return text
        return f"UNVERIFIED: the evidence ledger does not verify: {self.first_problem}. {text}"


def _since(conn: Connection, now: float) -> tuple[LedgerEntry | None, str | None]:
    """The last verified entry, if it is still as verified and a full verify is not due, and
    the digest of the nonconformity rows as they were then."""
    row = conn.execute(
        select(_V.c.seq, _V.c.hash, _V.c.full_at, _V.c.ncs_sha256).where(_V.c.id == VERIFIED_ID)
    ).first()
    if row is None or row.full_at is None or now - float(row.full_at) > FULL_EVERY:
        return None, None
    e = conn.execute(select(*ENTRY_COLUMNS).where(_L.c.seq == row.seq)).first()
    if e is None or e.hash != row.hash:
        return None, None
    entry = LedgerEntry(**e._mapping)
    fields = {k: v for k, v in e._mapping.items() if k != "hash"}
    return (entry, row.ncs_sha256) if entry_hash(**fields) == entry.hash else (None, None)


def _signature(report: VerifyReport) -> tuple[str, int | None, str | None]:
    s = report.signed_head
    if s is None:
        return "unsigned", None, None
    if signature_problem(s, None):
        return "signature invalid", s.seq, s.public_key
    if s.seq >= report.head_seq:
        return "signed", s.seq, s.public_key
    return f"signed up to seq {s.seq}", s.seq, s.public_key


def check(
    conn: Connection, *, evidence_dir: Path | None, now: float, full: bool = False
) -> tuple[LedgerState, VerifyReport]:
    """Verify from the last verified head (or the whole store), in one read."""
    since, ncs_before = (None, None) if full else _since(conn, now)
    ncs = nc_record.rows_digest(conn)
    # every nonconformity is rebuilt from its events unless no row changed since the last check
    rebuild = since is None or ncs != ncs_before
    report = verify(conn, evidence_dir=evidence_dir, since=since, projections=rebuild)
    head_seq = report.head_seq
    signature, signed_seq, key = _signature(report)
    state = LedgerState(
        ok=report.ok,
        head_seq=head_seq,
        head_hash=report.head_hash,
        signature=signature,
        signed_seq=signed_seq,
        signed_key=key,
        verified_at=now,
        mode="full" if since is None else "incremental",
        checked=report.entries,
        first_problem=str(report.first_problem) if report.first_problem else None,
        ncs_sha256=ncs,
    )
    return state, report


def remember(state: LedgerState) -> Any:
    """A store write: the verified head (after a verify that passed)."""

    def write(conn: Connection) -> None:
        if not state.ok or state.head_hash is None:
            return
        values: dict[str, Any] = {
            "seq": state.head_seq,
            "hash": state.head_hash,
            "verified_at": state.verified_at,
            "ncs_sha256": state.ncs_sha256,
        }
        if state.mode == "full":
            values["full_at"] = state.verified_at
        ins: Any = UPSERT[conn.dialect.name](_V)
        conn.execute(
            ins.values(id=VERIFIED_ID, **values).on_conflict_do_update(
                index_elements=[_V.c.id], set_=values
            )
        )

    return write


def check_store(
    store: Store,
    *,
    evidence_dir: Path | None,
    allow_unverified: bool = False,
    full: bool = False,
    now: float | None = None,
) -> LedgerState:
    """Verify before a read: LedgerTamperedError naming the first bad entry on a broken chain,
    unless `allow_unverified` (then the state says so, and the output is to be stamped)."""
    now = time.time() if now is None else now
    state, _ = store.read(lambda conn: check(conn, evidence_dir=evidence_dir, now=now, full=full))
    if state.ok:
        if state.mode == "full" or state.checked:  # else nothing changed since the last check
            store.submit(remember(state)).result()
    elif not allow_unverified:
        raise LedgerTamperedError(
            f"the evidence ledger does not verify: {state.first_problem} "
            "(aims-agent evidence verify lists every problem)",
            first_problem=state.first_problem or "",
        )
    return state


# --- stamping outputs ------------------------------------------------------------------------


def stamp_markdown(text: str, state: LedgerState) -> str:
    """The ledger line first (UNVERIFIED first of all when it did not verify)."""
    return f"> {state.line()}\n\n{text}"


_BANNER = (
    '<p class="ledger{{ " unverified" if not ok }}" role="{{ "alert" if not ok else "note" }}"'
    ' style="{{ style }}">{{ line }}</p>'
)


def stamp_html(text: str, state: LedgerState) -> str:
    """A banner right after <body> (Jinja2, autoescaped), and "UNVERIFIED" in the title."""
    from jinja2 import Environment

    env = Environment(autoescape=True)
    style = (
        "border:3px solid #b00020;color:#b00020;font-weight:bold;padding:.5em"
        if not state.ok
        else "color:#555;font-size:.85em"
    )
    banner = env.from_string(_BANNER).render(ok=state.ok, line=state.line(), style=style)
    lower = text.lower()
    at = lower.find("<body")
    end = lower.find(">", at) + 1 if at >= 0 else 0
    out = text[:end] + banner + text[end:]
    if not state.ok:
        out = out.replace("<title>", "<title>UNVERIFIED: ", 1)
    return out


def stamp_json(data: Mapping[str, Any], state: LedgerState) -> dict[str, Any]:
    """`ledger` first (with "stamp": "UNVERIFIED" when it did not verify), then the data."""
    return {"ledger": state.statement(), **{k: v for k, v in data.items() if k != "ledger"}}


def stamp_oscal(doc: dict[str, Any], state: LedgerState) -> dict[str, Any]:
    """The ledger state as metadata props (and "UNVERIFIED: " before the title); the version
    digest is recomputed over the result."""
    from aims_agent.exporters.oscal.common import prop

    ar = doc["assessment-results"]
    meta = ar["metadata"]
    s = state.statement()
    props = [
        prop("ledger-head-seq", s["head_seq"]),
        prop("ledger-head-sha256", s["head_sha256"] or "-"),
        prop("ledger-signature", s["signature"]),
        prop("ledger-verified-at", s["verified_at"]),
        prop("ledger-verified", "true" if state.ok else "false"),
    ]
    meta["props"] = [*meta.get("props", []), *props]
    if not state.ok:
        meta["title"] = f"UNVERIFIED: {meta['title']}"
        meta["remarks"] = f"{state.line()} {meta.get('remarks', '')}".strip()
    meta["version"] = ""
    meta["version"] = f"sha256-{sha256_hex(ar)[:16]}"
    return doc
