from __future__ import annotations

import hashlib
import json
import math
import threading

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select, update

from aims_agent.errors import CanonicalJSONError, LedgerError, SigningKeyError
from aims_agent.exporters import ledger
from aims_agent.exporters.canonical import canonical, json_safe, number
from aims_agent.exporters.evidence import save_attachment
from aims_agent.exporters.ledger_signing import (
    load_private_key,
    load_public_key,
    sign_head,
)
from aims_agent.exporters.ledger_verify import VerifyReport, verify
from aims_agent.records import Attachment
from aims_agent.storage.schema import (
    attachments,
    evidence_ledger,
    ledger_head,
    ledger_signatures,
    monitoring_records,
    nonconformities,
    nonconformity_events,
)
from aims_agent.storage.store import Store
from tests.conftest import person, recorded
from tests.exporters.conftest import CTX, run

L = evidence_ledger


# --- canonical JSON --------------------------------------------------------------------------


def test_keys_sort_by_utf16_code_units_without_whitespace():
    # RFC 8785 section 3.2.3: the emoji (a surrogate pair) sorts before U+FB33
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = list(json.loads(canonical(value)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert canonical({"b": [1, {"d": None, "c": True}], "a": "x"}) == (
        b'{"a":"x","b":[1,{"c":true,"d":null}]}'
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (4.50, "4.5"),
        (0.002, "0.002"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (5e-324, "5e-324"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1e23, "1e+23"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (9007199254740992.0, "9007199254740992"),
        (295147905179352830000.0, "295147905179352830000"),
        (333333333.3333333, "333333333.3333333"),
        (-1.5e-9, "-1.5e-9"),
        (123456789, "123456789"),
        (2**64, "18446744073709551616"),  # ints are written exactly
    ],
)
def test_numbers_are_written_as_ecmascript_does(value, text):
    assert canonical(value).decode() == text


def test_strings_escape_only_quote_backslash_and_controls():
    assert canonical('é"\\\n\x01\x7f\u2028') == '"é\\"\\\\\\n\\u0001\x7f\u2028"'.encode()


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, {"x": [math.nan]}, {1: "a"}, {"s": {1, 2}}, b"x", "\ud800"],
)
def test_values_without_a_canonical_form_are_refused(value):
    with pytest.raises(CanonicalJSONError):
        canonical(value)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def as_doubles(v):
    # RFC 8785 numbers are doubles: 6.896085232693674e16 is written 68960852326936740
    if isinstance(v, dict):
        return {k: as_doubles(x) for k, x in v.items()}
    if isinstance(v, list):
        return [as_doubles(x) for x in v]
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v


@given(json_values)
def test_canonical_json_reads_back_and_survives_a_json_column(value):
    text = canonical(value)
    assert as_doubles(json.loads(text)) == as_doubles(value)
    # what a JSON column gives back (ints may come back as floats and vice versa) hashes the same
    assert canonical(json.loads(json.dumps(value))) == text
    assert canonical(json.loads(text)) == text


def test_number_matches_repr_round_trip():
    for x in (0.1, 1 / 3, 2.5e-8, 6.02214076e23):
        assert float(number(x)) == x


def test_json_safe_replaces_nan_and_infinities_with_null():
    assert json_safe({"a": [1.0, math.nan], "b": (math.inf,), "c": "nan"}) == {
        "a": [1.0, None],
        "b": [None],
        "c": "nan",
    }


# --- the chain -------------------------------------------------------------------------------


def entries(store) -> list[dict]:
    return store.read(lambda c: [dict(r._mapping) for r in c.execute(select(L).order_by(L.c.seq))])


def test_each_entry_hashes_the_previous_hash_and_its_canonical_json(store):
    for i in range(3):
        store.submit(
            lambda c, i=i: ledger.append(c, "report", f"R-{i}", {"n": i}, 100.0 + i)
        ).result()
    rows = entries(store)
    assert [r["seq"] for r in rows] == [1, 2, 3]
    prev = "0" * 64
    for i, r in enumerate(rows):
        assert r["prev_hash"] == prev
        assert r["content_sha256"] == hashlib.sha256(b'{"n":%d}' % i).hexdigest()
        fields = (
            f'{{"at":{100 + i},"content_sha256":"{r["content_sha256"]}","kind":"report",'
            f'"prev_hash":"{prev}","ref_id":"R-{i}","seq":{i + 1}}}'
        )
        assert r["hash"] == hashlib.sha256((prev + fields).encode()).hexdigest()
        prev = r["hash"]
    head = store.read(lambda c: c.execute(select(ledger_head)).one())
    assert (head.id, head.seq, head.hash) == (1, 3, prev)


def test_append_refuses_unknown_kinds_and_content_without_canonical_form(store):
    with pytest.raises(LedgerError, match="unknown ledger kind 'memo'"):
        store.submit(lambda c: ledger.append(c, "memo", "x", {}, 1.0)).result()
    with pytest.raises(LedgerError, match="NaN|nan"):
        store.submit(lambda c: ledger.append(c, "report", "x", {"v": math.nan}, 1.0)).result()
    assert entries(store) == []


def test_two_writers_on_one_database_do_not_fork_the_chain(storage_url):
    stores = [Store(storage_url), Store(storage_url)]  # two agents, each with its own writer

    def work(n: int, s: Store) -> None:
        for i in range(40):
            s.submit(lambda c, i=i: ledger.append(c, "report", f"{n}-{i}", {"i": i}, 1.0)).result()

    threads = [threading.Thread(target=work, args=(n, s)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    query = select(L.c.seq, L.c.prev_hash, L.c.hash).order_by(L.c.seq)
    rows = stores[0].read(lambda c: c.execute(query).all())
    assert [r.seq for r in rows] == list(range(1, 81))
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))
    assert stores[0].read(verify).ok
    for s in stores:
        s.close()


# --- a ledger as the agent writes it ---------------------------------------------------------


@pytest.fixture
def evidence(store, tmp_path) -> dict:
    """pass, breach (opens), breach (recurs), an attachment, pass: 8 entries."""
    ids: dict = {}
    ids["mr_pass"], _, _ = store.submit(recorded(run("pass", 0.1, 1.0), CTX)).result()
    ids["mr_open"], ids["nc"], _ = store.submit(recorded(run("breach", 0.6, 2.0), CTX)).result()
    ids["mr_recur"], _, _ = store.submit(recorded(run("breach", 0.7, 3.0), CTX)).result()
    html = b"<html>drift report</html>"
    (tmp_path / "evidence" / "attachments").mkdir(parents=True, exist_ok=True)
    (tmp_path / "evidence" / "attachments" / "r.html").write_bytes(html)
    att = Attachment(
        attachment_id="AT-1",
        kind="evidently-data-drift-html",
        path="attachments/r.html",
        sha256=hashlib.sha256(html).hexdigest(),
        bytes=len(html),
    )
    store.submit(save_attachment(att, ids["mr_open"], 4.0)).result()
    ids["mr_last"], _, _ = store.submit(recorded(run("pass", 0.1, 5.0), CTX)).result()
    ids["dir"] = tmp_path / "evidence"
    return ids


def check(store, evidence, public_key: bytes | None = None) -> VerifyReport:
    return store.read(lambda c: verify(c, evidence_dir=evidence["dir"], public_key=public_key))


def seq_of(store, ref: str) -> int:
    return store.read(lambda c: c.execute(select(L.c.seq).where(L.c.ref_id == ref)).scalar_one())


def mutate(store, *statements) -> None:
    with store.engine.begin() as conn:
        for s in statements:
            conn.execute(s)


def test_record_run_chains_the_nonconformity_its_event_and_the_record(store, evidence):
    rows = entries(store)
    assert [r["kind"] for r in rows] == [
        "monitoring_record",
        "nonconformity",
        "nonconformity_event",
        "monitoring_record",
        "nonconformity_event",
        "monitoring_record",
        "attachment",
        # note_effectiveness has not noted anything after one pass: no event
        "monitoring_record",
    ]
    body = store.read(
        lambda c: c.execute(
            select(monitoring_records.c.body).where(
                monitoring_records.c.record_id == evidence["mr_open"]
            )
        ).scalar_one()
    )
    (entry,) = [r for r in rows if r["ref_id"] == evidence["mr_open"]]
    assert entry["content_sha256"] == hashlib.sha256(canonical(body)).hexdigest()
    assert entry["at"] == 2.5  # the run's finish
    report = check(store, evidence)
    assert report.ok and report.entries == 8 and report.problems == ()
    assert report.head_seq == 8 and report.head_hash == rows[-1]["hash"]


def test_altered_record_body_is_named(store, evidence):
    ref = evidence["mr_recur"]
    body = store.read(
        lambda c: c.execute(
            select(monitoring_records.c.body).where(monitoring_records.c.record_id == ref)
        ).scalar_one()
    )
    body["result"]["value"] = 0.1  # the breach made to look like a pass, in the body only
    mutate(
        store,
        update(monitoring_records).where(monitoring_records.c.record_id == ref).values(body=body),
    )
    report = check(store, evidence)
    assert not report.ok
    assert report.first_problem == ledger_problem(
        store, ref, "record altered: field result.value differs from what was chained"
    )


def ledger_problem(store, ref: str, reason: str):
    from aims_agent.exporters.ledger_verify import Problem

    row = store.read(lambda c: c.execute(select(L.c.seq, L.c.kind).where(L.c.ref_id == ref)).one())
    return Problem(seq=row.seq, kind=row.kind, ref_id=ref, reason=reason)


def test_altered_column_beside_the_body_is_named(store, evidence):
    ref = evidence["mr_recur"]
    mutate(
        store,
        update(monitoring_records)
        .where(monitoring_records.c.record_id == ref)
        .values(outcome="pass"),
    )
    assert check(store, evidence).first_problem == ledger_problem(
        store, ref, "record altered: column outcome disagrees with its body"
    )


# SQLite only: PostgreSQL's json type does not take text that is not JSON
@pytest.mark.parametrize("storage_url", ["sqlite"], indirect=True)
def test_a_body_that_is_no_longer_json_is_named(store, evidence):
    ref = evidence["mr_pass"]
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE monitoring_records SET body = substr(body, 2) WHERE record_id = ?", (ref,)
        )
    assert check(store, evidence).first_problem == ledger_problem(
        store, ref, "record altered: not valid JSON"
    )


