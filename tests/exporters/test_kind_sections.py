"""The period report's and the OSCAL export's sections of the label-free estimate, the
intended-use envelope and human oversight, from evidence the agent writes itself: records
ingested, labels and reviewers' feedback joined, the checks run by the runner. Every figure
is recomputed here from the stored monitoring records' measurements."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from aims_agent.agent.runtime import Runtime
from aims_agent.collectors.push import decode_feedback, decode_records
from aims_agent.config import parse_config
from aims_agent.exporters import report
from aims_agent.exporters.oscal import assessment_results
from aims_agent.storage import queries
from tests.conftest import as_records, base_config, make_rows, write_reference_csv
from tests.exporters.test_oscal import validate
from tests.exporters.test_report import _Balanced

CHECKS = [
    {
        "id": "estimate",
        "kind": "estimated_performance",
        "schedule_seconds": 3600,
        "min_samples": 20,
        "chunk_size": 200,
        "metrics": {"roc_auc": {"min": -0.05, "relative": True}, "accuracy": {"min": 0.6}},
    },
    {
        "id": "use",
        "kind": "intended_use",
        "schedule_seconds": 3600,
        "min_samples": 20,
    },
    {
        "id": "review",
        "kind": "oversight",
        "schedule_seconds": 3600,
        "min_samples": 5,
        "needs_review": {"score_between": [0.3, 0.7]},
        "metrics": {
            "review_rate": {"min": 0.5},
            "override_rate": {"min": 0.01, "max": 0.5},
            "median_review_seconds": {"max": 3600},
        },
    },
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def evidence(request, tmp_path_factory):
    """Three hourly windows (the agent's clock moved by the test): in-distribution traffic
    with labels; the same with half the decisions reviewed; then shifted traffic (values beyond
    the reference, an unknown category) without labels, which breaches the intended-use
    envelope and opens a nonconformity."""
    tmp = tmp_path_factory.mktemp("sections")
    ref = write_reference_csv(tmp / "reference.csv")
    data = base_config(ref, tmp / "ev")
    server, name = None, None
    if request.param == "postgresql":  # the bodies are streamed from a server-side cursor
        server = request.getfixturevalue("postgres")
        name = server.create_database()
        data["agent"]["storage_url"] = server.url(name)
    data["models"][0]["checks"] = CHECKS
    data["models"][0]["window"] = {"span_seconds": 3600, "max_sample": 5000}
    (tmp / "agent.yaml").write_text(yaml.safe_dump(data))
    cfg = parse_config(data, base_dir=tmp)
    t0 = float(int(time.time()) // 3600 * 3600)
    clock = [t0 + 60]
    runtime = Runtime(cfg, clock=lambda: clock[0])
    schema = runtime.model("m1").schema

    def ingest(seed: int, n: int, shift: float, start: int, labels: bool) -> list[dict]:
        rows = as_records(make_rows(np.random.default_rng(seed), n, shift=shift), start=start)
        for i, r in enumerate(rows):
            del r["timestamp"]  # stamped with the agent's clock
            if not labels:
                del r["label"]
            if shift and i % 10 == 0:
                r["features"]["c1"] = "<e&>"  # a category the report must escape
        body = json.dumps(rows).encode()
        decoded = decode_records(body, "application/json", schema, now=clock[0])
        asyncio.run(runtime.ingest.ingest("m1", decoded))
        return rows

    def feedback(items: list[dict]) -> None:
        body = json.dumps(items).encode()
        decoded = decode_feedback(body, "application/json", schema, now=clock[0])
        asyncio.run(runtime.ingest.join_labels("m1", decoded, feedback=True))

    def run_all() -> None:
        for c in CHECKS:
            runtime.runner.run_check("m1", c["id"])

    try:
        ingest(5, 600, 0.0, 0, labels=True)
        clock[0] += 600
        run_all()
        clock[0] += 3000
        rows = ingest(6, 600, 0.0, 600, labels=True)
        clock[0] += 600
        items = [
            {"id": r["id"], "reviewed": True, "overridden": i % 5 == 0, "reviewed_at": clock[0] + i}
            for i, r in enumerate(rows)
            if i % 2 == 0
        ]
        feedback(items)
        run_all()
        clock[0] += 3000
        ingest(7, 900, 2.0, 1200, labels=False)
        clock[0] += 600
        run_all()
        yield SimpleNamespace(runtime=runtime, cfg=cfg, t0=t0, now=clock[0])
    finally:
        runtime.close()
        if server is not None:
            server.drop_database(name)


def bodies(ev, check: str) -> list[dict]:
    got = ev.runtime.store.read(
        lambda c: list(queries.monitoring_bodies(c, model="m1", check=check, limit=100))
    )
    return got[::-1]  # oldest first


def heads(body: dict) -> dict[str, dict]:
    return {
        m["metric"]: m
        for m in body["result"]["measurements"]
        if m["headline"] or m["metric"].startswith("estimated_")
    }


def built(ev) -> dict:
    first, last = (datetime.fromtimestamp(t, UTC).date().isoformat() for t in (ev.t0, ev.now))
    return ev.runtime.store.read(
        lambda c: report.build(c, ev.cfg, f"{first}..{last}", now=ev.now + 1)
    )


def sections(data: dict) -> dict[str, dict]:
    (m,) = data["models"]
    return {c["id"]: c["section"] for c in m["checks"]}


def test_the_estimate_section_has_each_window_and_the_realised_value_against_its_band(evidence):
    records = bodies(evidence, "estimate")
    assert len(records) == 3
    s = sections(built(evidence))["estimate"]
    assert s["kind"] == "estimated_performance" and s["windows_total"] == 3
    for name in ("roc_auc", "accuracy"):
        ms = [heads(b)[f"estimated_{name}"] for b in records]
        estimates = [m["value"] for m in ms]
        got = s["metrics"][name]
        assert got["estimate"]["mean"] == pytest.approx(statistics.fmean(estimates), abs=1e-6)
        assert got["estimate"]["max"] == pytest.approx(max(estimates), abs=1e-6)
        labelled = [m for m in ms if m["params"]["realised_value"] is not None]
        assert len(labelled) == 2  # the third window came without labels
        assert got["labelled_windows"] == 2
        inside = sum(
            m["params"]["band_low"] <= m["params"]["realised_value"] <= m["params"]["band_high"]
            for m in labelled
        )
        assert got["realised_inside_band"] == inside
        errors = [m["value"] - m["params"]["realised_value"] for m in labelled]
        assert got["mean_error"] == pytest.approx(statistics.fmean(errors), abs=1e-6)
        assert got["limit"] == pytest.approx(ms[-1]["params"]["limit"])
        assert got["breach"] == sum(m["verdict"] == "breach" for m in ms)
        rows = [w["metrics"][name] for w in s["windows"]]
        assert [r["estimate"] for r in rows] == estimates
        assert [r["realised"] for r in rows][2] is None
        assert rows[0]["band_low"] < rows[0]["estimate"] < rows[0]["band_high"]
    assert s["metrics"]["accuracy"]["limit"] == 0.6


def test_the_intended_use_section_has_the_shares_and_the_worst_features(evidence):
    records = bodies(evidence, "use")
    s = sections(built(evidence))["use"]
    outside = [heads(b)["outside_envelope_share"]["value"] for b in records]
    assert outside[-1] > 0.5 > 0.01 >= outside[0]  # the shifted window
    got = s["shares"]["outside_envelope_share"]
    assert got["max"] == pytest.approx(max(outside), abs=1e-6)
    assert got["mean"] == pytest.approx(statistics.fmean(outside), abs=1e-6)
    assert got["windows_above_limit"] == sum(v > 0.01 for v in outside)
    novel = [heads(b)["novelty_share"]["value"] for b in records]
    assert s["shares"]["novelty_share"]["latest"] == pytest.approx(novel[-1])
    per_feature: dict[str, list[float]] = {}
    for b in records:
        for m in b["result"]["measurements"]:
            if m["feature"]:
                per_feature.setdefault(m["feature"], []).append(m["value"])
    means = {f: statistics.fmean(v) for f, v in per_feature.items()}
    worst = [f["feature"] for f in s["worst_features"]]
    assert worst == sorted((f for f in means if max(per_feature[f])), key=lambda f: -means[f])[:5]
    assert s["worst_features"][0]["mean"] == pytest.approx(max(means.values()), abs=1e-6)
    assert s["unexpected_categories"] == ["<e&>"]


def test_the_oversight_section_has_the_rates_and_the_time_to_review(evidence):
    records = bodies(evidence, "review")
    s = sections(built(evidence))["review"]
    for name in ("review_rate", "override_rate", "median_review_seconds"):
        values = [heads(b)[name]["value"] for b in records]
        known = [v for v in values if v is not None]
        got = s["rates"][name]
        assert got["windows"] == len(known)
        assert got["median"] == pytest.approx(statistics.median(known), abs=1e-6)
        assert got["max"] == pytest.approx(max(known), abs=1e-6)
    assert s["rates"]["review_rate"]["breaches_when"] == "value < 0.5"
    review = [heads(b)["review_rate"]["value"] for b in records]
    assert review[0] == 0.0 and review[1] > 0.3
    counts = [w["counts"] for w in s["windows"]]
    assert counts[1]["reviewed"] == 300
    assert counts[1]["overridden"] == sum(i % 5 == 0 for i in range(0, 600, 2))


def test_every_format_shows_the_sections(evidence):
    data = built(evidence)
    md = report.to_markdown(data)
    html = report.to_html(data)
    for text in (md, html):
        assert "Performance without labels, intended use and human oversight" in text
        assert "estimate: performance estimated without labels" in text
        assert "use: use within the intended-use envelope (A.9.4)" in text
        assert "review: human oversight of decisions (A.9.2, A.9.3)" in text
        assert "realised inside the band" in text
    parser = _Balanced()  # every element the sections open they close
    parser.feed(html)
    assert parser.stack == []
    assert "section-estimate" in html and "&nbsp;%" in html
    assert "allow: &lt;e&amp;&gt;." in html and "<e&>" not in html
    for metric in ("roc_auc", "accuracy"):  # a chart per estimated metric: band, limit, realised
        start = html.index(f'aria-label="estimate of m1: estimated {metric} per window"')
        svg = html[start : html.index("</svg>", start)]
        assert svg.count("<circle") == 3 and svg.count("<rect") == 2  # 3 windows, 2 labelled
        assert "<polygon" in svg and "limit " in svg
    acc = data["models"][0]["checks"][0]["section"]["metrics"]["accuracy"]
    assert f"| accuracy | 3 | {acc['estimate']['mean']:.4g} (" in md
    assert json.loads(report.to_json(data))["models"][0]["checks"][1]["section"]["kind"] == (
        "intended_use"
    )


def props(item: dict, name: str) -> list[dict]:
    return [p for p in item["props"] if p["name"] == name]


def test_the_oscal_observations_and_finding_carry_the_figures(evidence):
    ev = evidence
    doc = ev.runtime.store.read(lambda c: assessment_results(c, ev.cfg, ev.t0, ev.now + 60))
    validate(doc)
    (result,) = doc["assessment-results"]["results"]
    by_record = {
        next(p["value"] for p in o["props"] if p["name"] == "monitoring-record-id"): o
        for o in result["observations"]
    }
    for b in bodies(ev, "estimate"):
        obs = by_record[b["record_id"]]
        m = heads(b)["estimated_roc_auc"]
        group = [p for p in obs["props"] if p.get("group") == "roc_auc"]
        got = {p["name"]: float(p["value"]) for p in group}
        assert got["estimated-value"] == pytest.approx(m["value"], rel=1e-5)
        assert got["band-low"] == pytest.approx(m["params"]["band_low"], rel=1e-5)
        assert got["limit"] == pytest.approx(m["params"]["limit"], rel=1e-5)
        if m["params"]["realised_value"] is None:
            assert "realised-value" not in got
        else:
            assert got["estimate-error"] == pytest.approx(m["params"]["estimate_error"], abs=1e-6)
    for b in bodies(ev, "review"):
        obs = by_record[b["record_id"]]
        (rate,) = props(obs, "review-rate")
        assert float(rate["value"]) == pytest.approx(heads(b)["review_rate"]["value"])
    use = bodies(ev, "use")[-1]
    assert use["result"]["outcome"] == "breach" and use["nonconformity_id"]
    (finding,) = [f for f in result["findings"] if use["nonconformity_id"] in f["title"]]
    (share,) = props(finding, "outside-envelope-share")
    assert float(share["value"]) == pytest.approx(heads(use)["outside_envelope_share"]["value"])
    worst = props(finding, "feature-outside-share")
    assert worst and worst == props(by_record[use["record_id"]], "feature-outside-share")
    assert {p["value"] for p in props(finding, "unexpected-category")} == {"<e&>"}
