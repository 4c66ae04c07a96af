"""What ``env:Signatures`` may hold (issue 13, class 7): validated signatures, and nothing they do not sign.

Each hostile shape is refused three ways: by the envelope XSD where the schemas can say it
(``envelope.schema_invalid``), by :func:`pki.sigzone.check_signature_zone` (``signature.structure``
naming the place), and by the verification receivers run (:func:`pki.verify.verify_envelope`,
:func:`pki.seal.verify_sealed`), whether signatures are required or not. Every real signature
(signxml plain and XAdES, the gateway's lean and XAdES seals, receipts) passes all three.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lxml import etree
from samples import envelope

from gateway.core.errors import EnvelopeError
from gateway.core.receipts import submission_receipt
from gateway.core.xml import DSIG_NS, ENVELOPE_NS, parse, validate
from gateway.http.errors import status_for
from pki.errors import PkiError
from pki.receipts import sign_receipt, verify_receipt
from pki.seal import seal_envelope, verify_sealed
from pki.sign import sign_envelope
from pki.sigzone import check_signature_zone, declared_tags
from pki.verify import validate_envelope, verify_envelope
from pki.xmlsig_lean import lean_signature
from pki.xmlsig_parts import envelope_parts, serialize, signatures_container

E = "{%s}" % ENVELOPE_NS
DS = "{%s}" % DSIG_NS
XADES = "{http://uri.etsi.org/01903/v1.3.2#}"
XI = "{http://www.w3.org/2001/XInclude}"
DS11 = "{http://www.w3.org/2009/xmldsig11#}"


def dump(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def signature(root: etree._Element, n: int = 1) -> etree._Element:
    return root.find(f"{E}Signatures/{DS}Signature[{n}]")


def xinclude() -> etree._Element:
    el = etree.Element(XI + "include", nsmap={"xi": XI[1:-1]})
    el.set("href", "file:///etc/passwd")
    el.set("parse", "text")
    return el


def forged_letter(root: etree._Element) -> etree._Element:
    fake = copy.deepcopy(root.find(E + "Letter"))
    del fake.attrib["Id"]
    fake.find(E + "Subject").text = "โอนเงินด่วน"
    return fake


def second_signature(data: bytes, signer, *, object_content: etree._Element | None) -> bytes:
    """A second, well-formed ds:Signature (Id Cosign) over the letter, carrying a ds:Object."""
    root = parse(data)
    parts = envelope_parts(root)
    sig = lean_signature(signer, [("#Letter", parts.body)], signature_id="Cosign")
    if object_content is not None:
        etree.SubElement(sig, DS + "Object").append(object_content)
    signatures_container(parts).append(sig)
    return serialize(root)


def refused_everywhere(data: bytes, *, schema: bool, field: str | None, seal: bool = True) -> PkiError:
    """The zone check refuses with signature.structure (and ``field``); the XSD does too iff ``schema``."""
    root = parse(data)
    if schema:
        with pytest.raises(EnvelopeError) as xsd:
            validate("envelope-v1.xsd", root)
        assert xsd.value.code == "envelope.schema_invalid"
    else:
        validate("envelope-v1.xsd", root)  # the schemas cannot say it: the zone check does
    with pytest.raises(PkiError) as info:
        check_signature_zone(root, seal=seal)
    assert info.value.code == "signature.structure", repr(info.value)
    if field is not None:
        assert info.value.field == field, repr(info.value)
    assert status_for(info.value.code) == 422
    return info.value


async def refused_by_verifiers(data: bytes, trust, *, sender: str = "00001") -> None:
    for required in (True, False):
        with pytest.raises(PkiError) as info:
            await verify_envelope(data, trust, sender=sender, require_signature=required)
        assert info.value.code == "signature.structure", repr(info.value)
        report = await validate_envelope(data, trust, sender=sender, require_signature=required)
        assert not report.ok and report.failure is not None and report.failure.code == "signature.structure"


# --------------------------------------------------------------------------- what real signatures look like


@pytest.mark.parametrize("xades_seal", [False, True], ids=["lean-seal", "xades-seal"])
@pytest.mark.parametrize("xades", [True, False], ids=["xades-author", "plain-author"])
@pytest.mark.parametrize("sign_header", [False, True], ids=["body", "header-too"])
async def test_real_signatures_and_seals_pass(letter, signer1, seal_signer, dev_pki, trust, xades, xades_seal,
                                              sign_header):
    signed = sign_envelope(letter, signer1, xades=xades, sign_header=sign_header)
    for data, seal in ((signed, False), (signed, True)):
        root = parse(data)
        validate("envelope-v1.xsd", root)
        check_signature_zone(root, seal=seal)
    sealed = seal_envelope(signed, seal_signer, xades=xades_seal)
    root = parse(sealed)
    validate("envelope-v1.xsd", root)
    check_signature_zone(root)
    result = await verify_sealed(sealed, trust, gateway_cert=dev_pki.gateway_cert)
    assert result.seal_ok and result.author.report.ok


async def test_unsigned_and_notifier_envelopes_and_receipts_pass(signer1, seal_signer, dev_pki, trust):
    for data in (envelope(), envelope(attachments=0), envelope(body="notifier")):
        for made in (data, sign_envelope(data, signer1), seal_envelope(data, seal_signer),
                     seal_envelope(sign_envelope(data, signer1), seal_signer)):
            root = parse(made)
            validate("envelope-v1.xsd", root)
            check_signature_zone(root)
    receipt = sign_receipt(submission_receipt(message_id="msg-0001", sender="00001", sha256_hex="0" * 64,
                                              at=dt.datetime(2026, 11, 22, 9, 30, tzinfo=dt.UTC)), seal_signer)
    root = parse(receipt)
    validate("envelope-v1.xsd", root)
    check_signature_zone(root)
    assert (await verify_receipt(receipt, dev_pki.gateway_cert)).kind == "submission"


async def test_a_key_value_beside_the_certificate_passes(letter, signer1, trust):
    """Other signing tools add KeyValue (XML-DSig 1.1 ECKeyValue for EC keys); its NamedCurve URI names
    a curve, it is not fetched."""
    root = parse(sign_envelope(letter, signer1, xades=False))
    key_value = etree.SubElement(signature(root).find(DS + "KeyInfo"), DS + "KeyValue")
    ec_key = etree.SubElement(key_value, DS11 + "ECKeyValue", nsmap={"dsig11": DS11[1:-1]})
    etree.SubElement(ec_key, DS11 + "NamedCurve", URI="urn:oid:1.2.840.10045.3.1.7")
    point = signer1.certificate.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    etree.SubElement(ec_key, DS11 + "PublicKey").text = base64.b64encode(point).decode()
    validate("envelope-v1.xsd", root)
    check_signature_zone(root)
    assert (await verify_envelope(dump(root), trust, sender="00001")).agency_code == "00001"
    etree.SubElement(signature(root).find(DS + "KeyInfo"), DS11 + "KeyInfoReference", URI="http://127.0.0.1:9/k")
    refused_everywhere(dump(root), schema=False, field="Signatures/Signature[1]/KeyInfo[1]/KeyInfoReference[1]")


def test_the_allow_listed_names_are_the_stored_schemas_declarations():
    names = declared_tags()
    assert {DS + "Signature", DS + "Object", DS + "X509Certificate", XADES + "QualifyingProperties",
            XADES + "SignedProperties", XADES + "SigningCertificateV2", XADES + "Cert", DS11 + "ECKeyValue",
            "{http://uri.etsi.org/01903/v1.4.1#}ArchiveTimeStamp"} <= names
    assert XADES + "Nope" not in names and E + "Letter" not in names


# --------------------------------------------------------------------------- hostile shapes


async def test_a_second_signature_carrying_a_forged_unsigned_letter(letter, signer1, signer2, trust):
    signed = sign_envelope(letter, signer1)
    root = parse(signed)
    data = second_signature(signed, signer2, object_content=forged_letter(root))
    refused_everywhere(data, schema=False, field="Signatures/Signature[2]/Object[1]")
    await refused_by_verifiers(data, trust)
    # the same on a letter that carries no author signature at all (signatures not required)
    data = second_signature(letter, signer2, object_content=forged_letter(parse(letter)))
    refused_everywhere(data, schema=False, field="Signatures/Signature[1]/Object[1]")
    report = await validate_envelope(data, trust, sender="00001", require_signature=False)
    assert not report.ok and report.failure.code == "signature.structure"


async def test_a_well_formed_second_signature_is_refused_too(letter, signer1, signer2, trust):
    """Nobody verifies a second author-side signature: it may not ride along under the seal."""
    data = second_signature(sign_envelope(letter, signer1), signer2, object_content=None)
    refused_everywhere(data, schema=False, field="Signatures/Signature[2]")
    await refused_by_verifiers(data, trust)


@pytest.mark.parametrize("xades", [True, False])
async def test_an_object_holding_an_xinclude(letter, signer1, trust, xades):
    root = parse(sign_envelope(letter, signer1, xades=xades))
    obj = etree.SubElement(signature(root), DS + "Object")
    obj.append(xinclude())
    n = 2 if xades else 1
    refused_everywhere(dump(root), schema=False, field=f"Signatures/Signature[1]/Object[{n}]")
    await refused_by_verifiers(dump(root), trust)


async def test_an_xinclude_inside_the_referenced_xades_object(letter, signer1, trust):
    """Next to the signed properties, in the Object the signature does reference."""
    root = parse(sign_envelope(letter, signer1, xades=True))
    signature(root).find(f"{DS}Object/{XADES}QualifyingProperties").addprevious(xinclude())
    refused_everywhere(dump(root), schema=False, field="Signatures/Signature[1]/Object[1]")
    await refused_by_verifiers(dump(root), trust)


async def test_an_xinclude_in_keyinfo_and_x509data(letter, signer1, trust):
    for where in (f"{DS}KeyInfo", f"{DS}KeyInfo/{DS}X509Data"):
        root = parse(sign_envelope(letter, signer1, xades=False))
        signature(root).find(where).append(xinclude())
        last = "KeyInfo[1]/include[1]" if where.endswith("KeyInfo") else "KeyInfo[1]/X509Data[1]/include[1]"
        refused_everywhere(dump(root), schema=False, field=f"Signatures/Signature[1]/{last}")
        await refused_by_verifiers(dump(root), trust)


async def test_an_unreferenced_object_of_signature_elements(letter, signer1, trust):
    root = parse(sign_envelope(letter, signer1, xades=False))
    obj = etree.SubElement(signature(root), DS + "Object", Id="Extra")
    etree.SubElement(etree.SubElement(obj, DS + "KeyInfo"), DS + "KeyName").text = "a key the signature ignores"
    refused_everywhere(dump(root), schema=False, field="Signatures/Signature[1]/Object[1]")
    await refused_by_verifiers(dump(root), trust)
    empty = parse(sign_envelope(letter, signer1, xades=False))
    etree.SubElement(signature(empty), DS + "Object")
    refused_everywhere(dump(empty), schema=False, field="Signatures/Signature[1]/Object[1]")


async def test_an_undeclared_xades_element_at_a_lax_place(letter, signer1, trust):
    root = parse(sign_envelope(letter, signer1, xades=True))
    signature(root).find(f"{DS}Object").append(etree.Element(XADES + "Nope"))
    refused_everywhere(dump(root), schema=False, field="Signatures/Signature[1]/Object[1]")
    # inside the signed properties' wildcard (xades:ClaimedRole is xades:AnyType: lax, mixed)
    root = parse(sign_envelope(letter, signer1, xades=True))
    signed_props = signature(root).find(f"{DS}Object/{XADES}QualifyingProperties/{XADES}SignedProperties/"
                                        f"{XADES}SignedSignatureProperties")
    role = etree.SubElement(etree.SubElement(etree.SubElement(signed_props, XADES + "SignerRoleV2"),
                                             XADES + "ClaimedRoles"), XADES + "ClaimedRole")
    role.text = "ปลัด"
    etree.SubElement(role, XADES + "Nope")
    refused_everywhere(dump(root), schema=False, field=None)
    await refused_by_verifiers(dump(root), trust)


async def test_a_declared_element_out_of_its_place_at_a_lax_place(letter, signer1, trust):
    """xades:Cert is declared only inside SigningCertificate: at a wildcard, libxml2 would not validate it."""
    root = parse(sign_envelope(letter, signer1, xades=True))
    obj = signature(root).find(f"{DS}Object")
    qualifying = obj.find(XADES + "QualifyingProperties")
    qualifying.addnext(etree.Element(XADES + "Cert", Id="c1"))
    last = signature(root).findall(f"{DS}SignedInfo/{DS}Reference")[-1]
    reference = copy.deepcopy(last)
    reference.set("URI", "#c1")  # referenced: the Object rule holds, the place does not
    last.addnext(reference)
    refused_everywhere(dump(root), schema=False, field="Signatures/Signature[1]/Object[1]/Cert[1]")
    await refused_by_verifiers(dump(root), trust)
    # inside a wildcard of the signed properties (xades:ClaimedRole)
    root = parse(sign_envelope(letter, signer1, xades=True))
    signed_props = signature(root).find(f"{DS}Object/{XADES}QualifyingProperties/{XADES}SignedProperties/"
                                        f"{XADES}SignedSignatureProperties")
    role = etree.SubElement(etree.SubElement(etree.SubElement(signed_props, XADES + "SignerRoleV2"),
                                             XADES + "ClaimedRoles"), XADES + "ClaimedRole")
    etree.SubElement(role, XADES + "Cert")
    refused_everywhere(dump(root), schema=False, field=None)
    # while a top-level declaration there is validated by the schemas (and allowed)
    role.remove(role[0])
    etree.SubElement(role, XADES + "Any").text = "ปลัดสำนักนายกรัฐมนตรี"
    validate("envelope-v1.xsd", root)
    check_signature_zone(root)


async def test_text_where_the_schemas_allow_mixed_content(letter, signer1, trust):
    for where in (f"{DS}KeyInfo", f"{DS}SignedInfo/{DS}SignatureMethod",
                  f"{DS}SignedInfo/{DS}Reference/{DS}Transforms/{DS}Transform"):
        root = parse(sign_envelope(letter, signer1, xades=False))
        target = signature(root).find(where)
        if len(target):
            target[0].tail = "<script>alert(1)</script>"
        else:
            target.text = "<script>alert(1)</script>"
        refused_everywhere(dump(root), schema=False, field=None)
        await refused_by_verifiers(dump(root), trust)


async def test_fetchable_uris(letter, signer1, trust):
    root = parse(sign_envelope(letter, signer1, xades=False))
    etree.SubElement(signature(root).find(DS + "KeyInfo"), DS + "RetrievalMethod", URI="http://127.0.0.1:9/key")
    refused_everywhere(dump(root), schema=False, field="Signatures/Signature[1]/KeyInfo[1]/RetrievalMethod[1]")
    await refused_by_verifiers(dump(root), trust)
    root = parse(sign_envelope(letter, signer1, xades=False))
    signature(root).find(f"{DS}SignedInfo/{DS}Reference[2]").set("URI", "http://127.0.0.1:9/att")
    refused_everywhere(dump(root), schema=False, field="Signatures/Signature[1]/SignedInfo[1]/Reference[2]")
    await refused_by_verifiers(dump(root), trust)


async def test_foreign_attributes(letter, signer1, trust):
    root = parse(sign_envelope(letter, signer1, xades=False))
    signature(root).set("{http://www.w3.org/XML/1998/namespace}base", "http://127.0.0.1:9/")
    refused_everywhere(dump(root), schema=True, field="Signatures/Signature[1]")
    await refused_by_verifiers(dump(root), trust)


async def test_roles_order_and_count(letter, signer1, seal_signer, trust):
    sealed = seal_envelope(sign_envelope(letter, signer1), seal_signer)
    # the seal before the author's signature
    root = parse(sealed)
    seal = signature(root, 2)
    signature(root, 1).addprevious(seal)
    refused_everywhere(dump(root), schema=False, field="Signatures/Signature[2]")  # the first out of order
    # three signatures (the XSD allows two)
    root = parse(sealed)
    extra = copy.deepcopy(signature(root, 2))
    extra.set("Id", "Another")
    root.find(E + "Signatures").append(extra)
    refused_everywhere(dump(root), schema=True, field="Signatures/Signature[3]")
    # anything but ds:Signature directly in Signatures
    root = parse(sign_envelope(letter, signer1))
    root.find(E + "Signatures").append(etree.Element(DS + "Object"))
    refused_everywhere(dump(root), schema=True, field="Signatures/Object[1]")
    await refused_by_verifiers(dump(root), trust)


def test_a_seal_where_none_may_be_yet(letter, signer1, seal_signer):
    """A submitted envelope cannot carry the gateway's seal: the gateway adds it after intake."""
    root = parse(seal_envelope(sign_envelope(letter, signer1), seal_signer))
    with pytest.raises(PkiError) as info:
        check_signature_zone(root, seal=False)
    assert (info.value.code, info.value.field) == ("signature.sealed", "Signatures/Signature[2]")
    assert status_for(info.value.code) == 422
    check_signature_zone(root)  # what receivers get
