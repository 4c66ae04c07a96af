"""Issue 13, class 7, through POST /v1/messages: nothing unvalidated rides in ``env:Signatures``.

A second ds:Signature carrying a forged unsigned Letter, a ds:Object holding an XInclude of
/etc/passwd, a seal the gateway did not make: each is refused with its code and the place, whether
signatures are required or not, and nothing is stored. What the gateway does forward (its seal over a
signed letter) passes the very check receivers run (the XSD, the zone check, :func:`verify_sealed`).
"""

from __future__ import annotations

import copy

import pytest
from lxml import etree

from gateway.core import xml
from gateway.core.xml import DSIG_NS, ENVELOPE_NS
from pki.seal import seal_envelope, verify_sealed
from pki.sign import sign_envelope
from pki.sigzone import check_signature_zone
from pki.xmlsig_lean import lean_signature
from pki.xmlsig_parts import envelope_parts, serialize, signatures_container
from tests.integration.test_submit import auth, counts
from tests.support import CMI, KKN, OPM, letter_bytes

E, DS = "{%s}" % ENVELOPE_NS, "{%s}" % DSIG_NS
XI = "http://www.w3.org/2001/XInclude"
NOTHING = {"messages": 0, "deliveries": 0, "receipts": 0, "audit_events": 0}


def _xinclude() -> etree._Element:
    el = etree.Element(f"{{{XI}}}include", nsmap={"xi": XI}, href="file:///etc/passwd")
    el.set("parse", "text")
    return el


def second_signature_with_forged_letter(data: bytes, signer) -> bytes:
    root = xml.parse(data)
    parts = envelope_parts(root)
    fake = copy.deepcopy(parts.body)
    del fake.attrib["Id"]
    fake.find(E + "Subject").text = "โอนเงินด่วนเข้าบัญชีนี้"
    sig = lean_signature(signer, [("#Letter", parts.body)], signature_id="Cosign")
    etree.SubElement(sig, DS + "Object").append(fake)
    signatures_container(parts).append(sig)
    return serialize(root)


def object_with_xinclude(data: bytes) -> bytes:
    root = xml.parse(data)
    etree.SubElement(root.find(f"{E}Signatures/{DS}Signature"), DS + "Object").append(_xinclude())
    return serialize(root)


def object_beside_signature(data: bytes) -> bytes:
    root = xml.parse(data)
    etree.SubElement(root.find(E + "Signatures"), DS + "Object")
    return serialize(root)


def shapes(dev_pki, message_id: str) -> dict[str, tuple[bytes, int, str, str]]:
    """name -> (body, status, code, field)."""
    plain = letter_bytes(sender=OPM, recipients=(CMI,), message_id=message_id)
    signed = sign_envelope(plain, dev_pki.agency_signer(OPM))
    other = dev_pki.agency_signer(KKN)
    return {
        "forged-letter-in-second-signature": (second_signature_with_forged_letter(signed, other), 422,
                                              "signature.structure", "Signatures/Signature[2]/Object[1]"),
        "forged-letter-unsigned": (second_signature_with_forged_letter(plain, other), 422, "signature.structure",
                                   "Signatures/Signature[1]/Object[1]"),
        "xinclude-object": (object_with_xinclude(signed), 422, "signature.structure",
                            "Signatures/Signature[1]/Object[2]"),
        "seal-not-ours": (seal_envelope(signed, other), 422, "signature.sealed", "Signatures/Signature[2]"),
        "object-outside-signature": (object_beside_signature(signed), 400, "envelope.schema_invalid",
                                     "/Envelope/Signatures/Object"),
    }


@pytest.mark.parametrize("required", [False, True], ids=["signatures-optional", "signatures-required"])
async def test_junk_in_signatures_is_refused_and_nothing_stored(make_client, pool, dev_pki, required):
    client = await make_client(require_signature=required, seal=True, revocation="off")
    cases = shapes(dev_pki, "zone-1")
    for name, (data, status, code, field) in cases.items():
        r = await client.post("/v1/messages", data=data, headers=auth())
        body = await r.json()
        assert (r.status, body["code"], body.get("field")) == (status, code, field), (name, body)
        assert await counts(pool) == NOTHING, name
    rejected = [r["details"]["code"] for r in await pool.fetch(
        "SELECT details FROM audit_events WHERE kind = 'message.rejected' ORDER BY seq")]
    assert rejected == [c[2] for c in cases.values()]


async def test_what_the_gateway_forwards_passes_the_check_receivers_run(make_client, pool, dev_pki):
    client = await make_client(require_signature=True, seal=True, revocation="off")
    data = sign_envelope(letter_bytes(sender=OPM, recipients=(CMI,), message_id="zone-ok"),
                         dev_pki.agency_signer(OPM))
    r = await client.post("/v1/messages", data=data, headers=auth())
    assert r.status == 202, await r.text()
    forwarded = await pool.fetchval("SELECT forwarded_bytes(received, forwarded, forwarded_edits, forwarded_inserts) FROM messages WHERE message_id = 'zone-ok'")
    root = xml.parse(forwarded)
    assert len(root.find(E + "Signatures")) == 2  # the author's signature and the seal
    xml.validate("envelope-v1.xsd", root)
    check_signature_zone(root)
    sealed = await verify_sealed(forwarded, dev_pki.trust_store(revocation="off"),
                                 gateway_cert=dev_pki.gateway_cert)
    assert sealed.seal_ok and sealed.author.report.ok
