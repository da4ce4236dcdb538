"""The API's evidence reads verify the ledger first: 409 naming the first bad entry on a
broken chain, unless `allow_unverified=true`; every read states the ledger's head."""

from __future__ import annotations

import hashlib

from sqlalchemy import update

from aims_agent.exporters.evidence import save_attachment
from aims_agent.exporters.ledger import last_entry
from aims_agent.records import Attachment
from aims_agent.storage.schema import attachments, ledger_verified
from tests.conftest import recorded
from tests.exporters.conftest import CTX, run

READS = [
    "/v1/monitoring-records",
    "/v1/nonconformities",
    "/v1/statement-of-applicability",
    "/v1/attachments/AT-1",
]


def _evidence(api) -> None:
    store = api.runtime.store
    store.submit(recorded(run("pass", 0.1, 1.0), CTX)).result()
    store.submit(recorded(run("breach", 0.6, 2.0), CTX)).result()
    body = b"<html>report</html>"
    evidence = api.runtime.cfg.agent.evidence_dir
    (evidence / "attachments").mkdir(parents=True, exist_ok=True)
    (evidence / "attachments" / "r.html").write_bytes(body)
    att = Attachment(
        attachment_id="AT-1",
        kind="evidently-data-drift-html",
        path="attachments/r.html",
        sha256=hashlib.sha256(body).hexdigest(),
        bytes=len(body),
    )
    store.submit(save_attachment(att, "MR-1", 3.0)).result()


def test_reads_state_the_verified_head_and_refuse_a_broken_chain(make_api):
    api = make_api()
    _evidence(api)
    head = api.runtime.store.read(last_entry)
    for path in READS:
        r = api.get(path)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["x-aims-ledger-head"] == f"{head.seq} {head.hash}"
        assert r.headers["x-aims-ledger-signature"] == "unsigned"
        assert r.headers["x-aims-ledger-verified-at"].endswith("Z")
        assert "x-aims-ledger-unverified" not in r.headers
    soa = api.get("/v1/statement-of-applicability").json()
    assert soa["ledger"]["head_sha256"] == head.hash and soa["ledger"]["verified"] is True
    verified = api.runtime.store.read(lambda c: c.execute(ledger_verified.select()).one())
    assert (verified.seq, verified.hash) == (head.seq, head.hash)
    # altered after it was verified: the incremental check still sees the attachment's row
    # (its file is re-hashed only by a full verify), so alter the nonconformity's severity
    from aims_agent.storage.schema import nonconformities

    with api.runtime.store.engine.begin() as conn:
        (nc,) = conn.execute(nonconformities.select()).all()
        conn.execute(update(nonconformities).values(body={**nc.body, "severity": "observation"}))
    for path in READS:
        r = api.get(path)
        assert r.status_code == 409, (path, r.text)
        error = r.json()
        assert "the evidence ledger does not verify" in error["error"]
        assert error["first_problem"].startswith(f"entry 2 (nonconformity {nc.nc_id}): ")
        assert "field body.severity altered" in error["first_problem"]
        r = api.get(path, params={"allow_unverified": "true"})
        assert r.status_code == 200
        assert "field body.severity altered" in r.headers["x-aims-ledger-unverified"]
    soa = api.get("/v1/statement-of-applicability", params={"allow_unverified": "true"}).json()
    assert next(iter(soa)) == "ledger" and soa["ledger"]["stamp"] == "UNVERIFIED"


def test_a_record_altered_before_the_first_read_is_refused(make_api):
    api = make_api()
    _evidence(api)
    with api.runtime.store.engine.begin() as conn:
        conn.execute(update(attachments).values(bytes=1))
    r = api.get("/v1/monitoring-records")
    assert r.status_code == 409
    assert r.json()["first_problem"].endswith(
        "(attachment AT-1): record altered: field bytes differs from what was chained"
    )
    assert api.get("/v1/monitoring-records", scope=None).status_code == 401  # auth first
