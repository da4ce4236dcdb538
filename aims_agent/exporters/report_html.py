"""The period report as one self-contained HTML file: inline CSS (for print too), inline SVG.

No script, web font, image or link leaves the file: the Content-Security-Policy in its head
allows only inline styles and `data:` images, so a browser that opens it makes no request. The
charts come from `report_svg`; every colour is paired with a word, so the printed page reads in
grey too. Links are in-page fragments only.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aims_agent.exporters.report_sections import OUTCOMES
from aims_agent.exporters.report_svg import COLOURS, chart

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
  color: #1b1b1b; margin: 0 auto; max-width: 1180px; padding: 24px 32px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 8px; border-bottom: 2px solid #1b1b1b; padding-bottom: 4px; }
h3 { font-size: 16px; margin: 22px 0 6px; }
h4 { font-size: 14px; margin: 14px 0 4px; }
.sub { color: #555; margin: 0 0 16px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; font-size: 13px; }
th, td { border: 1px solid #c8c8c8; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
table.meta { width: auto; }
table.meta th { width: 13em; }
tr.group th { background: #e4e8ee; }
tr.no td { color: #666; }
.v { display: inline-block; padding: 0 6px; border-radius: 3px; font-size: 12px;
  font-weight: 600; color: #fff; white-space: nowrap; }
.v-pass { background: #2e7d32; } .v-warn { background: #f9a825; color: #1b1b1b; }
.v-breach { background: #c62828; } .v-insufficient_data { background: #9e9e9e; }
.v-error { background: #6a1b9a; } .v-none { background: #fff; color: #555; border: 1px solid #999; }
.late { color: #c62828; font-weight: 600; }
figure { margin: 8px 0 16px; }
figcaption { font-size: 12px; color: #444; }
.legend span { margin-right: 12px; white-space: nowrap; }
.sw { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: -1px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr));
  gap: 4px 18px; }
.small { font-size: 12px; color: #444; }
svg text { font: 10px system-ui, Arial, sans-serif; fill: #333; }
nav.toc { font-size: 13px; margin: 12px 0; } nav.toc ol { margin: 2px 0; padding-left: 22px; }
a { color: #1f4e99; }
footer { margin-top: 36px; font-size: 12px; color: #555; border-top: 1px solid #ccc;
  padding-top: 8px; }
* { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  h2 { break-before: auto; break-after: avoid; }
  h3, h4 { break-after: avoid; }
  figure, tr, .nc-summary { break-inside: avoid; }
  thead { display: table-header-group; }
  section.model, section.soa { break-before: page; }
  .grid { display: block; }
  nav.toc { display: none; }
}
"""


def _e(value: object) -> str:
    return "\u2014" if value is None or value == "" else html.escape(str(value))


def _badge(outcome: object) -> str:
    key = str(outcome) if outcome in COLOURS else "none"
    label = "none" if outcome is None else str(outcome).replace("_", " ")
    return f'<span class="v v-{key}">{html.escape(label)}</span>'