def test_one_changed_character_in_an_entry_is_named(store, evidence):
    row = entries(store)[3]
    flipped = ("0" if row["content_sha256"][0] != "0" else "1") + row["content_sha256"][1:]
    mutate(store, update(L).where(L.c.seq == 4).values(content_sha256=flipped))
    report = check(store, evidence)
    assert report.first_problem is not None
    assert (report.first_problem.seq, report.first_problem.reason) == (4, "entry altered")
    # the record no longer matches the altered entry either: still one problem for entry 4
    assert [p.seq for p in report.problems] == [4]


def test_a_deleted_entry_leaves_a_gap_and_an_unchained_record(store, evidence):
    ref = entries(store)[4]["ref_id"]  # the recurrence's event
    mutate(store, delete(L).where(L.c.seq == 5))
    report = check(store, evidence)
    assert str(report.first_problem) == "entry 5: entry missing (gap after seq 4)"
    assert [str(p) for p in report.problems[1:]] == [
        f"nonconformity_event {ref}: record not in the ledger"
    ]


def test_a_deleted_record_is_named(store, evidence):
    ref = evidence["mr_open"]
    mutate(store, delete(monitoring_records).where(monitoring_records.c.record_id == ref))
    assert check(store, evidence).first_problem == ledger_problem(store, ref, "record removed")


