"""The governance console in process, over evidence the agent's own code wrote: every page
answers with what the store holds, escapes what people typed, refuses other machines, and
refuses (or stamps) a store whose ledger does not verify."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import zipfile

import httpx
import pytest
from sqlalchemy import select, update

from aims_agent.agent.console import create_console
from aims_agent.storage.schema import nonconformities

XSS = "<script>document.title='X'</script>"


@pytest.fixture
def evidence(drifted_api):
    """A store with drifted records, two breaching drift runs and a worked nonconformity."""
    api = drifted_api
    runs = [api.post("/v1/models/m1/checks/drift/run", scope="write").json() for _ in range(2)]
    nc = runs[0]["nonconformity_id"]
    r = api.request("PATCH", f"/v1/nonconformities/{nc}", json={"comment": XSS})
    assert r.status_code == 200, r.text
    return api, nc


def get(api, path: str, host: str = "127.0.0.1") -> httpx.Response:
    app = create_console(api.runtime.cfg, api.runtime.store)
    transport = httpx.ASGITransport(app=app, client=(host, 40000))

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as c:
            return await c.get(path)

    return asyncio.run(go())


def test_every_page_shows_the_evidence(evidence):
    api, nc = evidence
    pages = {
        "/": ["m1", "drift", "breach", "1 open nonconformity"],
        "/controls": ["A.6.2.6", "AI system operation and monitoring", "drift"],
        "/models/m1/checks/drift": [
            "drift_share",
            "breach",
            "<svg",
            "Runs, newest first",
            "Per feature, last 2 runs",
        ],
        "/nonconformities": [nc, "drift_share", "1 nonconformity"],
        f"/nonconformities/{nc}": [nc, "opened", "recurred", "commented"],
        "/nonconformities?status=closed": ["0 nonconformities"],
        "/nonconformities?severity=minor&source=check": [nc, "1 nonconformity"],
        "/nonconformities?severity=major": ["0 nonconformities"],
        "/nonconformities?overdue=1": ["0 nonconformities"],
    }
    for path, texts in pages.items():
        r = get(api, path)
        assert r.status_code == 200, (path, r.text[:500])
        assert r.headers["content-security-policy"].startswith("default-src 'none'")
        assert r.headers["x-content-type-options"] == "nosniff"
        for text in texts:
            assert text in r.text, (path, text)
        assert "Evidence ledger: head seq" in r.text and "verified at" in r.text
        assert "Read-only view for this machine" in r.text
    css = get(api, "/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_what_people_typed_is_escaped(evidence):
    api, nc = evidence
    page = get(api, f"/nonconformities/{nc}").text
    assert XSS not in page and "&lt;script&gt;" in page


def test_other_machines_are_refused_without_an_identity_provider(evidence):
    api, _ = evidence
    r = get(api, "/", host="10.1.2.3")
    assert r.status_code == 403 and "Loopback only" in r.text
    assert "credit" not in r.text and "m1" not in r.text


def test_unknown_things_are_404(evidence):
    api, _ = evidence
    assert get(api, "/nonconformities/NC-nope").status_code == 404
    assert get(api, "/models/m1/checks/nope").status_code == 404
    assert get(api, "/models/nope/checks/drift").status_code == 404


def test_an_altered_store_is_refused_or_stamped(evidence):
    api, nc = evidence
    store = api.runtime.store

    def alter(conn):
        body = conn.execute(select(nonconformities.c.body).where(nonconformities.c.nc_id == nc))
        body = dict(body.scalar_one())
        body["severity"] = "observation"
        conn.execute(update(nonconformities).where(nonconformities.c.nc_id == nc).values(body=body))

    store.submit(alter).result()
    r = get(api, "/")
    assert r.status_code == 409 and "does not verify" in r.text and nc in r.text
    assert 'href="?allow_unverified=true"' in r.text
    r = get(api, "/?allow_unverified=true")
    assert r.status_code == 200 and "UNVERIFIED" in r.text


def test_the_audit_pack_holds_the_period_with_checkable_hashes(evidence):
    api, nc = evidence
    page = get(api, "/audit-pack")
    assert page.status_code == 200 and 'action="/audit-pack.zip"' in page.text
    r = get(api, "/audit-pack.zip?period=2020-01-01..2100-01-01")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert (
        'filename="aims-audit-pack-2020-01-01..2100-01-01.zip"' in r.headers["content-disposition"]
    )
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        files = {n.split("/", 1)[1]: z.read(n) for n in z.namelist()}
    label = "2020-01-01..2100-01-01"
    assert set(files) == {
        f"report-{label}.html",
        f"report-{label}.md",
        f"report-{label}.json",
        f"oscal-assessment-results-{label}.json",
        "ledger.json",
        "SHA256SUMS",
    }
    sums = dict(reversed(line.split("  ", 1)) for line in files["SHA256SUMS"].decode().splitlines())
    assert set(sums) == set(files) - {"SHA256SUMS"}
    for name, digest in sums.items():
        assert hashlib.sha256(files[name]).hexdigest() == digest, name
    report = json.loads(files[f"report-{label}.json"])
    assert nc in json.dumps(report)
    oscal = json.loads(files[f"oscal-assessment-results-{label}.json"])
    assert "assessment-results" in oscal
    ledger = json.loads(files["ledger.json"])
    assert ledger["verification"]["verified"] is True
    bad = get(api, "/audit-pack.zip?period=last-week")
    assert bad.status_code == 422 and "period" in bad.text