def _num(value: object, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return _e(value)


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = ()) -> str:
    right = set(numeric)
    cls = [' class="n"' if i in right else "" for i in range(len(head))]
    out = ["<table><thead><tr>"]
    out += [f"<th{c}>{_e(h)}</th>" for h, c in zip(head, cls, strict=True)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        cells = "".join(f"<td{c}>{v}</td>" for v, c in zip(row, cls, strict=True))
        out.append(f"<tr>{cells}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _legend() -> str:
    items = "".join(
        f'<span><i class="sw" style="background:{COLOURS[o]}"></i>{o.replace("_", " ")}</span>'
        for o in OUTCOMES
    )
    return f'<div class="legend small">{items}</div>'


def _counts(d: Mapping[str, Any]) -> list[str]:
    counts = d.get("counts", d)
    return [str(d.get("runs", 0)), *(str(counts.get(o, 0)) for o in OUTCOMES)]


_COUNT_HEAD = ["runs", "pass", "warn", "breach", "insufficient data", "error", "not run"]


def _summary(data: Mapping[str, Any]) -> str:
    rows = []
    for m in data["models"]:
        s = m["nonconformities"]["summary"]
        rows.append(
            [
                f"<strong>{_e(m['name'])}</strong>",
                _e(m["version"]),
                *_counts({"runs": m["totals"]["runs"], "counts": m["totals"]}),
                *(str(s[k]) for k in ("opened", "closed", "rejected", "open_at_end")),
                str(s["recurrences"]),
            ]
        )
    head = ["model", "version", *_COUNT_HEAD, "NCs opened", "closed", "rejected", "open at end"]
    return _table([*head, "recurrences"], rows, numeric=range(2, 13))


def _checks(m: Mapping[str, Any]) -> str:
    rows = [
        [
            _e(c["id"]),
            _e(c["kind"]),
            _e(", ".join(c["controls"])),
            *_counts(c),
            _e(c["last_run"]),
            _badge(c["last_outcome"]),
            _num(c["last_value"]),
        ]
        for c in m["checks"]
    ]
    head = ["check", "kind", "controls", *_COUNT_HEAD, "last run", "last verdict", "last value"]
    out = [_table(head, rows, numeric=range(3, 9))]
    for c in m["checks"]:
        t = c.get("threshold") or {}
        rule = f", breaches when {t['breaches_when']} ({t.get('breach')})" if t else ""
        label = f"Check {c['id']} of {m['name']}: daily verdicts and mean {c.get('metric')}"
        out.append(
            f"<figure>{chart(c['series'], label=label, threshold=t, values=True)}"
            f"<figcaption>{_e(c['id'])} ({_e(c['kind'])}): daily runs by verdict; above, the "
            f"daily mean of {_e(c.get('metric'))}{_e(rule)}.</figcaption></figure>"
        )
    return "".join(out) + _legend()


def _controls(m: Mapping[str, Any]) -> str:
    rows = [
        [
            f"<strong>{_e(c['id'])}</strong>",
            _e(c["title"]),
            _e(", ".join(c["checks"])),
            *_counts(c),
            _badge(c["last_outcome"]),
        ]
        for c in m["controls"]
    ]
    out = [_table(["control", "title", "checks", *_COUNT_HEAD, "last verdict"], rows, range(3, 9))]
    figs = [
        f"<figure>{chart(c['series'], label=str(c['id']) + ': daily verdicts', width=400)}"
        f"<figcaption>{_e(c['id'])} {_e(c['title'])}</figcaption></figure>"
        for c in m["controls"]
    ]
    return "".join(out) + f'<div class="grid">{"".join(figs)}</div>'


def _action(i: Mapping[str, Any]) -> str:
    a = i.get("corrective_action")
    if not a:
        return '<span class="small">not recorded</span>'
    late = ' <span class="late">OVERDUE</span>' if i.get("corrective_action_overdue") else ""
    return (
        f'{_e(a.get("description"))}<br><span class="small">owner {_e(a.get("owner"))}, due '
        f"{_e(a.get('due_date'))}, {_e(a.get('status'))}</span>{late}"
    )


def _nonconformities(m: Mapping[str, Any]) -> str:
    s = m["nonconformities"]["summary"]
    ttc, age, ca = s["days_to_close"], s["age_days_open"], s["corrective_actions"]
    pairs = [
        ("open at the start (carried in)", s["carried_in"]),
        ("opened", s["opened"]),
        ("closed", s["closed"]),
        ("rejected (not a nonconformity)", s["rejected"]),
        ("still open at the end", s["open_at_end"]),
        ("recurrences", s["recurrences"]),
        (
            "time to close, days (mean / median / max)",
            f"{ttc['mean']} / {ttc['median']} / {ttc['max']}" if ttc["n"] else None,
        ),
        (
            "age of open ones, days (mean / max)",
            f"{age['mean']} / {age['max']}" if age["n"] else None,
        ),
        (
            "corrective actions recorded / done / overdue",
            f"{ca['recorded']} / {ca['done']} / {ca['overdue']}",
        ),
        ("open without a corrective action", ca["missing_on_open"]),
    ]
    states = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in s["by_status_at_end"].items())
    pairs.append(("status of open ones at the end", states))
    out = ['<table class="meta nc-summary"><tbody>']
    out += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs]
    out.append("</tbody></table>")
    rows = []
    for i in m["nonconformities"]["items"]:
        closing = (
            f"closed in {i['days_to_close']} d"
            if i["days_to_close"] is not None
            else f"open {i['age_days']} d"
        )
        review = i.get("effectiveness_review") or {}
        rows.append(
            [
                f"<strong>{_e(i['nc_id'])}</strong>",
                _e(i["check_id"]),
                _e(i["severity"]),
                _e(", ".join(i["controls"])),
                _e(i["opened_at"]),
                f'{_e(i["status_at_end"])}<br><span class="small">now {_e(i["status_now"])}</span>',
                f'{_e(i["closed_at"])}<br><span class="small">{_e(closing)}</span>',
                f"{i['recurrences_in_period']} / {i['recurrences_total']}",
                _action(i),
                _e(f"effective: {review.get('effective')}, by {review.get('verified_by')}")
                if review
                else _e(
                    i.get("effectiveness_evidence_since")
                    and f"evidence available since {i['effectiveness_evidence_since']}"
                ),
            ]
        )
    head = [
        "NC",
        "check",
        "severity",
        "controls",
        "opened",
        "status at end",
        "closed",
        "recurrences period / total",
        "corrective action",
        "effectiveness",
    ]
    if rows:
        out.append(_table(head, rows, numeric=[7]))
    else:
        out.append("<p>No nonconformity was open during the period.</p>")
    return "".join(out)