@pytest.mark.parametrize(("a", "b"), [(2, 6), (3, 4), (7, 8)])
def test_swapped_entries_are_out_of_order(store, evidence, a, b):
    rows = {r["seq"]: r for r in entries(store)}
    cols = ("kind", "ref_id", "at", "content_sha256", "prev_hash", "hash")
    mutate(
        store,
        update(L).where(L.c.seq == a).values(**{c: rows[b][c] for c in cols}),
        update(L).where(L.c.seq == b).values(**{c: rows[a][c] for c in cols}),
    )
    report = check(store, evidence)
    assert [str(p) for p in report.problems] == [
        f"entry {a} ({rows[b]['kind']} {rows[b]['ref_id']}): out of order: written as seq {b}",
        f"entry {b} ({rows[a]['kind']} {rows[a]['ref_id']}): out of order: written as seq {a}",
    ]


def test_an_entry_rewritten_with_a_fresh_hash_is_named(store, evidence):
    rows = entries(store)
    e = rows[2]
    forged = {**e, "content_sha256": "f" * 64}
    del forged["hash"], forged["fields"]
    mutate(
        store,
        update(L)
        .where(L.c.seq == 3)
        .values(content_sha256="f" * 64, hash=ledger.entry_hash(**forged)),
    )
    report = check(store, evidence)
    assert (report.first_problem.seq, report.first_problem.reason) == (
        3,
        "entry rewritten: entry 4 does not link to it",
    )


