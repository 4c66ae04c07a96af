"""PDF letters: PAdES validated on intake, receiving stamp (ตรารับ) made when a registry accepts."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pki.pdf import async_sign_pdf, make_demo_pdf, validate_pdf
from tests.support import CMI, OPM, TOKENS, ROOT, letter_bytes, notifier_bytes


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
    from tests.support import KKN

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
