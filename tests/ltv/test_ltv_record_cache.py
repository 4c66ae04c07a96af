"""pki.ltv.RecordCache: one record per distinct capture, byte for byte what record_of builds.

The report's name goes into the audit chain (``validation_sha256``) and its bytes into the evidence
bundle, so a cached record must be the very record :func:`pki.ltv.record_of` would build: same items,
same report bytes, same name; and any change of what the report says (an OCSP answer, a CRL, a
certificate, a fact and its type) must give another one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.clock import FakeClock
from gateway.exchange.validation import ValidationRecorder
from gateway.storage import ltv as ltv_store
from pki.keys import FileSigner
from pki.ltv import Capture, Record, RecordCache, canonical, capturing, record_of, trust_snapshot
from pki.sign import sign_envelope
from pki.trust import TrustStore
from pki.verify import verify_envelope
from tests.ltv.world import World

sys.path.insert(0, str(Path(__file__).parent.parent / "pki"))
from samples import envelope  # noqa: E402

ACCEPTED = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)
FACTS = {"schema_valid": True, "signed": True, "signature_intact": True, "signer_trusted": True,
         "signer_authorised": True, "digests_ok": True, "signer": "CN=ผู้ลงนาม,O=กรม", "signer_agency": "00001",
         "signature_algorithm": "ecdsa-sha256", "revocation": "ok"}


@pytest.fixture(scope="module")
async def captured() -> tuple[list[Capture], str]:
    """Three letters verified under hard-fail (a path of three, an OCSP answer, a CRL each)."""
    clock = FakeClock(ACCEPTED)
    w = await World(clock.now).start()
    try:
        trust = TrustStore([w.root.ca.cert], [w.issuing.ca.cert], revocation="hard-fail", clock=clock.now,
                           fetch_allow=[f"127.0.0.1:{w.port}"])
        signer = FileSigner(w.author.key, w.author.cert, [w.issuing.ca.cert])
        caps = []
        for _ in range(3):
            with capturing() as cap:
                await verify_envelope(sign_envelope(envelope(), signer), trust, sender="00001")
            caps.append(cap)
    finally:
        await w.stop()
    _, trust_sha = trust_snapshot(trust.anchors, trust.intermediates)
    return caps, trust_sha


def same(a: Record, b: Record) -> None:
    assert a.report_sha256 == b.report_sha256
    assert dict(a.items) == dict(b.items)
    assert canonical(a.report) == canonical(b.report) == a.items[a.report_sha256][1]


def build(cache: RecordCache | None, cap: Capture, trust_sha: str, facts=FACTS, version: int | None = 1,
          roles=("author",)) -> Record:
    kw = {"facts": facts, "trust_sha256": trust_sha, "trust_version": version, "roles": list(roles)}
    return record_of(cap, **kw) if cache is None else cache.record(cap, **kw)


async def test_a_cached_record_is_byte_for_byte_record_of_and_costs_a_look_up(captured):
    caps, trust_sha = captured
    v = caps[0].validated[0]
    assert v.ocsp and v.crls and len(v.path) == 3  # the material a real hard-fail letter carries
    cache = RecordCache()
    first = build(cache, caps[0], trust_sha)
    for cap in caps:
        got = build(cache, cap, trust_sha)
        same(got, build(None, cap, trust_sha))
        assert got is first  # the trust store's cached result: the same capture, one record
    assert (cache.misses, cache.hits) == (1, 3)


def _changed(cap: Capture, **fields) -> Capture:
    return Capture(validated=[dataclasses.replace(cap.validated[0], **fields)])


@pytest.mark.parametrize("change", ["ocsp", "crls", "revocation", "checked_at", "soft_failures", "usage", "role",
                                    "path"])
async def test_any_change_of_the_validated_material_is_another_record(captured, change):
    caps, trust_sha = captured
    v = caps[0].validated[0]
    other = {
        "ocsp": (v.ocsp[0] + b"\x00",),  # another OCSP answer (bytes), same length class
        "crls": (),
        "revocation": "unknown",
        "checked_at": v.checked_at + dt.timedelta(seconds=1),
        "soft_failures": ("ocsp: unreachable",),
        "usage": "other-usage",
        "role": "pdf",
        "path": v.path[:2],
    }[change]
    cache = RecordCache()
    before = build(cache, caps[0], trust_sha)
    changed = _changed(caps[0], **{change: other})
    after = build(cache, changed, trust_sha)
    same(after, build(None, changed, trust_sha))
    assert after.report_sha256 != before.report_sha256
    same(build(cache, caps[0], trust_sha), before)  # and the first one still stands


async def test_equal_certificates_in_other_objects_give_the_same_record(captured):
    caps, trust_sha = captured
    v = caps[0].validated[0]
    reloaded = tuple(x509.load_der_x509_certificate(c.public_bytes(serialization.Encoding.DER)) for c in v.path)
    cache = RecordCache()
    a = build(cache, caps[0], trust_sha)
    b = build(cache, _changed(caps[0], path=reloaded), trust_sha)
    same(a, b)
    assert cache.misses == 2  # identity, not equality, keys a certificate: built again, equal


async def test_facts_trust_and_role_are_keyed_with_their_types(captured):
    caps, trust_sha = captured
    cache = RecordCache()
    base = build(cache, caps[0], trust_sha, facts={"n": 1})
    variants = [
        build(cache, caps[0], trust_sha, facts={"n": True}),  # True == 1 in Python, "true" != "1" in JSON
        build(cache, caps[0], trust_sha, facts={"n": 2}),
        build(cache, caps[0], trust_sha, facts={"n": 1}, version=2),
        build(cache, caps[0], trust_sha, facts={"n": 1}, version=None),
        build(cache, caps[0], "0" * 64, facts={"n": 1}),
        build(cache, caps[0], trust_sha, facts={"n": 1}, roles=("ack",)),
    ]
    names = {base.report_sha256} | {r.report_sha256 for r in variants}
    assert len(names) == 1 + len(variants)
    for r, kw in zip(variants, [{"facts": {"n": True}}, {"facts": {"n": 2}}, {"facts": {"n": 1}, "version": 2},
                                {"facts": {"n": 1}, "version": None}, {"facts": {"n": 1}},
                                {"facts": {"n": 1}, "roles": ("ack",)}], strict=True):
        assert r.report["facts"] == kw["facts"]


async def test_unhashable_facts_and_pdf_contexts_are_built_as_before(captured):
    caps, trust_sha = captured
    cache = RecordCache()
    facts = {**FACTS, "list": [1, 2]}  # not in the report (scalars only), and not hashable
    same(build(cache, caps[0], trust_sha, facts=facts), build(None, caps[0], trust_sha, facts=facts))
    assert cache.hits == cache.misses == 0


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.text(max_size=8))
_facts = st.dictionaries(st.text(max_size=6), _scalars, max_size=6)


@settings(max_examples=300, deadline=None)
@given(seq=st.lists(_facts, min_size=1, max_size=6))
def test_property_any_sequence_of_facts_gives_record_of_bytes(captured_sync, seq):
    caps, trust_sha = captured_sync
    cache = RecordCache()
    for facts in seq + seq[::-1]:
        same(build(cache, caps[0], trust_sha, facts=facts), build(None, caps[0], trust_sha, facts=facts))


@pytest.fixture(scope="module")
def captured_sync(captured):
    return captured


async def test_the_recorder_stores_and_names_record_ofs_report_letter_after_letter(captured, pool):
    """Through ValidationRecorder (the submit path): every letter's validation_sha256 and the stored
    report bytes are record_of's, the first letter (built) and the next ones (looked up) alike."""
    caps, _ = captured
    clock = FakeClock(ACCEPTED)
    root_and_issuing = caps[0].validated[0].path[-1:], caps[0].validated[0].path[1:-1]

    class Store:  # what the recorder reads of a trust store
        anchors = tuple(root_and_issuing[0])
        intermediates = tuple(root_and_issuing[1])

    recorder = ValidationRecorder(pool=pool, trust=Store(), clock=clock)  # type: ignore[arg-type]  # reads anchors and intermediates only
    names = []
    for cap in caps:
        out = await recorder.record(cap, FACTS, directory_version=None)
        snap = await recorder.snapshot()
        expected = record_of(cap, facts=FACTS, trust_sha256=snap.sha256, trust_version=snap.version, roles=["author"])
        assert out["validation_sha256"] == expected.report_sha256
        stored = await ltv_store.get_items(pool, list(expected.items))
        assert stored == dict(expected.items)  # every item, the report's bytes included, as record_of made them
        names.append(out["validation_sha256"])
    assert len(set(names)) == 1 and recorder.records.hits == len(caps) - 1