def test_a_cut_tail_is_caught_by_the_head(store, evidence):
    mutate(store, delete(L).where(L.c.seq == 8))
    report = check(store, evidence)
    assert str(report.first_problem) == (
        "entry 8: entry missing (the ledger ends at seq 7, its head is at 8)"
    )
    assert f"monitoring_record {evidence['mr_last']}: record not in the ledger" in [
        str(p) for p in report.problems
    ]


def test_nonconformity_fields_and_state_are_checked(store, evidence):
    nc = evidence["nc"]
    mutate(
        store, update(nonconformities).where(nonconformities.c.nc_id == nc).values(status="closed")
    )
    assert check(store, evidence).first_problem == ledger_problem(
        store,
        nc,
        'field status altered: stored "closed", its events say "open"',
    )
    mutate(
        store,
        update(nonconformities)
        .where(nonconformities.c.nc_id == nc)
        .values(status="open", check_id="other"),
    )
    assert check(store, evidence).first_problem == ledger_problem(
        store, nc, "record altered: field check_id differs from what was chained"
    )


def test_events_are_checked_and_an_unchained_event_is_named(store, evidence):
    first = store.read(
        lambda c: c.execute(select(nonconformity_events.c.event_id)).scalars().first()
    )
    mutate(
        store,
        update(nonconformity_events)
        .where(nonconformity_events.c.event_id == first)
        .values(actor="someone"),
    )
    report = check(store, evidence)
    assert report.first_problem == ledger_problem(
        store, str(first), "record altered: field actor differs from what was chained"
    )
    mutate(
        store,
        insert(nonconformity_events).values(
            nc_id=evidence["nc"], at=9.0, actor="x", event="commented", body={}
        ),
    )
    assert any(
        p.kind == "nonconformity_event" and p.reason == "record not in the ledger" and p.seq is None
        for p in check(store, evidence).problems
    )


def test_insert_event_chains_what_it_inserts(store, evidence):
    event_id = store.submit(
        lambda c: ledger.insert_event(
            c,
            nc_id=evidence["nc"],
            at=6.0,
            actor=person("ana"),
            event="commented",
            body={"comment": "é"},
        )
    ).result()
    assert entries(store)[-1]["ref_id"] == str(event_id)
    assert check(store, evidence).ok


