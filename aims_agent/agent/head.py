"""Publishing the evidence ledger's signed head, every `agent.ledger.publish_minutes`.

With a signing key configured, the agent signs its ledger's head (a `ledger_signatures` row) and
publishes it where the evidence directory's owner cannot rewrite it: the series
`aims_ledger_head_info{seq, sha256, signed_at, public_key, signature}` (Prometheus keeps its own
copy of every value it scraped) and the log (`event: ledger.head`). `aims-agent evidence verify
--against` checks such a head later: a ledger rewritten or cut below it no longer holds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from aims_agent.config import Config
from aims_agent.exporters.canonical import iso
from aims_agent.exporters.ledger import SignedHead
from aims_agent.exporters.ledger_signing import configured_key, sign_head
from aims_agent.metrics import Metrics
from aims_agent.storage.store import Store

log = logging.getLogger(__name__)
JOB_ID = "ledger/head"


def show(metrics: Metrics, signed: SignedHead) -> None:
    """The signed head as the one `aims_ledger_head_info` series."""
    metrics.ledger_head_info.clear()
    metrics.ledger_head_info.labels(
        str(signed.seq), signed.hash, iso(signed.signed_at), signed.public_key, signed.signature
    ).set(1)
    metrics.ledger_head_seq.set(signed.seq)


def publisher(
    cfg: Config,
    store: Store,
    metrics: Metrics,
    environ: Mapping[str, str],
    clock: Callable[[], float] = time.time,
) -> Callable[[], SignedHead | None] | None:
    """The job that signs and publishes the head; None without a signing key. ConfigError
    (before the agent starts) if the configured key cannot be read."""
    key = configured_key(cfg.agent.ledger, environ)
    if key is None:
        return None

    def publish() -> SignedHead | None:
        signed = store.submit(sign_head(key, now=clock())).result()
        if signed is None:  # an empty ledger: nothing to vouch for yet
            return None
        show(metrics, signed)
        log.info(
            "ledger head signed: seq %d, sha256 %s",
            signed.seq,
            signed.hash,
            extra={
                "event": "ledger.head",
                "seq": signed.seq,
                "sha256": signed.hash,
                "public_key": signed.public_key,
                "signature": signed.signature,
                "signed_at": iso(signed.signed_at),
            },
        )
        return signed

    return publish
