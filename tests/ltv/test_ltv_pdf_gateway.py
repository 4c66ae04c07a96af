"""The main PDF's PAdES signature through the real gateway (issue 16): its validation material is kept at
acceptance and the evidence bundle judges it ``--at 2040-01-01`` with pyHanko's past-signature validation;
an OCSP outage while checking it holds the letter in validation-pending (not refused, not forwarded),
re-checked until it is forwarded, or refused with a notifier when the signer turns out revoked.

The PDF is signed by a second certificate of the sending agency, so the author's XML signature (checked
first and cached by the trust store) and the PDF's can be told apart: the outage hits the PDF's only.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from gateway.audit.ltv_check import check_bundle_at
from gateway.core import appkeys as keys
from pki import pdf
from pki.keys import FileSigner
from tests.ltv.test_ltv_gateway import (
    AT_2040,
    auth,
    bundle_of,
    pending_checks,
    rewrite,
    signed_letter,
    start_gateway,
)
from tests.ltv.world import World, office_signer
from tests.support import OPM, wait_for


@pytest.fixture
async def gateway(database_url, workdir):
    client = await start_gateway(database_url, workdir, require_pdf_signature=True)
    yield client
    await client.close()
    await client.world.stop()


async def signed_pdf(world: World, text: str, *, by_author: bool = False) -> bytes:
    """Signed by a second key of agency OPM (or, ``by_author``, by the key of the letter's XML signature:
    nothing is asked of the responders that the XML check did not ask)."""
    if by_author:
        issued = world.author
    else:
        issued = getattr(world, "pdf_signer", None) or office_signer(world, OPM)
        world.pdf_signer = issued
    signer = FileSigner(issued.key, issued.cert, [world.issuing.ca.cert])
    return await pdf.async_sign_pdf(pdf.make_demo_pdf(("Official letter", text)), signer)


async def submit(client, subject: str, message_id: str, *, by_author: bool = False) -> object:
    document = await signed_pdf(client.world, message_id, by_author=by_author)
    return await client.post("/v1/messages", data=signed_letter(client.world, subject=subject, message_id=message_id,
                                                                pdf=document), headers=auth())


async def test_pdf_signature_kept_and_judged_in_2040_from_the_bundle(gateway):
    r = await submit(gateway, "หนังสือลงนาม PDF", "pdf-1")
    assert r.status == 202, await r.text()
    pool = gateway.app[keys.POOL]
    pk = await pool.fetchval("SELECT pk FROM messages WHERE message_id = 'pdf-1'")
    details = await pool.fetchval("SELECT details FROM audit_events WHERE kind = 'message.accepted' "
                                  "AND message_pk = $1", pk)
    assert details["pdf_valid"] is True and details["validation"] == "valid"
    report = json.loads(await pool.fetchval("SELECT data FROM validation_items WHERE sha256 = $1",
                                            bytes.fromhex(details["validation_sha256"])))
    roles = {s["role"]: s for s in report["signatures"]}
    assert set(roles) == {"author", "pdf"}
    assert len(roles["pdf"]["path"]) == 3 and roles["pdf"]["ocsp"] and roles["pdf"]["crls"]
    assert roles["pdf"]["ocsp"] != roles["author"]["ocsp"]  # another certificate: its own answer

    bundle = await bundle_of(gateway, pk)
    gateway.world.revoked[gateway.world.issuing.ca.cert.serial_number] = dt.datetime(2030, 6, 1, tzinfo=dt.UTC)
    rep = await check_bundle_at(bundle, gateway.signer.certificate, at=AT_2040)
    assert rep.ok, rep.summary()
    assert any("main PDF" in n and "AuthorSignature" in n and "PASSED" in n for n in rep.notes), rep.summary()

    # the PDF's OCSP answer removed from the bundle: a precise no
    name = f"validation/{roles['pdf']['ocsp'][0]}.ocsp.der"
    rep = await check_bundle_at(rewrite(bundle, lambda n, d: None if n == name else d), gateway.signer.certificate,
                                at=AT_2040)
    assert not rep.ok and any(roles["pdf"]["ocsp"][0][:16] in p.message for p in rep.problems), rep.summary()


async def test_pdf_ocsp_outage_holds_the_letter_then_forwards_it(gateway):
    world, clock = gateway.world, gateway.clock
    pool = gateway.app[keys.POOL]
    # the author's XML signature checked and cached; the PDF's signer not asked about yet
    r = await submit(gateway, "ก่อนขัดข้อง", "pdf-warm", by_author=True)
    assert r.status == 202, await r.text()
    world.down = True
    r = await submit(gateway, "PDF รอตรวจ", "pdf-held")
    assert r.status == 202, await r.text()
    assert b"submission-pending" in await r.read()
    pk = await pool.fetchval("SELECT pk FROM messages WHERE message_id = 'pdf-held'")
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE message_pk = $1", pk) == 0
    assert await pool.fetchval("SELECT count(*) FROM validation_pending WHERE message_pk = $1", pk) == 1
    status = await (await gateway.get("/v1/messages/pdf-held", headers=auth())).json()
    assert status["validation"]["state"] == "pending"

    checks = pending_checks(gateway)
    clock.advance(60)
    await checks.run_once()  # still down: backs off, nothing forwarded
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE message_pk = $1", pk) == 0
    world.down = False
    clock.advance(3000)

    async def forwarded():
        await checks.run_once()
        return await pool.fetchval("SELECT count(*) FROM deliveries WHERE message_pk = $1", pk) == 1

    await wait_for(forwarded, timeout=10, what="the held letter forwarded")
    details = await pool.fetchval("SELECT details FROM audit_events WHERE kind = 'validation.completed' "
                                  "AND message_pk = $1", pk)
    assert details["validation"] == "valid" and details["pdf_valid"] is True
    report = json.loads(await pool.fetchval("SELECT data FROM validation_items WHERE sha256 = $1",
                                            bytes.fromhex(details["validation_sha256"])))
    assert {s["role"] for s in report["signatures"]} == {"author", "pdf"}
    assert all(s["revocation"] == "ok" for s in report["signatures"])


async def test_pdf_signer_revoked_while_held_is_refused_with_a_notifier(gateway):
    world, clock = gateway.world, gateway.clock
    pool = gateway.app[keys.POOL]
    assert (await submit(gateway, "ก่อนขัดข้อง", "pdf-warm2", by_author=True)).status == 202
    world.down = True
    r = await submit(gateway, "PDF จะถูกปฏิเสธ", "pdf-refused")
    assert r.status == 202, await r.text()
    pk = await pool.fetchval("SELECT pk FROM messages WHERE message_id = 'pdf-refused'")
    world.down = False
    world.revoked[world.pdf_signer.cert.serial_number] = clock.now() - dt.timedelta(minutes=1)
    clock.advance(120)
    checks = pending_checks(gateway)

    async def refused():
        await checks.run_once()
        return await pool.fetchval("SELECT details FROM audit_events WHERE kind = 'validation.refused' "
                                   "AND message_pk = $1", pk)

    details = await wait_for(refused, timeout=10, what="the refusal")
    assert details["code"] == "pdf.signature_invalid"
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE message_pk = $1", pk) == 0
    notice = await pool.fetchrow("SELECT m.message_type, d.recipient FROM messages m JOIN deliveries d ON "
                                 "d.message_pk = m.pk WHERE m.message_id = $1", f"validation-refused-{pk}")
    assert notice["message_type"] == "notifier" and notice["recipient"] == OPM