def test_attachment_file_and_row_are_checked(store, evidence):
    path = evidence["dir"] / "attachments" / "r.html"
    path.write_bytes(path.read_bytes().replace(b"drift", b"dri ft"))
    assert check(store, evidence).first_problem == ledger_problem(
        store, "AT-1", "attachment file altered: sha256 of attachments/r.html differs"
    )
    path.unlink()
    assert check(store, evidence).first_problem == ledger_problem(
        store, "AT-1", "attachment file missing: attachments/r.html"
    )
    mutate(store, update(attachments).values(path="../../outside.html"))
    assert check(store, evidence).first_problem == ledger_problem(
        store, "AT-1", "record altered: field path differs from what was chained"
    )


# --- signed heads ----------------------------------------------------------------------------


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_a_signed_head_verifies_with_the_trusted_key_only(store, evidence):
    key = Ed25519PrivateKey.generate()
    signed = store.submit(sign_head(key, now=10.0)).result()
    assert signed is not None and signed.seq == 8
    report = check(store, evidence, raw_public(key))
    assert report.ok and report.signature_trusted and report.signed_head == signed
    assert check(store, evidence).ok and not check(store, evidence).signature_trusted
    other = check(store, evidence, raw_public(Ed25519PrivateKey.generate()))
    assert not other.ok and "signed with another key" in other.first_problem.reason
    mutate(store, update(ledger_signatures).values(signed_at=11.0))
    assert check(store, evidence).first_problem.reason == (
        "signed head: seq 8: signature does not verify"
    )


def cut_below_a_signed_head(store, evidence) -> Ed25519PrivateKey:
    """Sign the head (seq 8), then cut entry 8 and its record and rewrite the head to 7, as one
    who can write the store but not sign would; the key that signed."""
    key = Ed25519PrivateKey.generate()
    store.submit(sign_head(key, now=10.0)).result()
    seven = entries(store)[6]
    mutate(
        store,
        delete(L).where(L.c.seq == 8),
        delete(monitoring_records).where(monitoring_records.c.record_id == evidence["mr_last"]),
        update(ledger_head).values(seq=7, hash=seven["hash"]),
    )
    return key


def test_a_cut_tail_with_a_rewritten_head_is_caught_only_by_the_signature(store, evidence):
    key = cut_below_a_signed_head(store, evidence)
    mutate(store, delete(ledger_signatures))
    assert check(store, evidence).ok  # what the chain alone cannot show
    assert check(store, evidence, raw_public(key)).first_problem.reason == (
        "no signed head, but a public key was given to check it"
    )


def test_a_cut_below_the_signed_head_is_named(store, evidence):
    key = cut_below_a_signed_head(store, evidence)
    assert str(check(store, evidence, raw_public(key)).first_problem) == (
        "entry 8: entry missing (the ledger ends at seq 7, a signed head at 8)"
    )


def test_keys_load_from_pem_or_hex():
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    assert raw_public(load_private_key(pem)) == raw_public(key)
    assert raw_public(load_private_key(raw.hex())) == raw_public(key)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert load_public_key(public_pem) == raw_public(key)
    assert load_public_key(raw_public(key).hex().encode() + b"\n") == raw_public(key)
    with pytest.raises(SigningKeyError):
        load_private_key("not a key")
    with pytest.raises(SigningKeyError):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_verify_reads_the_attachments_directory_only_when_given(store, evidence):
    (evidence["dir"] / "attachments" / "r.html").unlink()
    assert store.read(verify).ok
    assert not check(store, evidence).ok


# --- a nonconformity is the projection of its events -------------------------------------


