"""The evidence ledger's arithmetic: an entry's hash, a content's digests, the chain's next
entry. Pure functions without the database layer, shared by `exporters.ledger` (which appends
in the store's transaction) and `exporters.evidence_sqlite` (a one-shot run's append without
SQLAlchemy), so both chain the very same bytes. See `exporters.ledger` for the format.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aims_agent.exporters.canonical import _dumps, canonical, number, sha256_hex

GENESIS = "0" * 64
MONITORING_EXPAND = ("result",)  # a monitoring record's `result` keys get their own digests


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerEntry:
    seq: int
    kind: str
    ref_id: str
    at: float
    content_sha256: str
    prev_hash: str
    hash: str


def entry_hash(
    *, seq: int, kind: str, ref_id: str, at: float, content_sha256: str, prev_hash: str
) -> str:
    """The hash of an entry: SHA-256 over the previous hash and the entry's canonical JSON
    (written out directly: the keys in their sorted order, the same bytes as `canonical`)."""
    if type(seq) is not int or type(at) not in (float, int):
        entry = {
            "seq": seq,
            "kind": kind,
            "ref_id": ref_id,
            "at": at,
            "content_sha256": content_sha256,
            "prev_hash": prev_hash,
        }
        return hashlib.sha256(prev_hash.encode() + canonical(entry)).hexdigest()
    text = (
        f"{prev_hash}"
        f'{{"at":{number(float(at))},"content_sha256":{_dumps(content_sha256)},'
        f'"kind":{_dumps(kind)},"prev_hash":{_dumps(prev_hash)},'
        f'"ref_id":{_dumps(ref_id)},"seq":{seq}}}'
    )
    return hashlib.sha256(text.encode()).hexdigest()


def field_digests(content: object, expand: tuple[str, ...] = ()) -> dict[str, str] | None:
    """Each field's digest (8 hex digits of its canonical JSON's SHA-256); the keys of the
    `expand` fields each on their own as "field.key". None for content that is not an object."""
    if not isinstance(content, Mapping):
        return None
    out: dict[str, str] = {}
    for k, v in content.items():
        if k in expand and isinstance(v, Mapping):
            for kk, vv in v.items():
                out[f"{k}.{kk}"] = hashlib.sha256(canonical(vv)).hexdigest()[:8]
        out[str(k)] = hashlib.sha256(canonical(v)).hexdigest()[:8]
    return out


def as_stored(value: Any) -> Any:
    """A JSON column's value as it reads back (tuples as lists, keys as strings)."""
    return json.loads(json.dumps(value))


def digest_content(
    content: object, expand: tuple[str, ...] | None
) -> tuple[str, dict[str, str] | None]:
    """The content's SHA-256 and its field digests (None: no digests, as for a report)."""
    digests = field_digests(content, expand) if expand is not None else None
    return sha256_hex(content), digests


def chain_entry(
    *, seq: int, kind: str, ref_id: str, at: float, content_sha256: str, prev_hash: str
) -> LedgerEntry:
    """Entry `seq` of the chain after `prev_hash`."""
    fields: dict[str, Any] = {
        "seq": seq,
        "kind": kind,
        "ref_id": str(ref_id),
        "at": float(at),
        "content_sha256": content_sha256,
        "prev_hash": prev_hash,
    }
    return LedgerEntry(**fields, hash=entry_hash(**fields))
