"""Personal data in records: configured fields are replaced by a keyed hash, or dropped, as
records are decoded, before anything reaches the window, storage, evidence or logs.

The hash is HMAC-SHA256 under a key from the environment, so a value cannot be recovered or
confirmed by hashing guesses without the key, yet equal values still hash equal: the record id
still joins late labels (labels are hashed the same way), and a hashed categorical column still
has a distribution to compare with the reference (whose values are hashed alike).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from aims_agent.config import PrivacyConfig
from aims_agent.errors import ConfigError

PREFIX = "h:"


class Privacy:
    """What one model hashes; `None` values pass through as missing."""

    def __init__(self, cfg: PrivacyConfig, key: bytes) -> None:
        self.cfg, self._key = cfg, key
        self.hash_id = "id" in cfg.hash
        self.columns = frozenset(n for n in cfg.hash if n != "id")

    def token(self, value: str) -> str:
        return PREFIX + hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:32]

    def record_id(self, value: str) -> str:
        return self.token(value) if self.hash_id else value

    def vocabularies(self, vocabs: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
        """Reference vocabularies with hashed columns hashed (codes keep their positions)."""
        return {
            name: tuple(self.token(v) for v in labels) if name in self.columns else tuple(labels)
            for name, labels in vocabs.items()
        }


def privacy_for(
    cfg: PrivacyConfig | None, environ: Mapping[str, str], where: str
) -> Privacy | None:
    """The model's privacy rules with their key from the environment (ConfigError if unset)."""
    if cfg is None or not cfg.hash:
        return None
    key = environ.get(cfg.key_env or "", "")
    if not key:
        raise ConfigError([f"{where}.key_env: environment variable {cfg.key_env} is not set"])
    return Privacy(cfg, key.encode())