def test_every_event_carries_the_fields_it_sets_and_their_old_values(store, evidence):
    from aims_agent.exporters import nc_record
    from aims_agent.exporters.lifecycle import apply, decode_change

    nc = evidence["nc"]
    change = decode_change(
        b'{"status": "investigating", "cause_analysis": {"root_cause": "units"}, "comment": "c"}'
    )
    store.submit(apply(nc, change, actor=person("ana"), now=10.0)).result()
    e = nonconformity_events.c
    bodies = store.read(
        lambda c: c.execute(select(e.event, e.body).where(e.nc_id == nc).order_by(e.event_id)).all()
    )
    assert [b.event for b in bodies] == [
        "opened",
        "recurred",
        "updated",
        "investigating",
        "commented",
    ]
    assert set(bodies[0].body["set"]) == {*nc_record.STATE}
    assert bodies[1].body["set"] == {"recurrences": 1, "last_seen_at": 3.5}
    assert bodies[1].body["old"] == {"recurrences": 0, "last_seen_at": 2.5}
    assert bodies[2].body["set"] == {
        "body.cause_analysis": {
            "root_cause": "units",
            "method": None,
            "could_occur_elsewhere": None,
        }
    }
    assert bodies[2].body["old"] == {"body.cause_analysis": None}
    assert bodies[3].body["set"] == {"status": "investigating"}
    assert "set" not in bodies[4].body
    row = store.read(
        lambda c: c.execute(select(nonconformities).where(nonconformities.c.nc_id == nc)).one()
    )
    replay = store.read(
        lambda c: nc_record.project(
            (r.event_id, r.body)
            for r in c.execute(select(e.event_id, e.body).where(e.nc_id == nc).order_by(e.event_id))
        )
    )
    assert replay.state == nc_record.state_of(row._mapping) and replay.stale is None
    assert check(store, evidence).ok


def test_a_field_altered_and_then_changed_again_is_still_named(store, evidence):
    """Altered in the database, then a person's change carries the altered value as `old`:
    the row agrees with the events again, but the event shows the alteration."""
    from aims_agent.exporters.lifecycle import apply, decode_change

    nc = evidence["nc"]
    body = store.read(
        lambda c: c.execute(
            select(nonconformities.c.body).where(nonconformities.c.nc_id == nc)
        ).scalar_one()
    )
    mutate(
        store,
        update(nonconformities)
        .where(nonconformities.c.nc_id == nc)
        .values(body={**body, "severity": "observation"}),
    )
    assert check(store, evidence).first_problem == ledger_problem(
        store, nc, 'field body.severity altered: stored "observation", its events say "major"'
    )
    minor = decode_change(b'{"severity": "minor"}')
    store.submit(apply(nc, minor, actor=person("ana"), now=9.0)).result()
    last = store.read(
        lambda c: c.execute(
            select(nonconformity_events.c.event_id).where(nonconformity_events.c.event == "updated")
        ).scalar_one()
    )
    assert check(store, evidence).first_problem == ledger_problem(
        store,
        nc,
        f'field body.severity was altered before event {last}: it found "observation", '
        'the events before it say "major"',
    )


def test_records_written_before_events_carried_fields_keep_the_state_check(store, evidence):
    nc = evidence["nc"]
    e = nonconformity_events.c
    # as an older agent wrote them: no "set" in the events, which the ledger chained as they are
    rows = store.read(lambda c: c.execute(select(nonconformity_events).where(e.nc_id == nc)).all())
    mutate(store, delete(nonconformity_events).where(e.nc_id == nc))
    for r in rows:
        body = {k: v for k, v in r.body.items() if k not in ("set", "old", "by")}
        store.submit(
            lambda c, r=r, body=body: ledger.insert_event(
                c, nc_id=nc, at=r.at, actor=person(r.actor), event=r.event, body=body
            )
        ).result()
    mutate(store, delete(L).where(L.c.seq.in_([3, 5])))  # the first two events' entries
    mutate(store, update(ledger_head).values(seq=0, hash="0" * 64))
    problems = [p.reason for p in check(store, evidence).problems if p.kind == "nonconformity"]
    assert problems == []
    mutate(
        store, update(nonconformities).where(nonconformities.c.nc_id == nc).values(status="closed")
    )
    problems = [p.reason for p in check(store, evidence).problems if p.kind == "nonconformity"]
    assert problems == [
        "record state not explained by its events: status closed, 1 recurrences; "
        "the events say open, 1"
    ]


# --- verify before read: incremental from the verified head --------------------------------


