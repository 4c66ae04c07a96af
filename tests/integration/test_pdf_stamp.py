"""PDF letters: PAdES validated on intake, receiving stamp (ตรารับ) made when a registry accepts."""

import asyncio
import datetime as dt
import shutil
import subprocess

import pytest

from pki.pdf import async_sign_pdf, make_demo_pdf, stamp_received, validate_pdf
from tests.support import (
    CMI,
    KKN,
    OPM,
    ROOT,
    TOKENS,
    letter_bytes,
    notifier_bytes,
    rewrite_page_after_signing,
    stored_counts,
)


def auth(agency=OPM):
    return {"Authorization": f"Bearer {TOKENS[agency]}", "Content-Type": "application/xml"}


async def test_signed_pdf_is_validated_and_the_stamp_keeps_the_signature(make_client, pool, dev_pki):
    pdf = await async_sign_pdf(make_demo_pdf(), dev_pki.agency_signer(OPM))
    client = await make_client()
    r = await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,), message_id="m-pdf", pdf=pdf),
                          headers=auth())
    assert r.status == 202
    details = await pool.fetchval("SELECT details FROM audit_events WHERE kind = 'message.accepted'")
    assert (details["pdf_signed"], details["pdf_valid"]) == (True, True)

    r = await client.post("/v1/messages", data=notifier_bytes(sender=CMI, recipient=OPM, ref="m-pdf",
                                                              registry_number="ชม 1234/2569"), headers=auth(CMI))
    assert r.status == 202
    got = await client.get(f"/v1/messages/m-pdf/stamped/{CMI}", headers=auth(OPM))
    assert got.status == 200 and got.content_type == "application/pdf"
    stamped = await got.read()
    assert stamped.startswith(pdf), "the stamp is an incremental update: the signed bytes are untouched"
    report = await validate_pdf(stamped, dev_pki.trust_store(revocation="off"))
    assert report.signed and all(s.intact and s.trusted for s in report.signatures)
    # the recipient may fetch it too; another agency may not
    assert (await client.get(f"/v1/messages/m-pdf/stamped/{CMI}", headers=auth(CMI))).status == 200

    assert (await client.get(f"/v1/messages/m-pdf/stamped/{CMI}", headers=auth(KKN))).status == 404
    if shutil.which("pdftoppm"):
        out = ROOT / "test-artifacts"
        out.mkdir(exist_ok=True)
        (out / "stamped-letter.pdf").write_bytes(stamped)
        subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(out / "stamped-letter.pdf"),
                        str(out / "stamped-letter")], check=True)
        assert list(out.glob("stamped-letter*.png"))


async def test_required_pdf_signature_policy(make_client, pool):
    client = await make_client(require_pdf_signature=True)
    r = await client.post("/v1/messages", data=letter_bytes(pdf=make_demo_pdf()), headers=auth())
    assert r.status == 422 and (await r.json())["code"] == "pdf.signature_required"
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0


async def _counts(pool):
    return await stored_counts(pool, ("messages", "deliveries"))


@pytest.mark.parametrize("case, code, status", [
    ("rewritten_after_signing", "pdf.signature_modified", 422),
    ("bytes_changed", "pdf.signature_invalid", 422),
    ("other_agency", "pdf.wrong_agency", 403),
])
async def test_required_pdf_signature_refuses_later_changes_and_other_agencies(case, code, status, make_client,
                                                                              pool, dev_pki):

    # other_agency: a valid signature, by the Khon Kaen office, on a letter the OPM sends
    signed = await async_sign_pdf(make_demo_pdf(), dev_pki.agency_signer(KKN if case == "other_agency" else OPM))
    pdf = {"rewritten_after_signing": lambda: rewrite_page_after_signing(signed),
           "bytes_changed": lambda: signed.replace(b"No. 0105/123", b"No. 9999/123"),
           "other_agency": lambda: signed}[case]()
    client = await make_client(require_pdf_signature=True)
    r = await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,), pdf=pdf), headers=auth())
    assert r.status == status
    assert (await r.json())["code"] == code
    assert await _counts(pool) == {"messages": 0, "deliveries": 0, "audit_events": 0}


async def test_the_gateways_stamp_passes_the_required_pdf_policy(make_client, pool, dev_pki):
    """A stamped copy (an added annotation) still satisfies require_pdf_signature, and the facts say why."""


    signed = await async_sign_pdf(make_demo_pdf(), dev_pki.agency_signer(OPM))
    stamped = await asyncio.to_thread(stamp_received, signed, agency_name="จังหวัดเชียงใหม่",
                                      registry_number="ชม 1/2569",
                                      received_at=dt.datetime(2026, 11, 22, 9, 30, tzinfo=dt.UTC))
    client = await make_client(require_pdf_signature=True)
    r = await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,), pdf=stamped), headers=auth())
    assert r.status == 202, await r.text()
    details = await pool.fetchval("SELECT details FROM audit_events WHERE kind = 'message.accepted'")
    assert details["pdf_valid"] is True and details["pdf_modifications_allowed"] is True
    assert details["pdf_signer_authorised"] is True
    assert details["pdf_modification_levels"] == "ANNOTATIONS" and details["pdf_signer_agencies"] == OPM
