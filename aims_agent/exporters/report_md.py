"""The period report as Markdown: the same sections as the HTML, trends as text sparklines."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aims_agent.exporters.report_sections import OUTCOMES

_BARS = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"
_COUNT_HEAD = ["runs", "pass", "warn", "breach", "insufficient data", "error", "not run"]


def _c(value: object) -> str:
    """A table cell: no pipes or line breaks inside."""
    if value is None or value == "":
        return "-"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(head: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_c(v) for v in row) + " |" for row in rows]
    return [*out, ""]


def sparkline(values: Sequence[float | None]) -> str:
    """`sparkline([0, 1, 2]) == "▁▄█"`; a day without a value is a blank."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    lo, hi = min(known), max(known)
    scale = (len(_BARS) - 1) / (hi - lo) if hi > lo else 0
    return "".join(" " if v is None else _BARS[round((v - lo) * scale)] for v in values)


def _counts(d: Mapping[str, Any]) -> list[object]:
    counts = d.get("counts", d)
    return [d.get("runs", 0), *(counts.get(o, 0) for o in OUTCOMES)]


def _model(m: Mapping[str, Any]) -> list[str]:
    state = "" if m["configured"] else " (no longer configured)"
    out = [
        f"## Model {m['name']} {m['version']}{state}",
        "",
        f"AI system {m['ai_system_id']}; versions seen: {', '.join(m['versions_seen']) or '-'}.",
        "",
        "### Monitoring results by check (clause 9.1)",
        "",
    ]
    rows = [
        [
            c["id"],
            c["kind"],
            ", ".join(c["controls"]),
            *_counts(c),
            c["worst_outcome"],
            c["last_outcome"],
            c["last_value"],
            sparkline([d["breach"] for d in c["series"]]),
            sparkline([d.get("value_mean") for d in c["series"]]),
        ]
        for c in m["checks"]
    ]
    head = ["check", "kind", "controls", *_COUNT_HEAD, "worst verdict", "last verdict"]
    out += _table([*head, "last value", "daily breaches", "daily mean value"], rows)
    gaps = [
        [c["id"], g["start"], g["end"], round(g["seconds"] / 3600, 2), ", ".join(g["reasons"])]
        for c in m["checks"]
        for g in (c.get("coverage") or {}).get("gaps", ())
    ]
    out += ["### Gaps in coverage (time without a valid run)", ""]
    head = ["check", "from", "to", "hours", "runs not made or not judged"]
    out += _table(head, gaps) if gaps else ["None: every check ran as scheduled.", ""]
    out += ["### Monitoring results by control", ""]
    rows = [
        [
            c["id"],
            c["title"],
            ", ".join(c["checks"]),
            *_counts(c),
            c["last_outcome"],
            sparkline([d["breach"] for d in c["series"]]),
        ]
        for c in m["controls"]
    ]
    out += _table(["control", "title", "checks", *_COUNT_HEAD, "last verdict", "breaches"], rows)
    s = m["nonconformities"]["summary"]
    ttc, ca = s["days_to_close"], s["corrective_actions"]
    out += [
        "### Nonconformities and corrective actions (clause 10.2)",
        "",
        f"- carried in {s['carried_in']}, opened {s['opened']}, closed {s['closed']}, rejected "
        f"{s['rejected']}, still open at the end {s['open_at_end']}, recurrences "
        f"{s['recurrences']}",
        f"- time to close (days): mean {_c(ttc['mean'])}, median {_c(ttc['median'])}, max "
        f"{_c(ttc['max'])}; age of open ones (days): max {_c(s['age_days_open']['max'])}",
        f"- corrective actions: {ca['recorded']} recorded, {ca['done']} done, {ca['overdue']} "
        f"overdue; {ca['missing_on_open']} open without one",
        "",
    ]
    rows = []
    for i in m["nonconformities"]["items"]:
        a = i["corrective_action"] or {}
        action = (
            f"{a.get('description')} (owner {a.get('owner')}, due {a.get('due_date')}, "
            f"{a.get('status')}{', OVERDUE' if i['corrective_action_overdue'] else ''})"
            if a
            else "not recorded"
        )
        rows.append(
            [
                i["nc_id"],
                i["check_id"],
                i["severity"],
                i["opened_at"],
                i["status_at_end"],
                i["closed_at"],
                i["days_to_close"] if i["days_to_close"] is not None else i["age_days"],
                f"{i['recurrences_in_period']} / {i['recurrences_total']}",
                action,
            ]
        )
    head = ["NC", "check", "severity", "opened", "status at end", "closed", "days open/to close"]
    out += _table([*head, "recurrences", "corrective action"], rows) if rows else ["None.", ""]
    return out


def to_markdown(data: Mapping[str, Any]) -> str:
    """The report as GitHub-flavoured Markdown."""
    p, g, t = data["period"], data["generator"], data["totals"]
    nct = t["nonconformities"]
    out = [
        f"# {data['title']}",
        "",
        f"- period: {p['label']} ({p['start']} to {p['end']}, end excluded); as of {p['as_of']}",
        f"- scope: {data['scope']['model'] or 'all models'}; standard: {data['standard']}",
        f"- generated {data['generated_at']} by {g['name']} {g['version']}; "
        f"configuration SHA-256 {g['config_sha256']}",
        "",
        "## Summary",
        "",
        f"{t['runs']} check runs: {t['pass']} pass, {t['warn']} warn, {t['breach']} breach, "
        f"{t['insufficient_data']} insufficient data, {t['error']} error. Nonconformities: "
        f"{nct['opened']} opened, {nct['closed']} closed, {nct['rejected']} rejected, "
        f"{nct['open_at_end']} open at the end, {nct['recurrences']} recurrences.",
        "",
    ]
    for m in data["models"]:
        out += _model(m)
    soa = data["statement_of_applicability"]
    out += [
        "## Statement of applicability: Annex A controls evidenced by the agent",
        "",
        soa["note"],
    ]
    for m in soa["models"]:
        out += ["", f"### {m['model']} {m['version']}", ""]
        rows = [
            [
                c["id"],
                c["title"],
                "yes" if c["applicable"] else "no",
                ", ".join(f"{k['id']} ({k['role']})" for k in c["checks"]),
                c["latest_evidence"],
                c["latest_status"],
                ", ".join(c["open_nonconformities"]),
            ]
            for c in m["controls"]
        ]
        head = ["control", "title", "evidenced", "checks", "latest evidence", "latest status"]
        out += _table([*head, "open NCs"], rows)
    out += ["## Notes on the evidence", "", *(f"- {n}" for n in data["notes"]), ""]
    return "\n".join(out)
