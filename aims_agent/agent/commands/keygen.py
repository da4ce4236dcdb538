"""`aims-agent keygen`: an Ed25519 key pair to sign the evidence ledger's head.

The private key is written as PEM (PKCS#8) with mode 0600, by default under the user's config
directory, outside any evidence directory: whoever can rewrite the evidence should not hold the
key that vouches for it. The public key goes beside it (`.pub`, PEM) and is printed as 64 hex
digits: keep a copy elsewhere, it is what `aims-agent evidence verify --public-key` trusts.
Point the agent at the key with `agent.ledger.signing_key_file` (or put the PEM in the
variable `agent.ledger.signing_key_env` names). An existing key is never overwritten.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

NAME = "keygen"
HELP = "write an Ed25519 key pair to sign the evidence ledger's head"


def default_path() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "aims-agent" / "ledger-signing.key"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        help=f"private key file (default: {default_path()}); the public key is OUT.pub",
    )


def run(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Path(args.out) if args.out else default_path()
    public = private.with_name(private.name + ".pub")
    for path in (private, public):
        if path.exists():
            print(f"--out: {path} exists; not overwritten", file=sys.stderr)
            return 2
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = key.public_key()
    try:
        private.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        public.write_bytes(
            pub.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    except OSError as exc:
        print(f"--out: cannot write {private}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    print(f"private key: {private} (mode 0600)")
    print(f"public key:  {public}")
    print(f"public key (hex): {raw}")
    print("config:      agent.ledger.signing_key_file: " + str(private))
    return 0
