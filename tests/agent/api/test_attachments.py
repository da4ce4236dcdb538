"""Attachments are served as what they are, with headers that keep a browser from running more
than the file should: the period report in each format, and Evidently's script page sandboxed."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from aims_agent.errors import ReportError
from aims_agent.exporters.evidence import save_attachment
from aims_agent.exporters.evidently_report import KIND, escape_inline_data
from aims_agent.exporters.report import write_report
from aims_agent.records import Attachment

XSS = "</script><script>document.title='X'</script><!--"


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [
        ("html", "text/html; charset=utf-8"),
        ("md", "text/markdown; charset=utf-8"),
        ("json", "application/json"),
    ],
)
def test_period_reports_are_served_as_their_format_with_no_script_allowed(api, fmt, media_type):
    period = datetime.now(UTC).strftime("%Y-%m")
    written = write_report(api.runtime.store, api.runtime.cfg, period, fmt=fmt)
    r = api.get(f"/v1/attachments/{written.attachment_id}")
    assert r.status_code == 200
    assert r.headers["content-type"] == media_type  # was text/html for all three
    assert r.headers["x-content-type-options"] == "nosniff"
    csp = [d.strip() for d in r.headers["content-security-policy"].split(";")]
    assert "sandbox" in csp and "default-src 'none'" in csp
    assert not any(d.startswith("script-src") for d in csp)
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("inline; filename=") and disposition.endswith(f'.{fmt}"')
    assert hashlib.sha256(r.content).hexdigest() == written.sha256


def _attach(api, name: str, kind: str, body: bytes) -> str:
    evidence = api.runtime.cfg.agent.evidence_dir
    (evidence / "attachments").mkdir(parents=True, exist_ok=True)
    (evidence / "attachments" / name).write_bytes(body)
    att = Attachment(
        attachment_id="AT-1",
        kind=kind,
        path=f"attachments/{name}",
        sha256=hashlib.sha256(body).hexdigest(),
        bytes=len(body),
    )
    api.runtime.store.submit(save_attachment(att, "MR-1", 0.0)).result()
    return att.attachment_id


def test_evidentlys_page_runs_sandboxed_and_reaches_nothing(api):
    att = _attach(api, "r.html", KIND, b"<html></html>")
    r = api.get(f"/v1/attachments/{att}")
    csp = [d.strip() for d in r.headers["content-security-policy"].split(";")]
    assert "sandbox allow-scripts" in csp and "default-src 'none'" in csp
    assert "allow-same-origin" not in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_a_file_name_is_made_safe_and_an_unknown_suffix_downloads(api):
    att = _attach(api, 'a"b\r\n<x>.bin', "other", b"\x00\x01")
    r = api.get(f"/v1/attachments/{att}")
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"] == 'attachment; filename="a_b_x_.bin"'


def test_evidentlys_data_lines_are_escaped_for_an_inline_script():
    page = (
        "<html><head><script>\n"
        f'    var metric_ab12 = {{"name": "Report", "v": "{XSS}", "n": NaN}};\n'
        f'    var additional_graphs_metric_ab12 = {{"g": ["{XSS}", "a&b"]}};\n'
        "</script></head><body><script>var global = globalThis</script></body></html>"
    )
    out = escape_inline_data(page)
    data = out.split("<script>", 1)[1].split("</script>", 1)[0]
    assert "</" not in data and "<!--" not in data and "<script" not in data
    assert out.count("</script>") == 2  # the page's own, nothing else
    assert "\\u003c/script\\u003e" in data and "NaN" in data and "a\\u0026b" in data


def test_a_page_whose_data_is_not_where_expected_is_refused():
    with pytest.raises(ReportError, match="0 data lines"):
        escape_inline_data(f"<script>var x = {{}};</script>{XSS}")
