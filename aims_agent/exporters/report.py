"""Period reports: the management-review input of ISO/IEC 42001 clause 9.3.2.

    exporters.period                     the period: YYYY, YYYY-Qn, YYYY-MM or D..D
    build(conn, cfg, "2026-11")          the report as plain data (what its JSON holds)
    RENDERERS["html" | "json" | "md"]    data -> text
    write_report(store, cfg, "2026-11")  rendered, written atomically, recorded as evidence

Per model, per check and per control: check runs and their verdicts, with a daily series for
the trend charts (9.3.2 asks for trends in monitoring results); nonconformities opened, closed
and still open at the end of the period, with ages, time to close, recurrences and the state of
their corrective action (10.2); and the statement of applicability view (`exporters.soa`). A
nonconformity's status at the end of the period comes from its events; its clause 10.2 fields
(corrective action, review) are shown as last recorded: the store keeps no older value.

A written report is an attachment (kind `period_report`) of the report id
`RPT-<period>-<model|all>-<format>`, so its SHA-256 enters the evidence ledger. The attachment
is a copy under `reports/archive/` named by its hash and never overwritten: a later report of
the same period replaces the file at its usual path, and the earlier attachment still verifies.
The sections are computed in `report_sections`, rendered by `report_html` (one self-contained
file, inline SVG charts) and `report_md`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aims_agent import __version__
from aims_agent.errors import ReportWriteError, UnknownAliasError, UnknownModelError
from aims_agent.exporters import kind_sections, reviews
from aims_agent.exporters import report_findings as findings
from aims_agent.exporters import report_sections as sections
from aims_agent.exporters.canonical import iso
from aims_agent.exporters.evidence import save_attachment
from aims_agent.exporters.not_run import coverage_gaps, gap_dict
from aims_agent.exporters.period import period_bounds, period_label, previous_month
from aims_agent.exporters.report_html import to_html
from aims_agent.exporters.report_md import to_markdown
from aims_agent.exporters.report_sections import OUTCOMES
from aims_agent.exporters.soa import build_soa
from aims_agent.records import Attachment
from aims_agent.storage import queries

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from aims_agent.config import Config
    from aims_agent.storage.store import Store

REPORT_SCHEMA = "aims.period-report/1"
ATTACHMENT_KIND = "period_report"
JsonDict = dict[str, Any]


def to_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


RENDERERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "html": to_html,
    "json": to_json,
    "md": to_markdown,
}


def renderer(fmt: str) -> Callable[[Mapping[str, Any]], str]:
    try:
        return RENDERERS[fmt]
    except KeyError:
        raise UnknownAliasError("report format", fmt, RENDERERS) from None


def build(
    conn: Connection,
    cfg: Config,
    period: str,
    model: str | None = None,
    *,
    now: float | None = None,
) -> JsonDict:
    """The period report of all models (or one) as plain data: what the JSON report holds and
    the other formats render. A period that has not ended is reported up to `now` (default:
    the clock): evidence after it is left out, open nonconformities are aged to it."""
    start, end = period_bounds(period)
    label = period_label(period)
    t0, t1 = start.timestamp(), end.timestamp()
    now = time.time() if now is None else now
    as_of = min(t1, max(t0, now))
    configured = {m.name: m for m in cfg.models}
    if model is not None and model not in configured:
        known = ", ".join(sorted(configured))
        raise UnknownModelError(f"--model: unknown model {model!r}; known: {known}")
    runs = queries.runs_in(conn, t0, as_of, model)
    ncs = sections.load_nonconformities(conn, t0, as_of, model)
    ndays = sections.day_count(t0, as_of)
    # per check, the latest run that measured something: its metric and threshold are shown
    last = {(r.model, r.check_id): r.record_id for r in runs if r.value is not None}
    bodies = queries.bodies_of(conn, list(last.values()))
    names = [m.name for m in cfg.models if model in (None, m.name)]
    names += sorted(({r.model for r in runs} | {r.model for r, _ in ncs}) - set(names))
    models = [
        sections.model_section(
            name,
            configured.get(name),
            [r for r in runs if r.model == name],
            [n for n in ncs if n[0].model == name],
            bodies,
            last,
            (t0, as_of, ndays),
        )
        for name in names
    ]
    _coverage(models, runs, queries.first_runs(conn, model), t0, as_of)
    found = findings.breaches(conn, runs)
    for m in models:
        for c in m["checks"]:
            c["breaches"] = found.get((m["name"], c["id"]), {"total": 0, "items": []})
    _kind_sections(conn, models, t0, as_of)
    nc_keys = ("opened", "closed", "rejected", "open_at_end", "recurrences")
    return {
        "schema_version": REPORT_SCHEMA,
        "title": f"Management review input: AI monitoring results, {label}",
        "standard": "ISO/IEC 42001:2023 clause 9.3.2 (results of 9.1 and 10.2)",
        "period": {
            "label": label,
            "start": iso(t0),
            "end": iso(t1),
            "as_of": iso(as_of),
            "complete": now >= t1,
        },
        "scope": {"model": model, "models": names},
        "generated_at": iso(now),
        "generator": {
            "name": "aims-agent",
            "version": __version__,
            "config_sha256": cfg.fingerprint(),
        },
        "totals": {
            "runs": sum(m["totals"]["runs"] for m in models),
            **{o: sum(m["totals"][o] for m in models) for o in OUTCOMES},
            "nonconformities": {
                k: sum(m["nonconformities"]["summary"][k] for m in models) for k in nc_keys
            },
        },
        "serious_incidents": findings.serious_incidents(models, as_of),
        "management_reviews": reviews.in_period(conn, cfg.agent.evidence_dir, t0, t1),
        "models": models,
        "statement_of_applicability": build_soa(conn, cfg, model, until=as_of),
        "notes": sections.notes(models, now, t1, as_of),
    }


def _coverage(
    models: list[JsonDict],
    runs: list[Any],
    firsts: Mapping[tuple[str, str], float],
    t0: float,
    as_of: float,
) -> None:
    """Per check, the time it went without a valid run in the period (`coverage_gaps`)."""
    for m in models:
        for c in m["checks"]:
            every = c["schedule_seconds"]
            if not every:
                c["coverage"] = None
                continue
            mine = [
                (r.executed_at, r.outcome, r.not_run_reason)
                for r in runs
                if r.model == m["name"] and r.check_id == c["id"]
            ]
            gaps = coverage_gaps(
                mine,
                check_id=c["id"],
                every_seconds=every,
                start=t0,
                end=as_of,
                since=firsts.get((m["name"], c["id"])),
            )
            c["coverage"] = {
                "gaps": [gap_dict(g) for g in gaps],
                "uncovered_seconds": round(sum(g.seconds for g in gaps), 3),
            }


def _kind_sections(conn: Connection, models: list[JsonDict], t0: float, as_of: float) -> None:
    """Per check of a kind with a section (`kind_sections`): its windows over the period."""
    for m in models:
        for c in m["checks"]:
            c["section"] = None
            if c["kind"] not in kind_sections.KINDS:
                continue
            bodies = queries.check_bodies(conn, m["name"], c["id"], t0, as_of)
            rows = [w for b in bodies if (w := kind_sections.window(c["kind"], b)) is not None]
            c["section"] = kind_sections.period(c["kind"], rows)


# --- writing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class WrittenReport:
    report_id: str
    path: Path
    sha256: str
    bytes: int
    attachment_id: str


def report_id(label: str, model: str | None, fmt: str) -> str:
    """`RPT-2026-11-all-html`; a model name too long for the 64-character id is hashed."""
    rid = f"RPT-{label}-{model or 'all'}-{fmt}"
    if len(rid) <= 64:
        return rid
    return f"RPT-{label}-{hashlib.sha256(str(model).encode()).hexdigest()[:12]}-{fmt}"


def default_path(cfg: Config, label: str, model: str | None, fmt: str) -> Path:
    """`<evidence_dir>/reports/<period>[-<model>].<format>`"""
    return cfg.agent.evidence_dir / "reports" / f"{label}{f'-{model}' if model else ''}.{fmt}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, rename over `path`, fsync the folder:
    a reader sees the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if hasattr(os, "O_DIRECTORY"):
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_report(
    store: Store,
    cfg: Config,
    period: str,
    *,
    fmt: str = "html",
    model: str | None = None,
    out: Path | None = None,
    now: float | None = None,
    allow_unverified: bool = False,
) -> WrittenReport:
    """Verify the ledger (LedgerTamperedError if it does not, unless `allow_unverified`:
    then the report is stamped UNVERIFIED), then build, render and write one report, stating
    the ledger's head, and record it as an attachment (into the ledger)."""
    from aims_agent.exporters import ledger_check

    render = renderer(fmt)
    label = period_label(period)
    now = time.time() if now is None else now
    state = ledger_check.check_store(
        store, evidence_dir=cfg.agent.evidence_dir, allow_unverified=allow_unverified
    )
    data = store.read(lambda conn: build(conn, cfg, period, model, now=now))
    text = render(ledger_check.stamp_json(data, state))
    stamp = {"html": ledger_check.stamp_html, "md": ledger_check.stamp_markdown}.get(fmt)
    payload = (stamp(text, state) if stamp else text).encode()
    digest = hashlib.sha256(payload).hexdigest()
    rid = report_id(label, model, fmt)
    target = out or default_path(cfg, label, model, fmt)
    evidence = cfg.agent.evidence_dir
    archive = evidence / "reports" / "archive" / f"{rid}-{digest[:16]}.{fmt}"
    path = target
    try:
        write_atomic(target, payload)
        path = archive
        if not archive.is_file():  # the archived copy, named by content, is never rewritten
            write_atomic(archive, payload)
    except OSError as exc:
        raise ReportWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc
    att = Attachment(
        attachment_id=f"ATT-{uuid.uuid4().hex}",
        kind=ATTACHMENT_KIND,
        path=archive.relative_to(evidence).as_posix(),
        sha256=digest,
        bytes=len(payload),
    )
    store.submit(save_attachment(att, rid, now)).result()
    return WrittenReport(
        report_id=rid,
        path=target,
        sha256=digest,
        bytes=len(payload),
        attachment_id=att.attachment_id,
    )


def write_monthly(store: Store, cfg: Config, *, now: float | None = None) -> list[WrittenReport]:
    """The scheduled job: last month's report of all models, in each configured format (stamped
    UNVERIFIED if the evidence ledger does not verify)."""
    now = time.time() if now is None else now
    period = previous_month(now)
    # written even on a broken chain, stamped UNVERIFIED: the review gets the report and the news
    return [
        write_report(store, cfg, period, fmt=fmt, now=now, allow_unverified=True)
        for fmt in cfg.agent.reports.formats
    ]
