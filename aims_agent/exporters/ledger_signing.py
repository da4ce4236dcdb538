"""Ed25519 signatures of the evidence ledger's head: someone vouches for the chain up to seq N.

The signed message is the canonical JSON of
`{"type": "aims.ledger-head/1", "seq": N, "hash": H, "signed_at": T}`. A rewrite of the whole
chain, or a cut of its tail with the head row rewritten, leaves every remaining link valid; it
does not survive `aims-agent evidence verify --public-key`, which needs the latest signed head
on the chain and signed by the trusted key. The key is the agent's (config
`agent.ledger.signing_key_env`): PEM (PKCS#8) or the raw 32-byte key as 64 hex digits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, insert

from aims_agent.config.agent import LedgerConfig
from aims_agent.errors import ConfigError, SigningKeyError
from aims_agent.exporters.canonical import canonical
from aims_agent.exporters.ledger import SignedHead, last_entry
from aims_agent.storage.schema import ledger_signatures

HEAD_TYPE = "aims.ledger-head/1"
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def _hex(text: str) -> bytes | None:
    text = text.strip()
    if len(text) != 64:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def load_private_key(text: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM or 64 hex digits."""
    raw = _hex(text)
    if raw is not None:
        return Ed25519PrivateKey.from_private_bytes(raw)
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError("not an Ed25519 private key (PEM or 64 hex digits)") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"not an Ed25519 key but {type(key).__name__}")
    return key


def load_public_key(data: bytes) -> bytes:
    """The raw 32 bytes of an Ed25519 public key given as PEM or 64 hex digits."""
    raw = _hex(data.decode("ascii", "replace"))
    if raw is not None:
        return raw
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError("not an Ed25519 public key (PEM or 64 hex digits)") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"not an Ed25519 key but {type(key).__name__}")
    return key.public_bytes(*_RAW)


def head_message(seq: int, hash_: str, signed_at: float) -> bytes:
    """The bytes that are signed for a head."""
    return canonical({"type": HEAD_TYPE, "seq": seq, "hash": hash_, "signed_at": signed_at})


def sign_head(key: Ed25519PrivateKey, *, now: float) -> Callable[[Connection], SignedHead | None]:
    """A store write: sign the ledger's last entry and keep the signature; None if empty."""

    def write(conn: Connection) -> SignedHead | None:
        last = last_entry(conn)
        if last is None:
            return None
        seq, hash_ = last.seq, last.hash
        signed = SignedHead(
            seq=seq,
            hash=hash_,
            signed_at=now,
            public_key=key.public_key().public_bytes(*_RAW).hex(),
            signature=key.sign(head_message(seq, hash_, now)).hex(),
        )
        conn.execute(
            insert(ledger_signatures).values(
                seq=seq,
                hash=hash_,
                signed_at=now,
                public_key=signed.public_key,
                signature=signed.signature,
            )
        )
        return signed

    return write


def signature_problem(signed: SignedHead, trusted: bytes | None) -> str | None:
    """Why the signed head does not verify (with the trusted key if given), or None."""
    try:
        stored = bytes.fromhex(signed.public_key)
        signature = bytes.fromhex(signed.signature)
        key = Ed25519PublicKey.from_public_bytes(stored)
    except ValueError:
        return f"seq {signed.seq}: the stored key or signature is malformed"
    if trusted is not None and stored != trusted:
        return f"seq {signed.seq}: signed with another key ({signed.public_key[:16]}...)"
    try:
        key.verify(signature, head_message(signed.seq, signed.hash, signed.signed_at))
    except InvalidSignature:
        return f"seq {signed.seq}: signature does not verify"
    return None


def configured_key(ledger: LedgerConfig, environ: Mapping[str, str]) -> Ed25519PrivateKey | None:
    """The agent's signing key (`agent.ledger.signing_key_env` / `signing_key_file`), or None
    if none is configured; ConfigError naming the field if it cannot be read."""
    if ledger.signing_key_env is not None:
        field, text = (
            f"agent.ledger.signing_key_env: {ledger.signing_key_env}",
            environ.get(ledger.signing_key_env),
        )
        if not text:
            raise ConfigError(
                [
                    "agent.ledger.signing_key_env: environment variable "
                    f"{ledger.signing_key_env} is not set"
                ]
            )
    elif ledger.signing_key_file is not None:
        field = f"agent.ledger.signing_key_file: {ledger.signing_key_file}"
        try:
            text = ledger.signing_key_file.read_text()
        except (OSError, UnicodeError) as exc:
            raise ConfigError([f"{field}: cannot read it: {exc}"]) from exc
    else:
        return None
    try:
        return load_private_key(text)
    except SigningKeyError as exc:
        raise ConfigError([f"{field}: {exc}"]) from exc


def published_problem(
    conn: Connection, head: Mapping[str, object], trusted: bytes | None
) -> str | None:
    """Why a head published elsewhere (`evidence head --format json`, or its `signature`
    object alone) does not hold for this ledger, or None: its signature must verify (with the
    trusted key if given) and the ledger's entry at its seq must have its hash."""
    from sqlalchemy import select

    from aims_agent.storage.schema import evidence_ledger as L

    raw = head.get("signature") if isinstance(head.get("signature"), Mapping) else head
    try:
        signed = SignedHead(
            seq=int(raw["seq"]),  # type: ignore[index]
            hash=str(raw["hash"]),  # type: ignore[index]
            signed_at=float(raw["signed_at"]),  # type: ignore[index]
            public_key=str(raw["public_key"]),  # type: ignore[index]
            signature=str(raw["signature"]),  # type: ignore[index]
        )
    except (KeyError, TypeError, ValueError):
        return "not a signed head (seq, hash, signed_at, public_key, signature)"
    why = signature_problem(signed, trusted)
    if why:
        return f"published head: {why}"
    stored = conn.execute(select(L.c.hash).where(L.c.seq == signed.seq)).scalar()
    if stored is None:
        return f"published head seq {signed.seq}: the ledger has no entry {signed.seq} (cut)"
    if stored != signed.hash:
        return f"published head seq {signed.seq}: the ledger holds another hash for it (rewritten)"
    return None