def _soa(data: Mapping[str, Any]) -> str:
    soa = data["statement_of_applicability"]
    out = [
        '<section class="soa" id="soa"><h2>Statement of applicability: Annex A controls '
        f'evidenced by the agent</h2><p class="small">{_e(soa["note"])} '
        f"Source: {_e(soa['source'])}.</p>"
    ]
    for m in soa["models"]:
        s = m["summary"]
        out.append(
            f"<h3>{_e(m['model'])} {_e(m['version'])} ({_e(m['ai_system_id'])})</h3>"
            f"<p>{s['evidenced']} of {s['controls']} controls evidenced; "
            f"{s['without_evidence_yet']} without evidence yet; latest verdict breach on "
            f"{s['latest_breach']} controls.</p>"
        )
        head = [
            "control",
            "title",
            "evidenced",
            "checks",
            "latest evidence",
            "latest status",
            "open NCs",
            "justification",
        ]
        body, group = [], None
        for c in m["controls"]:
            if c["group"] != group:
                group = c["group"]
                body.append(f'<tr class="group"><th colspan="8">{_e(group)}</th></tr>')
            checks = ", ".join(f"{k['id']} ({k['role']})" for k in c["checks"])
            cells = [
                f"<strong>{_e(c['id'])}</strong>",
                _e(c["title"]),
                "yes" if c["applicable"] else "no",
                _e(checks),
                _e(c["latest_evidence"]),
                _badge(c["latest_status"]) if c["applicable"] else "\u2014",
                _e(", ".join(c["open_nonconformities"])),
                f'<span class="small">{_e(c["justification"])}</span>',
            ]
            cls = "" if c["applicable"] else ' class="no"'
            body.append(f"<tr{cls}>" + "".join(f"<td>{v}</td>" for v in cells) + "</tr>")
        out.append(
            "<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
        )
    out.append("</section>")
    return "".join(out)


def _contents(data: Mapping[str, Any]) -> str:
    """In-page links only (fragments): the file links to nothing outside itself."""
    links = [("summary", "Summary")]
    links += [(f"model-{m['name']}", f"Model {m['name']}") for m in data["models"]]
    links += [("soa", "Statement of applicability"), ("notes", "Notes on the evidence")]
    items = "".join(f'<li><a href="#{_e(i)}">{_e(t)}</a></li>' for i, t in links)
    return f'<nav class="toc"><strong>Contents</strong><ol>{items}</ol></nav>'


def to_html(data: Mapping[str, Any]) -> str:
    """The report as one HTML document that needs nothing beyond itself."""
    p, g, t = data["period"], data["generator"], data["totals"]
    meta = [
        ("period", f"{p['label']}: {p['start']} to {p['end']} (end excluded)"),
        ("figures as of", p["as_of"]),
        ("scope", data["scope"]["model"] or "all models: " + ", ".join(data["scope"]["models"])),
        ("standard", data["standard"]),
        ("generated", f"{data['generated_at']} by {g['name']} {g['version']}"),
        ("configuration SHA-256", g["config_sha256"]),
    ]
    nct = t["nonconformities"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(data['title'])}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(data['title'])}</h1>",
        '<p class="sub">Input to management review (ISO/IEC 42001 9.3.2 c, d): trends in '
        "monitoring results (9.1) and in nonconformities and corrective actions (10.2).</p>",
        '<table class="meta"><tbody>',
        *(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in meta),
        "</tbody></table></header>",
        _contents(data),
        '<section id="summary"><h2>Summary</h2>',
        f"<p>{t['runs']} check runs: {t['pass']} pass, {t['warn']} warn, {t['breach']} breach, "
        f"{t['insufficient_data']} insufficient data, {t['error']} error. Nonconformities: "
        f"{nct['opened']} opened, {nct['closed']} closed, {nct['rejected']} rejected, "
        f"{nct['open_at_end']} open at the end, {nct['recurrences']} recurrences.</p>",
        _summary(data),
        "</section>",
    ]
    for m in data["models"]:
        state = "" if m["configured"] else " (no longer configured)"
        parts += [
            f'<section class="model" id="model-{_e(m["name"])}">'
            f"<h2>Model {_e(m['name'])} {_e(m['version'])}{state}</h2>",
            f"<p>AI system {_e(m['ai_system_id'])}; versions seen in the period: "
            f"{_e(', '.join(m['versions_seen']))}.</p>",
            "<h3>Monitoring results by check (clause 9.1)</h3>",
            _checks(m),
            "<h3>Monitoring results by control</h3>",
            _controls(m),
            f'<h3 id="nc-{_e(m["name"])}">Nonconformities and corrective actions '
            "(clause 10.2)</h3>",
            _nonconformities(m),
            "</section>",
        ]
    parts += [
        _soa(data),
        '<section id="notes"><h2>Notes on the evidence</h2><ul>',
        *(f"<li>{_e(n)}</li>" for n in data["notes"]),
        "</ul></section>",
        f"<footer>Generated by {_e(g['name'])} {_e(g['version'])} from its evidence store "
        f"({_e(data['schema_version'])}). The SHA-256 of this file is recorded in the evidence "
        "ledger as an attachment of kind period_report.</footer>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
