"""Long-term validation at the PKI level: capture at acceptance (2026), judge in 2040 from the kept
material only, with a test PKI made in code and a real OCSP/CRL server on loopback."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
from cryptography import x509

from gateway.core.clock import FakeClock
from pki.errors import PkiError
from pki.keys import FileSigner
from pki.ltv import capturing, record_of, tolerating_unknown_revocation, trust_snapshot
from pki.ltv_verify import PastTrust
from pki.sign import sign_envelope
from pki.trust import TrustStore
from pki.verify import validate_author, verify_envelope
from pki.xmlsig_parts import parse_for_verify
from tests.ltv.world import World

sys.path.insert(0, str(Path(__file__).parent.parent / "pki"))
from samples import envelope  # noqa: E402

ACCEPTED = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)
LATER = dt.datetime(2040, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
async def world():
    clock = FakeClock(ACCEPTED)
    w = await World(clock.now).start()
    w.fake = clock
    yield w
    await w.stop()


def store(w: World, **kw) -> TrustStore:
    return TrustStore([w.root.ca.cert], [w.issuing.ca.cert], revocation="hard-fail", clock=w.fake.now,
                      fetch_allow=[f"127.0.0.1:{w.port}"], **kw)


async def accept(w: World) -> tuple[bytes, object]:
    signer = FileSigner(w.author.key, w.author.cert, [w.issuing.ca.cert])
    signed = sign_envelope(envelope(), signer)
    trust = store(w)
    with capturing() as cap:
        await verify_envelope(signed, trust, sender="00001")
    items, trust_sha = trust_snapshot(trust.anchors, trust.intermediates)
    rec = record_of(cap, facts={"signed": True}, trust_sha256=trust_sha, trust_version=1, roles=["author"])
    return signed, rec


def past(w: World, rec, *, drop_kind: str | None = None) -> PastTrust:
    sig = rec.report["signatures"][0]
    certs = [rec.items[s][1] for s in sig["path"]]
    parsed = [x509.load_der_x509_certificate(d) for d in certs]
    ocsps = [rec.items[s][1] for s in sig["ocsp"]]
    crls = [rec.items[s][1] for s in sig["crls"]]
    if drop_kind == "ocsp":
        ocsps = ocsps[1:]
    if drop_kind == "crl":
        crls = crls[1:]
    return PastTrust([parsed[-1]], certs=parsed[1:-1], ocsps=ocsps, crls=crls, poe_time=ACCEPTED,
                     signing_time=ACCEPTED, at=LATER)


async def test_capture_keeps_path_ocsp_and_ca_crl(world):
    _, rec = await accept(world)
    sig = rec.report["signatures"][0]
    assert sig["role"] == "author" and sig["revocation"] == "ok"
    assert len(sig["path"]) == 3 and len(sig["ocsp"]) == 1 and len(sig["crls"]) == 1
    assert rec.report["bottom_line"] == "valid"


async def test_ocsp_answers_are_cached_until_next_update(world):
    trust = store(world)
    signer = FileSigner(world.author.key, world.author.cert, [world.issuing.ca.cert])
    signed = sign_envelope(envelope(), signer)
    await verify_envelope(signed, trust, sender="00001")
    assert world.ocsp_requests == 1
    trust.clear_cache()  # the validation itself is done again, its OCSP answer comes from the cache
    world.fake.advance(3 * 3600)
    await verify_envelope(signed, trust, sender="00001")
    assert world.ocsp_requests == 1 and trust.stats["validations"] == 2
    world.fake.advance(2 * 3600)  # past nextUpdate (4 h)
    trust.clear_cache()
    await verify_envelope(signed, trust, sender="00001")
    assert world.ocsp_requests == 2


async def test_verifies_in_2040_after_expiry_and_ca_revocation(world):
    signed, rec = await accept(world)
    world.revoked[world.issuing.ca.cert.serial_number] = dt.datetime(2030, 6, 1, tzinfo=dt.UTC)
    trust = past(world, rec)
    report, verified = await validate_author(signed, parse_for_verify(signed), trust, sender="00001",
                                             allow_sha1=False, require_signature=True)
    assert report.ok, report.failure
    verdict = next(iter(trust.verdicts.values()))
    assert verdict.control_time >= ACCEPTED


@pytest.mark.parametrize("drop", ["ocsp", "crl"])
async def test_missing_revocation_answer_is_a_precise_no(world, drop):
    signed, rec = await accept(world)
    trust = past(world, rec, drop_kind=drop)
    report, _ = await validate_author(signed, parse_for_verify(signed), trust, sender="00001",
                                      allow_sha1=False, require_signature=True)
    assert not report.ok
    assert report.signer_trusted is False
    assert report.failure.code == "certificate.revocation_unknown"


async def test_hard_fail_outage_gives_pending_not_refusal(world):
    world.down = True
    signer = FileSigner(world.author.key, world.author.cert, [world.issuing.ca.cert])
    signed = sign_envelope(envelope(), signer)
    trust = store(world)
    with pytest.raises(PkiError) as err:
        await verify_envelope(signed, trust, sender="00001")
    assert err.value.code == "certificate.revocation_unknown"
    with capturing() as cap, tolerating_unknown_revocation():
        verified = await verify_envelope(signed, trust, sender="00001")
    assert verified.validated.revocation == "pending" and cap.pending
    world.revoked[world.author.cert.serial_number] = ACCEPTED
    with capturing(), tolerating_unknown_revocation():  # a revoked certificate is refused even so
        world.down = False
        with pytest.raises(PkiError) as err:
            await verify_envelope(signed, store(world), sender="00001")
    assert err.value.code == "certificate.revoked"


async def test_the_ocsp_responders_own_revocation_data_is_kept_and_relied_on():
    """A responder certificate without ocsp-nocheck is itself checked (the issuing CA's CRL): that CRL is
    captured beside the OCSP answer and the CA's CRL, and the signature still holds in 2040 from them."""
    clock = FakeClock(ACCEPTED)
    w = await World(clock.now, checked_responder=True).start()
    w.fake = clock
    try:
        signed, rec = await accept(w)
        assert w.issuing_crl_requests == 1
        sig = rec.report["signatures"][0]
        issuers = {x509.load_der_x509_crl(rec.items[s][1]).issuer for s in sig["crls"]}
        assert issuers == {w.root.ca.cert.subject, w.issuing.ca.cert.subject}
        trust = past(w, rec)
        report, _ = await validate_author(signed, parse_for_verify(signed), trust, sender="00001",
                                          allow_sha1=False, require_signature=True)
        assert report.ok, report.failure
    finally:
        await w.stop()
