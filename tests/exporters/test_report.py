"""Period reports from evidence written by the real writers (record_run, the lifecycle)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any, get_args

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from aims_agent.agent.cli import main
from aims_agent.agent.scheduler import MONTHLY_REPORTS, build_scheduler, monthly_reports
from aims_agent.config import ReportFormat, ReportsConfig, parse_config
from aims_agent.controls import controls_for
from aims_agent.errors import AimsError, PeriodError, UnknownAliasError, UnknownModelError
from aims_agent.exporters import report
from aims_agent.exporters.evidence import EvidenceContext
from aims_agent.exporters.ledger_verify import verify
from aims_agent.exporters.lifecycle import apply, decode_change
from aims_agent.exporters.period import period_bounds, previous_month
from aims_agent.exporters.report import (
    RENDERERS,
    build,
    report_id,
    to_html,
    to_json,
    to_markdown,
    write_atomic,
    write_report,
)
from aims_agent.records import Assessment, CheckRun, Measurement, Threshold, WindowInfo
from aims_agent.storage.schema import attachments, evidence_ledger
from aims_agent.storage.store import Store
from tests.conftest import base_config, recorded, worker

DAY = 86400.0
NOV = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
DEC_15 = datetime(2026, 12, 15, tzinfo=UTC).timestamp()
ACTION = {
    "description": "<b>retrain</b> & redeploy",
    "owner": "ml-team",
    "due_date": "2026-11-10",
}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- periods ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-11", utc(2026, 11, 1), utc(2026, 12, 1)),
        ("2026-12", utc(2026, 12, 1), utc(2027, 1, 1)),
        ("2026-Q4", utc(2026, 10, 1), utc(2027, 1, 1)),
        ("2026-q1", utc(2026, 1, 1), utc(2026, 4, 1)),
        ("2026", utc(2026, 1, 1), utc(2027, 1, 1)),
        ("2026-11-01..2026-11-15", utc(2026, 11, 1), utc(2026, 11, 16)),
        (" 2026-11-03..2026-11-03 ", utc(2026, 11, 3), utc(2026, 11, 4)),
    ],
)
def test_periods_are_utc_half_open_ranges(text, start, end):
    assert period_bounds(text) == (start, end)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-13",
        "2026-00",
        "2026-Q5",
        "nov",
        "26-11",
        "2026-11-15..2026-11-01",
        "2026-02-30..2026-03-01",
    ],
)
def test_a_bad_period_is_a_value_error_naming_the_option(text):
    with pytest.raises(PeriodError) as info:
        period_bounds(text)
    assert isinstance(info.value, ValueError) and isinstance(info.value, AimsError)
    assert str(info.value).startswith("--period: ")
    assert "YYYY-MM" in str(info.value) or "range" in str(info.value)


@given(st.integers(1970, 2200), st.integers(1, 12))
def test_every_month_starts_on_the_first_and_ends_where_the_next_begins(year, month):
    start, end = period_bounds(f"{year}-{month:02d}")
    assert start.day == 1 and end.day == 1 and 28 <= (end - start).days <= 31
    assert previous_month(end.timestamp() + 300) == f"{year:04d}-{month:02d}"


def test_previous_month_crosses_the_year():
    assert previous_month(utc(2027, 1, 1, 0, 5).timestamp()) == "2026-12"
    assert previous_month(utc(2026, 12, 1, 0, 5).timestamp()) == "2026-11"


def test_report_ids_fit_the_attachment_column():
    assert report_id("2026-11", None, "html") == "RPT-2026-11-all-html"
    assert report_id("2026-11", "m1", "json") == "RPT-2026-11-m1-json"
    long = report_id("2026-11-01..2026-11-15", "m" * 100, "html")
    assert len(long) <= 64 and long.startswith("RPT-2026-11-01..2026-11-15-")


# --- evidence --------------------------------------------------------------------------------


def _context(cfg, check) -> EvidenceContext:
    m = cfg.models[0]
    return EvidenceContext(
        agent_version="0.1.0",
        config_hash=cfg.fingerprint(),
        environment="test",
        ai_system_id=m.ai_system_id,
        model_version=m.version,
        reference_id="reference.csv",
        reference_fingerprint="f" * 64,
        n_reference=2000,
        schedule_seconds=check.schedule_seconds,
        definition=f"{check.kind} definition",
        severity=check.severity,
    )


def _run(check, verdict: str, t: float, value: float | None = None) -> CheckRun:
    error = "ValueError: boom" if verdict == "error" else None
    assessments: tuple[Assessment, ...] = ()
    if value is not None:
        head = Measurement(
            check_id=check.id,
            kind=check.kind,
            metric="share",
            value=value,
            method="share",
            headline=True,
            n_current=500,
            threshold=Threshold(breach=0.5, warn=0.4),
        )
        assessments = (Assessment(measurement=head, verdict=verdict),)  # type: ignore[arg-type]
    return CheckRun(
        run_id=f"{check.id}-{t}",
        model="m1",
        check_id=check.id,
        kind=check.kind,
        started_at=t,
        finished_at=t + 1,
        window=WindowInfo(start=t - 3600, end=t, seen=900, sampled=500),
        assessments=assessments,
        verdict="insufficient_data" if error else verdict,  # type: ignore[arg-type]
        controls=controls_for(check.kind, check.controls),
        error=error,
    )


def make_evidence(tmp: Path, reference: Path, storage_url: str | None = None) -> SimpleNamespace:
    """November 2026: drift runs of every verdict, a drift nonconformity opened, recurred and
    worked up to corrective action (past due at the end); a quality nonconformity carried in
    from October and closed; a second one opened and rejected; runs outside the month."""
    data = base_config(reference, tmp / "ev")
    data["agent"]["storage_url"] = storage_url
    data["models"][0]["checks"].append(
        {"id": "quality", "kind": "data_quality", "schedule_seconds": 3600}
    )
    cfg = parse_config(data, base_dir=tmp)
    (tmp / "agent.yaml").write_text(yaml.safe_dump(data))
    drift, quality = cfg.models[0].checks
    store = Store(cfg.storage_url)

    def record(check, verdict, day, hour, value=None):
        run = _run(check, verdict, NOV + day * DAY + hour * 3600, value)
        return store.submit(recorded(run, _context(cfg, check))).result()

    def work(nc_id, change, day):
        store.submit(
            apply(
                nc_id,
                decode_change(json.dumps(change).encode()),
                actor=worker(change),
                now=NOV + day * DAY,
            )
        ).result()

    _, nc_q, _ = record(quality, "breach", -12, 1, 0.7)  # 20 October
    record(drift, "pass", -7, 1, 0.05)
    record(drift, "pass", 0, 1, 0.1)
    record(drift, "pass", 0, 2, 0.2)
    record(quality, "pass", 0, 3, 0.0)
    record(drift, "warn", 1, 1, 0.45)
    record(drift, "insufficient_data", 1, 2, 0.0)
    _, nc_d, opened = record(drift, "breach", 2, 1, 0.8)
    assert opened
    assert record(drift, "breach", 2, 2, 0.9)[1] == nc_d
    record(drift, "error", 3, 1)
    cause = {"root_cause": "upstream <schema> change", "method": "5 whys"}
    work(nc_d, {"status": "investigating", "reaction": {"action": "rolled back"}}, 4)
    work(nc_d, {"cause_analysis": cause}, 4.5)
    incident = {"possible": True, "kind": "general", "aware_at": "2026-11-03T12:00:00Z"}
    work(nc_d, {"serious_incident": incident}, 4.6)
    work(nc_d, {"status": "corrective_action", "corrective_action": ACTION}, 5)
    done = {**ACTION, "status": "done"}
    work(nc_q, {"status": "investigating"}, 7)
    work(nc_q, {"status": "corrective_action", "corrective_action": done}, 8)
    work(nc_q, {"status": "verifying"}, 9)
    review = {"effective": True, "verified_by": "qa", "evidence": "three passing runs"}
    work(nc_q, {"status": "closed", "effectiveness_review": review}, 11)
    _, nc_q2, _ = record(quality, "breach", 14, 1, 0.6)
    work(nc_q2, {"status": "rejected", "justification": "sensor outage"}, 19)
    record(drift, "pass", 31, 1, 0.1)  # 2 December
    return SimpleNamespace(
        cfg=cfg, store=store, config=tmp / "agent.yaml", nc_d=nc_d, nc_q=nc_q, nc_q2=nc_q2
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def ev(request, tmp_path_factory):
    """The evidence, once in SQLite and once in PostgreSQL (JSON paths differ by dialect)."""
    tmp = tmp_path_factory.mktemp("report")
    reference = tmp / "reference.csv"
    reference.write_text("x1,x2,x3,c1,prediction,score,label,group\n1,1,1,a,1,0.5,1,g1\n")
    url, server, name = None, None, None
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres")
        name = server.create_database()
        url = server.url(name)
    evidence = make_evidence(tmp, reference, url)
    yield evidence
    evidence.store.close()
    if server is not None:
        server.drop_database(name)


def november(ev, model=None, period="2026-11", now=DEC_15) -> dict[str, Any]:
    return ev.store.read(lambda conn: build(conn, ev.cfg, period, model, now=now))


# --- building --------------------------------------------------------------------------------


def test_counts_per_check_and_control_are_those_of_the_period(ev):
    data = november(ev)
    assert data["period"] == {
        "label": "2026-11",
        "start": "2026-11-01T00:00:00Z",
        "end": "2026-12-01T00:00:00Z",
        "as_of": "2026-12-01T00:00:00Z",
        "complete": True,
    }
    (m,) = data["models"]
    assert m["name"] == "m1" and m["version"] == "1.0" and m["versions_seen"] == ["1.0"]
    checks = {c["id"]: c for c in m["checks"]}
    assert checks["drift"]["runs"] == 7
    assert checks["drift"]["counts"] == {
        "pass": 2, "warn": 1, "breach": 2, "insufficient_data": 1, "error": 1, "not_run": 0
    }  # fmt: skip
    assert checks["quality"]["counts"] == {
        "pass": 1, "warn": 0, "breach": 1, "insufficient_data": 0, "error": 0, "not_run": 0
    }  # fmt: skip
    assert checks["drift"]["last_outcome"] == "error"
    assert checks["quality"]["threshold"]["breach"] == 0.5
    assert m["totals"] == {"runs": 9, "pass": 3, "warn": 1, "breach": 3, "insufficient_data": 1,
                           "error": 1, "not_run": 0}  # fmt: skip
    assert data["totals"]["runs"] == 9
    # a drift run evidences A.6.2.6 (primary) and 9.1; a quality run A.7.4 and A.6.2.6 too
    controls = {c["id"]: c for c in m["controls"]}
    assert controls["A.6.2.6"]["runs"] == 9 and controls["A.6.2.6"]["checks"] == [
        "drift",
        "quality",
    ]
    assert controls["9.1"]["runs"] == 7 and controls["A.7.5"]["runs"] == 2
    assert controls["A.7.4"]["counts"]["breach"] == 3
    assert controls["A.6.2.6"]["title"] == "AI system operation and monitoring"
    assert [c["id"] for c in m["controls"]][:1] == ["9.1"]  # clauses first, then Annex A in order


def test_the_daily_series_has_a_day_for_each_day_of_the_period(ev):
    drift = november(ev)["models"][0]["checks"][0]
    series = drift["series"]
    assert len(series) == 30 and series[0]["date"] == "2026-11-01"
    assert series[-1]["date"] == "2026-11-30"
    assert (series[0]["runs"], series[0]["pass"]) == (2, 2)
    assert series[0]["value_mean"] == pytest.approx(0.15) and series[0]["value_max"] == 0.2
    assert (series[2]["breach"], series[2]["value_mean"]) == (2, pytest.approx(0.85))
    assert (series[3]["error"], series[3]["value_mean"]) == (1, None)
    assert sum(d["runs"] for d in series) == drift["runs"]


def test_nonconformities_opened_closed_open_with_ages_and_time_to_close(ev):
    nc = november(ev)["models"][0]["nonconformities"]
    items = {i["nc_id"]: i for i in nc["items"]}
    assert set(items) == {ev.nc_d, ev.nc_q, ev.nc_q2}
    d, q, q2 = items[ev.nc_d], items[ev.nc_q], items[ev.nc_q2]
    assert (d["status_at_end"], d["opened_in_period"], d["closed_at"]) == (
        "corrective_action",
        True,
        None,
    )
    assert d["age_days"] == pytest.approx(30 - 2 - 1 / 24, abs=0.01)
    assert (d["recurrences_in_period"], d["recurrences_total"]) == (1, 1)
    assert d["corrective_action"] == {**ACTION, "status": "planned"}
    assert d["corrective_action_overdue"] is True  # due 10 November, not done
    assert d["reaction"] == {"action": "rolled back", "by": None, "at": None}
    assert d["controls"][0] == "A.6.2.6"
    # carried in from October, closed on 12 November
    assert (q["opened_in_period"], q["status_at_end"]) == (False, "closed")
    assert q["closed_at"] == "2026-11-12T00:00:00Z"
    assert q["days_to_close"] == pytest.approx(23 - 1 / 24 - 1 / 86400, abs=0.01)
    assert q["effectiveness_review"]["effective"] is True
    assert q["corrective_action_overdue"] is False
    assert (q2["status_at_end"], q2["rejection_justification"]) == ("rejected", "sensor outage")
    s = nc["summary"]
    assert {k: s[k] for k in ("carried_in", "opened", "closed", "rejected", "open_at_end")} == {
        "carried_in": 1,
        "opened": 2,
        "closed": 1,
        "rejected": 1,
        "open_at_end": 1,
    }
    assert s["recurrences"] == 1
    assert s["by_status_at_end"]["corrective_action"] == 1
    assert s["days_to_close"]["n"] == 1 and s["days_to_close"]["max"] == q["days_to_close"]
    assert s["corrective_actions"] == {
        "recorded": 2,
        "done": 1,
        "overdue": 1,
        "missing_on_open": 0,
    }


def test_a_nonconformity_is_shown_as_it_stood_at_the_end_of_the_period(ev):
    data = november(ev, period="2026-11-01..2026-11-04")
    items = {i["nc_id"]: i for i in data["models"][0]["nonconformities"]["items"]}
    d = items[ev.nc_d]
    assert (d["status_at_end"], d["status_now"]) == ("open", "corrective_action")
    assert d["age_days"] == pytest.approx(4 - 2 - 1 / 24, abs=0.01)
    assert ev.nc_q2 not in items  # opened later
    assert items[ev.nc_q]["status_at_end"] == "open" and items[ev.nc_q]["closed_at"] is None
    # December: the quality records were closed or rejected in November, so not part of it
    dec = november(ev, period="2026-12")
    assert [i["nc_id"] for i in dec["models"][0]["nonconformities"]["items"]] == [ev.nc_d]


def test_an_unfinished_period_is_reported_up_to_now(ev):
    now = NOV + 3.5 * DAY
    data = november(ev, now=now)
    assert data["period"]["complete"] is False and data["period"]["as_of"] == "2026-11-04T12:00:00Z"
    assert len(data["models"][0]["checks"][0]["series"]) == 4
    assert any("has not ended" in n for n in data["notes"])


def test_one_model_or_an_unknown_one(ev):
    assert november(ev, model="m1")["scope"] == {"model": "m1", "models": ["m1"]}
    with pytest.raises(UnknownModelError, match="--model: unknown model 'nope'; known: m1"):
        november(ev, model="nope")


def test_the_report_carries_the_statement_of_applicability(ev):
    soa = november(ev)["statement_of_applicability"]
    (m,) = soa["models"]
    a626 = next(c for c in m["controls"] if c["id"] == "A.6.2.6")
    # the latest of its checks' runs before the end: quality's breach of 15 November
    assert a626["applicable"] and a626["latest_status"] == "breach"
    assert a626["latest_evidence"] == "2026-11-15T01:00:00Z"
    assert a626["open_nonconformities"] == [ev.nc_d]


# --- rendering -------------------------------------------------------------------------------


class _Balanced(HTMLParser):
    VOID = {"meta", "br"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "action")]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.urls += [v or "" for k, v in attrs if k in ("src", "href")]

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()


def test_html_is_one_self_contained_file(ev):
    text = to_html(november(ev))
    assert text.startswith("<!DOCTYPE html>")
    assert (
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">" in text
    )
    for forbidden in ("<script", "http://", "https://", "@import", "url(", "<link", "<img"):
        assert forbidden not in text, forbidden
    assert "@media print" in text and "@page" in text
    parser = _Balanced()
    parser.feed(text)
    assert parser.stack == [] and parser.urls and all(u.startswith("#") for u in parser.urls)
    assert {u[1:] for u in parser.urls} <= set(re.findall(r' id="([^"]+)"', text))
    # one chart per check and per control, each with its accessible title
    m = november(ev)["models"][0]
    assert text.count("<svg ") == len(m["checks"]) + len(m["controls"])
    for needle in ("Model m1", "Nonconformities", "A.6.2.6", "A.10.4", ev.nc_d, "OVERDUE"):
        assert needle in text, needle
    assert "&lt;b&gt;retrain&lt;/b&gt; &amp; redeploy" in text and "<b>retrain" not in text


def test_markdown_and_json_say_the_same(ev):
    data = november(ev)
    assert json.loads(to_json(data)) == data
    md = to_markdown(data)
    assert md.startswith("# Management review input")
    for needle in (
        "## Model m1 1.0",
        "| drift | drift |",
        ev.nc_d,
        "## Statement of applicability",
    ):
        assert needle in md, needle
    assert "OVERDUE" in md and "| A.2.2 | AI policy | no |" in md


def test_formats_come_from_one_registry():
    from aims_agent.agent.commands.report import FORMATS

    assert set(RENDERERS) == set(get_args(ReportFormat)) == set(FORMATS) == {"html", "json", "md"}
    assert report.renderer("md") is to_markdown
    with pytest.raises(UnknownAliasError, match="known: html, json, md"):
        report.renderer("pdf")


# --- writing ---------------------------------------------------------------------------------


def test_atomic_write_leaves_the_old_file_whole_when_it_fails(tmp_path, monkeypatch):
    path = tmp_path / "r" / "report.html"
    write_atomic(path, b"old")
    assert path.read_bytes() == b"old"

    def fail(*_: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        write_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # no temp file left


def test_a_written_report_is_an_attachment_in_the_ledger(ev):
    first = write_report(ev.store, ev.cfg, "2026-11", fmt="json", now=DEC_15)
    evidence = ev.cfg.agent.evidence_dir
    assert first.path == evidence / "reports" / "2026-11.json"
    assert hashlib.sha256(first.path.read_bytes()).hexdigest() == first.sha256
    assert json.loads(first.path.read_text())["period"]["label"] == "2026-11"
    second = write_report(ev.store, ev.cfg, "2026-11", fmt="json", now=DEC_15 + 60)
    assert second.sha256 != first.sha256  # generated later: replaces the file at its path
    rows = ev.store.read(
        lambda c: c.execute(
            select(attachments).where(attachments.c.monitoring_record_id == "RPT-2026-11-all-json")
        ).all()
    )
    assert {(r.kind, r.sha256, r.bytes) for r in rows} == {
        ("period_report", w.sha256, w.bytes) for w in (first, second)
    }
    assert all(not r.path.startswith("/") and r.path.startswith("reports/archive/") for r in rows)
    # both are chained in the ledger, and both still verify against their files
    chained = ev.store.read(
        lambda c: (
            c.execute(
                select(evidence_ledger.c.ref_id).where(evidence_ledger.c.kind == "attachment")
            )
            .scalars()
            .all()
        )
    )
    assert {first.attachment_id, second.attachment_id} <= set(chained)
    result = ev.store.read(lambda c: verify(c, evidence_dir=evidence))
    assert result.entries > 0
    assert result.ok, result.problems


def test_the_cli_writes_the_report_and_prints_its_hash(ev, tmp_path, capsys):
    out = tmp_path / "elsewhere" / "nov.md"
    args = ["report", "--config", str(ev.config), "--period", "2026-11", "--format", "md"]
    assert main([*args, "--out", str(out)]) == 0
    sha, path = capsys.readouterr().out.split()
    assert Path(path) == out and hashlib.sha256(out.read_bytes()).hexdigest() == sha
    assert main(["report", "--config", str(ev.config), "--period", "2026-13"]) == 2
    assert "--period: '2026-13'" in capsys.readouterr().err
    assert main([*args, "--model", "nope"]) == 2
    assert "--model: unknown model 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args[:-1], "pdf"])
    assert "invalid choice: 'pdf'" in capsys.readouterr().err


# --- scheduling ------------------------------------------------------------------------------


def test_the_monthly_report_is_scheduled_by_default_and_can_be_switched_off(ev):
    scheduler = build_scheduler(ev.cfg, lambda *_: None, store=ev.store)
    job = scheduler.get_job(MONTHLY_REPORTS)
    assert job is not None and job.func is monthly_reports
    fields = {f.name: str(f) for f in job.trigger.fields}
    assert (fields["day"], fields["hour"], fields["minute"]) == ("1", "0", "5")
    nxt = job.trigger.get_next_fire_time(None, utc(2026, 11, 20, 10))
    assert nxt == utc(2026, 12, 1, 0, 5)
    assert build_scheduler(ev.cfg, lambda *_: None).get_job(MONTHLY_REPORTS) is None
    agent = ev.cfg.agent.model_copy(update={"reports": ReportsConfig(monthly=False)})
    off = ev.cfg.model_copy(update={"agent": agent})
    assert build_scheduler(off, lambda *_: None, store=ev.store).get_job(MONTHLY_REPORTS) is None


def test_the_monthly_job_writes_last_months_html_and_json(ev):
    written = report.write_monthly(ev.store, ev.cfg, now=utc(2026, 12, 1, 0, 5).timestamp())
    assert [(w.report_id, w.path.name) for w in written] == [
        ("RPT-2026-11-all-html", "2026-11.html"),
        ("RPT-2026-11-all-json", "2026-11.json"),
    ]


def test_a_period_without_evidence_still_renders(tmp_path, reference_csv):
    cfg = parse_config(base_config(reference_csv, tmp_path / "ev"), base_dir=tmp_path)
    store = Store(cfg.storage_url)
    try:
        data = store.read(lambda c: build(c, cfg, "2030-01", now=NOV))  # not begun yet
    finally:
        store.close()
    assert data["period"]["complete"] is False and data["totals"]["runs"] == 0
    (m,) = data["models"]
    assert len(m["checks"][0]["series"]) == 1 and m["nonconformities"]["items"] == []
    assert any("no check ran" in n for n in data["notes"])
    for render in RENDERERS.values():
        assert "m1" in render(data)


def test_a_flat_negative_series_without_threshold_still_draws():
    from aims_agent.exporters.report_svg import chart

    day = {"date": "2026-11-01", "runs": 1, "value_mean": -0.2, "value_max": -0.2}
    day |= dict.fromkeys(("pass", "warn", "breach", "insufficient_data", "error"), 0) | {"pass": 1}
    # an r2 of -0.2 every day and no threshold: no division by zero
    assert "<svg" in chart([day], label="r2", values=True)


def test_the_report_says_what_happened_and_who_did_each_step(ev):
    data = november(ev)
    (incident,) = data["serious_incidents"]
    assert incident["nc_id"] == ev.nc_d
    assert incident["art73_reporting_deadline"] == "2026-11-18T12:00:00Z"
    drift = next(c for c in data["models"][0]["checks"] if c["id"] == "drift")
    assert (drift["worst_outcome"], drift["last_outcome"]) == ("breach", "error")
    assert drift["breaches"]["total"] == 2
    assert drift["breaches"]["items"][0]["observed"] == "share = 0.8"
    assert drift["breaches"]["items"][0]["expected"] == (
        "share: breach when value >= breach, breach = 0.5"
    )
    items = {i["nc_id"]: i for i in data["models"][0]["nonconformities"]["items"]}
    q = items[ev.nc_q]
    assert q["action_done"]["by"] == "alice" and q["action_done"]["by_email"] == "alice@example.org"
    assert q["reviewed"]["by"] == "bob" and q["closed"]["by"] == "bob"
    assert [h["by"] for h in q["history"]][0] == "aims-agent"
    md = to_markdown(data)
    assert md.index("## Possible serious incidents") < md.index("## Summary")
    assert "**2026-11-18T12:00:00Z**" in md
    assert "done as recorded by alice <alice@example.org> (person)" in md
    assert "recorded by bob <bob@example.org> (person)" in md
    assert "- closed by bob <bob@example.org> (person)" in md
    assert "root cause (b): upstream <schema> change (5 whys)" in md
    assert "| share = 0.8 | share: breach when value >= breach, breach = 0.5 |" in md
    html = to_html(data)
    assert html.index("Possible serious incidents") < html.index('id="summary"')
    assert "upstream &lt;schema&gt; change" in html and "<schema>" not in html
    assert "alice &lt;alice@example.org&gt; (person" in html
    assert '<span class="v v-breach">breach</span></td><td><span class="v v-error">' in html