def test_incremental_checks_new_entries_and_every_nonconformity(store, evidence):
    from aims_agent.errors import LedgerTamperedError
    from aims_agent.exporters.ledger_check import check_store
    from aims_agent.storage.schema import ledger_verified

    full = check_store(store, evidence_dir=evidence["dir"], now=100.0)
    assert (full.ok, full.mode, full.checked) == (True, "full", 8)
    again = check_store(store, evidence_dir=evidence["dir"], now=101.0)
    assert (again.mode, again.checked, again.head_seq) == ("incremental", 0, 8)
    # two new entries: only they are walked and their records read
    ref, _, _ = store.submit(recorded(run("pass", 0.1, 6.0), CTX)).result()
    state = check_store(store, evidence_dir=evidence["dir"], now=102.0)
    assert (state.mode, state.checked, state.head_seq) == ("incremental", 1, 9)
    verified = store.read(lambda c: c.execute(ledger_verified.select()).one())
    assert (verified.seq, verified.full_at, verified.verified_at) == (9, 100.0, 102.0)
    # a new record altered before it was checked: named
    mr = monitoring_records.c
    body = store.read(lambda c: c.execute(select(mr.body).where(mr.record_id == ref)).scalar())
    ref2, _, _ = store.submit(recorded(run("pass", 0.1, 7.0), CTX)).result()
    mutate(store, update(monitoring_records).where(mr.record_id == ref2).values(outcome="breach"))
    with pytest.raises(LedgerTamperedError) as caught:
        check_store(store, evidence_dir=evidence["dir"], now=103.0)
    assert caught.value.first_problem == str(
        ledger_problem(store, ref2, "record altered: column outcome disagrees with its body")
    )
    stamped = check_store(store, evidence_dir=evidence["dir"], allow_unverified=True, now=103.0)
    assert not stamped.ok and stamped.statement()["stamp"] == "UNVERIFIED"
    mutate(store, update(monitoring_records).where(mr.record_id == ref2).values(outcome="pass"))
    assert check_store(store, evidence_dir=evidence["dir"], now=104.0).mode == "incremental"
    # an old nonconformity altered in place: every nonconformity is rebuilt on each check
    nc = evidence["nc"]
    mutate(
        store, update(nonconformities).where(nonconformities.c.nc_id == nc).values(recurrences=0)
    )
    with pytest.raises(LedgerTamperedError, match="field recurrences altered"):
        check_store(store, evidence_dir=evidence["dir"], now=105.0)
    mutate(
        store, update(nonconformities).where(nonconformities.c.nc_id == nc).values(recurrences=1)
    )
    assert body is not None


def test_a_rewritten_verified_head_or_a_day_without_a_full_verify_verifies_it_all(store, evidence):
    from aims_agent.exporters.ledger_check import FULL_EVERY, check_store

    assert check_store(store, evidence_dir=evidence["dir"], now=100.0).mode == "full"
    assert check_store(store, evidence_dir=evidence["dir"], now=200.0).mode == "incremental"
    later = 100.0 + FULL_EVERY + 1
    assert check_store(store, evidence_dir=evidence["dir"], now=later).mode == "full"
    # an old record altered after it was verified: seen by the next full verify only
    ref = evidence["mr_pass"]
    where = monitoring_records.c.record_id == ref
    mutate(store, update(monitoring_records).where(where).values(model="other"))
    assert check_store(store, evidence_dir=evidence["dir"], now=later + 1).ok  # the limit
    state = check_store(store, evidence_dir=evidence["dir"], full=True, allow_unverified=True)
    assert state.mode == "full" and "column model disagrees" in state.first_problem
    mutate(store, update(monitoring_records).where(where).values(model="m"))
    # the verified head entry rewritten (the chain recomputed from there): a full verify
    check_store(store, evidence_dir=evidence["dir"], full=True)
    mutate(store, update(L).where(L.c.seq == 8).values(at=99.0))
    state = check_store(store, evidence_dir=evidence["dir"], now=later + 2, allow_unverified=True)
    assert state.mode == "full" and state.first_problem == (
        f"entry 8 (monitoring_record {evidence['mr_last']}): entry altered"
    )
