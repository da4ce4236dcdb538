"""The audit pack of a period: what an auditor asks for, in one ZIP archive.

- `report-PERIOD.html`, `.md`, `.json`: the period report (9.3.2 management-review input), as
  `aims-agent report` renders it, stamped with the ledger's state;
- `oscal-assessment-results-PERIOD.json`: the OSCAL assessment results, as `aims-agent export
  oscal` writes them;
- `ledger.json`: the ledger verification the pack was built on (head, signature state,
  verified-at) and the latest signed head with its Ed25519 signature, for
  `aims-agent evidence verify --against`;
- `SHA256SUMS`: every file's SHA-256 as `sha256sum` writes it, so `sha256sum -c` checks them.

Built in memory from committed evidence, the ledger verified first (LedgerTamperedError on a
broken chain unless `allow_unverified`, which stamps every file UNVERIFIED). Nothing is written
to the store: a report that a management review cites is recorded with `aims-agent report`.
The archive's entries carry the build time, so the same evidence gives the same bytes at the
same `now`.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from aims_agent.config import Config
from aims_agent.exporters import ledger_check
from aims_agent.exporters.ledger import latest_signed_head
from aims_agent.exporters.period import period_bounds, period_label
from aims_agent.exporters.report import build, renderer
from aims_agent.storage.store import Store

STAMPS = {"html": ledger_check.stamp_html, "md": ledger_check.stamp_markdown}


def audit_pack(
    store: Store,
    cfg: Config,
    period: str,
    *,
    now: float | None = None,
    allow_unverified: bool = False,
) -> tuple[str, bytes]:
    """(file name, ZIP bytes) of the period's audit pack. PeriodError names the period."""
    from aims_agent.exporters.oscal import assessment_results

    start, end = period_bounds(period)
    label = period_label(period)
    now = time.time() if now is None else now
    state = ledger_check.check_store(
        store, evidence_dir=cfg.agent.evidence_dir, allow_unverified=allow_unverified
    )
    data = store.read(lambda conn: build(conn, cfg, period, None, now=now))
    files: dict[str, bytes] = {}
    for fmt in ("html", "md", "json"):
        text = renderer(fmt)(ledger_check.stamp_json(data, state))
        stamp = STAMPS.get(fmt)
        files[f"report-{label}.{fmt}"] = (stamp(text, state) if stamp else text).encode()
    doc = store.read(lambda conn: assessment_results(conn, cfg, start, end, None))
    files[f"oscal-assessment-results-{label}.json"] = _json(ledger_check.stamp_oscal(doc, state))
    signed = store.read(latest_signed_head)
    files["ledger.json"] = _json(
        {
            "verification": state.statement(),
            "signed_head": None if signed is None else asdict(signed),
        }
    )
    files["SHA256SUMS"] = "".join(
        f"{hashlib.sha256(body).hexdigest()}  {name}\n" for name, body in sorted(files.items())
    ).encode()
    stamp_time = datetime.fromtimestamp(now, UTC).timetuple()[:6]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in files.items():
            info = zipfile.ZipInfo(f"aims-audit-pack-{label}/{name}", date_time=stamp_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, body)
    return f"aims-audit-pack-{label}.zip", out.getvalue()


def _json(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()
