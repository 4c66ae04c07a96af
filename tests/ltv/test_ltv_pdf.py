"""The main PDF's PAdES signature under long-term validation, at the PKI level: what its validation relied
on is captured at acceptance (path, OCSP answer, the CA's CRL), and pyHanko's AdES past-signature
validation judges it in 2040 from that material only (the author's certificate expired in 2028, the
issuing CA revoked in 2030); an OCSP outage under hard-fail is ``certificate.revocation_unknown``, or
``pending`` when the caller tolerates it (validation-pending)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from gateway.core.clock import FakeClock
from pki import pdf
from pki.errors import PkiError
from pki.keys import FileSigner
from pki.ltv import capturing, record_of, tolerating_unknown_revocation, trust_snapshot
from pki.ltv_pdf import past_validate_pdf
from pki.trust import TrustStore
from tests.ltv.world import World

ACCEPTED = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)
LATER = dt.datetime(2040, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
async def world():
    clock = FakeClock(ACCEPTED)
    w = await World(clock.now).start()
    w.fake = clock
    yield w
    await w.stop()


def store(w: World) -> TrustStore:
    return TrustStore([w.root.ca.cert], [w.issuing.ca.cert], revocation="hard-fail", clock=w.fake.now,
                      fetch_allow=[f"127.0.0.1:{w.port}"])


async def signed_pdf(w: World) -> bytes:
    signer = FileSigner(w.author.key, w.author.cert, [w.issuing.ca.cert])
    return await pdf.async_sign_pdf(pdf.make_demo_pdf(), signer)


async def accept(w: World, document: bytes):
    trust = store(w)
    with capturing() as cap:
        report = await pdf.validate_pdf(document, trust)
    assert report.ok, report.signatures[0].summary
    _, trust_sha = trust_snapshot(trust.anchors, trust.intermediates)
    return record_of(cap, facts={"pdf_signed": True}, trust_sha256=trust_sha, trust_version=1)


def material(rec, *, drop: str | None = None) -> dict:
    sig = next(s for s in rec.report["signatures"] if s["role"] == "pdf")
    certs = [x509.load_der_x509_certificate(rec.items[s][1]) for s in sig["path"]]
    ocsps = [rec.items[s][1] for s in sig["ocsp"] if drop != "ocsp"]
    crls = [rec.items[s][1] for s in sig["crls"] if drop != "crl"]
    return {"anchors": [certs[-1]], "certs": certs[:-1], "ocsps": ocsps, "crls": crls}


async def test_capture_keeps_the_pdf_signers_path_ocsp_answer_and_ca_crl(world):
    rec = await accept(world, await signed_pdf(world))
    sig = next(s for s in rec.report["signatures"] if s["role"] == "pdf")
    assert len(sig["path"]) == 3 and len(sig["ocsp"]) == 1 and len(sig["crls"]) == 1
    assert sig["revocation"] == "ok" and rec.report["bottom_line"] == "valid"


async def test_pdf_signature_holds_in_2040_after_expiry_and_ca_revocation(world):
    document = await signed_pdf(world)
    rec = await accept(world, document)
    world.revoked[world.issuing.ca.cert.serial_number] = dt.datetime(2030, 6, 1, tzinfo=dt.UTC)
    verdicts = await past_validate_pdf(document, signing_time=ACCEPTED, at=LATER, **material(rec))
    assert len(verdicts) == 1 and verdicts[0].ok, verdicts[0].detail
    assert verdicts[0].signer.serial_number == world.author.cert.serial_number


@pytest.mark.parametrize("drop", ["ocsp", "crl"])
async def test_pdf_without_its_revocation_answer_is_a_precise_no(world, drop):
    document = await signed_pdf(world)
    rec = await accept(world, document)
    verdicts = await past_validate_pdf(document, signing_time=ACCEPTED, at=LATER, **material(rec, drop=drop))
    assert not verdicts[0].ok
    assert verdicts[0].indication  # the AdES sub-indication names why


async def test_pdf_signed_after_its_certificate_ended_is_a_precise_no(world):
    document = await signed_pdf(world)
    rec = await accept(world, document)
    late = dt.datetime(2029, 1, 1, tzinfo=dt.UTC)  # proven only after the author's certificate ended
    verdicts = await past_validate_pdf(document, signing_time=late, at=LATER, **material(rec))
    assert not verdicts[0].ok


async def test_pdf_changed_after_acceptance_is_a_precise_no(world):
    document = await signed_pdf(world)
    rec = await accept(world, document)
    i = document.index(b"Official letter")
    changed = document[:i] + b"Officiel" + document[i + 8:]
    verdicts = await past_validate_pdf(changed, signing_time=ACCEPTED, at=LATER, **material(rec))
    assert not verdicts[0].ok


async def test_pdf_ocsp_outage_under_hard_fail_is_unknown_or_pending(world):
    document = await signed_pdf(world)
    world.down = True
    with pytest.raises(PkiError) as err:
        await pdf.validate_pdf(document, store(world))
    assert err.value.code == "certificate.revocation_unknown"
    with capturing() as cap, tolerating_unknown_revocation():
        report = await pdf.validate_pdf(document, store(world))
    assert report.signatures[0].signature_holds and report.signatures[0].revocation == "pending"
    assert cap.pending
