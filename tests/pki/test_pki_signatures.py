"""Author signature, gateway seal and receipts: round trips, tampering, wrapping, policy."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import uuid

import pytest
from conftest import file_signer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from samples import envelope
from signxml import SignatureConfiguration, XMLSigner, XMLVerifier
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.xades import XAdESVerifier

from gateway.core.receipts import delivery_receipt_envelope, submission_receipt
from gateway.core.xml import DSIG_NS, ENVELOPE_NS, parse, validate
from gateway.http.errors import status_for
from pki.certfactory import CertFactory, agency_name
from pki.devca import init_dev_pki
from pki.errors import PkiError
from pki.keys import FileSigner, der_to_raw_ecdsa
from pki.receipts import sign_receipt, verify_receipt, verify_signed_ack
from pki.seal import seal_envelope, verify_sealed
from pki.sign import _sign_envelope, sign_envelope
from pki.trust import AgencyBinding, fingerprint
from pki.verify import validate_envelope, verify_envelope
from pki.xmlsig_lean import signature_template
from pki.xmlsig_parts import AUTHOR_SIGNATURE_ID, envelope_parts, id_index
from pki.xmlsig_policy import check_references
from pki.xmlsig_signxml import _DigestCachedCert, _XAdESVerifier
from tests.support import delivery_ack

E = "{%s}" % ENVELOPE_NS
DS = "{%s}" % DSIG_NS


def tree(data: bytes) -> etree._Element:
    return parse(data)


def dump(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


async def expect_code(code: str, data: bytes, trust, *, sender: str = "00001", **kwargs) -> PkiError:
    with pytest.raises(PkiError) as info:
        await verify_envelope(data, trust, sender=sender, **kwargs)
    assert info.value.code == code, repr(info.value)
    report = await validate_envelope(data, trust, sender=sender, **kwargs)
    assert not report.ok and report.failure is not None and report.failure.code == code
    return info.value


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("xades", [True, False])
async def test_sign_and_verify_round_trip(letter, signer1, trust, xades):
    signed = sign_envelope(letter, signer1, xades=xades)
    validate("envelope-v1.xsd", tree(signed))  # the signature container keeps the envelope schema-valid
    verified = await verify_envelope(signed, trust, sender="00001")
    report = verified.report
    assert report.ok and report.signature_intact and report.signer_trusted and report.signer_authorised
    assert report.digests_ok and report.policy_ok
    assert verified.agency_code == "00001" and verified.signature_algorithm == "ecdsa-sha256"
    assert verified.raw == signed
    assert verified.body.getparent() is verified.root and verified.body.get("Id") == "Letter"
    assert [a.get("Id") for a in verified.attachments] == ["att-1"]
    assert all(a.getparent().getparent() is verified.root for a in verified.attachments)
    assert verified.references[:2] == ("#Letter", "#att-1")
    assert len(verified.contents["att-1"]) == int(verified.attachments[0].findtext(E + "Size"))
    assert (verified.signing_time is not None) == xades
    sig = tree(signed).find(f"{E}Signatures/{DS}Signature")
    assert sig.get("Id") == AUTHOR_SIGNATURE_ID


async def test_signature_container_is_placed_after_attachments(signer1):
    signed = tree(sign_envelope(envelope(attachments=2), signer1))
    assert [etree.QName(c).localname for c in signed] == ["Header", "Letter", "Attachments", "Signatures"]
    no_att = tree(sign_envelope(envelope(attachments=0), signer1))
    assert [etree.QName(c).localname for c in no_att] == ["Header", "Letter", "Signatures"]


async def test_notifier_and_header_signing(signer1, trust):
    signed = sign_envelope(envelope(body="notifier", attachments=0), signer1, sign_header=True)
    validate("envelope-v1.xsd", tree(signed))
    verified = await verify_envelope(signed, trust, sender="00001")
    assert verified.body.tag == E + "Notifier"
    assert set(verified.references) >= {"#Header", "#Notifier"}
    # the header is now covered: changing the recipients breaks the signature
    root = tree(signed)
    root.find(f"{E}Header/{E}Recipients/{E}Recipient").text = "00009"
    await expect_code("signature.invalid", dump(root), trust)


async def test_rsa_2048_signer(dev_pki, factory, trust):
    issued = factory.agency_signing("00001", "RSA agency", key_type="rsa-2048")
    signed = sign_envelope(envelope(), file_signer(issued, dev_pki))
    verified = await verify_envelope(signed, trust, sender="00001")
    assert verified.signature_algorithm == "rsa-sha256"


async def test_stock_signxml_accepts_our_signatures(letter, signer1, seal_signer, dev_pki):
    """Interop: the lean seal/receipt builder and the author signature verify with unmodified signxml."""
    loc = "./{%s}Signatures/" % ENVELOPE_NS
    signed = sign_envelope(letter, signer1, xades=False)
    XMLVerifier().verify(signed, x509_cert=signer1.certificate,
                         expect_config=SignatureConfiguration(location=loc, expect_references=2))
    sealed_only = seal_envelope(letter, seal_signer)  # no author signature: the seal is the first
    results = XMLVerifier().verify(sealed_only, x509_cert=seal_signer.certificate,
                                   expect_config=SignatureConfiguration(location=loc, expect_references=3))
    assert [r.signed_xml.tag for r in results] == [E + "Header", E + "Letter", E + "Attachment"]
    receipt = sign_receipt(_receipt(), seal_signer)
    result = XMLVerifier().verify(receipt, x509_cert=seal_signer.certificate,
                                  expect_config=SignatureConfiguration(location=loc, expect_references=1))
    assert result.signed_xml.find(f"{E}Receipt/{E}Kind").text == "submission"


async def test_comment_inside_signed_text_cannot_truncate_what_is_read(letter, signer1, trust):
    root = tree(sign_envelope(letter, signer1))
    subject = root.find(f"{E}Letter/{E}Subject")
    full = subject.text
    subject.text = full[:5]
    comment = etree.Comment("x")
    comment.tail = full[5:]
    subject.append(comment)
    verified = await verify_envelope(dump(root), trust, sender="00001")
    assert verified.body.find(E + "Subject").text == full


# --------------------------------------------------------------------------- tampering


async def test_tampered_letter(letter, signer1, trust):
    root = tree(sign_envelope(letter, signer1))
    root.find(f"{E}Letter/{E}Subject").text = "เรื่องที่ถูกแก้ไข"
    error = await expect_code("signature.invalid", dump(root), trust)
    assert "#Letter" in error.message


async def test_tampered_attachment_bytes(letter, signer1, trust):
    root = tree(sign_envelope(letter, signer1))
    content = root.find(f"{E}Attachments/{E}Attachment/{E}Content")
    data = bytearray(base64.b64decode(content.text))
    data[10] ^= 0xFF
    content.text = base64.b64encode(bytes(data)).decode()
    # the damaged bytes break the signature too; the report names the more precise fact
    error = await expect_code("attachment.digest_mismatch", dump(root), trust)
    assert error.field.endswith("/Sha256")
    report = await validate_envelope(dump(root), trust, sender="00001")
    assert report.signature_intact is False and report.digests_ok is False


async def test_attachment_digest_checked_inside_signed_attachment(signer1, trust):
    """Size/Sha256 are checked against Content even when the author signed a wrong digest."""
    root = tree(envelope())
    root.find(f"{E}Attachments/{E}Attachment/{E}Sha256").text = "0" * 64
    signed = sign_envelope(dump(root), signer1)
    error = await expect_code("attachment.digest_mismatch", signed, trust)
    assert error.field.endswith("/Sha256")
    report = await validate_envelope(signed, trust, sender="00001")
    assert report.signature_intact and report.signer_trusted and report.digests_ok is False
    root = tree(envelope())
    root.find(f"{E}Attachments/{E}Attachment/{E}Size").text = "1"
    error = await expect_code("attachment.digest_mismatch", sign_envelope(dump(root), signer1), trust)
    assert error.field.endswith("/Size")


async def test_tampered_digest_element(letter, signer1, trust):
    root = tree(sign_envelope(letter, signer1))
    root.find(f"{E}Attachments/{E}Attachment/{E}Sha256").text = "f" * 64
    await expect_code("attachment.digest_mismatch", dump(root), trust)
    # a signed attachment field that does not touch the bytes' digest: the signature's fact
    root = tree(sign_envelope(letter, signer1))
    root.find(f"{E}Attachments/{E}Attachment/{E}FileName").text = "อื่น.pdf"
    await expect_code("signature.invalid", dump(root), trust)


async def test_missing_signature(letter, trust):
    await expect_code("signature.missing", letter, trust)
    verified = await verify_envelope(letter, trust, sender="00001", require_signature=False)
    assert verified.signer is None and verified.report.ok and not verified.report.signed


# --------------------------------------------------------------------------- wrapping


async def test_wrapping_signed_letter_moved_into_object_with_fake_in_place(letter, signer1, trust):
    for fake_id in ("Letter", "Letter2"):
        root = tree(sign_envelope(letter, signer1, xades=False))
        original = root.find(E + "Letter")
        fake = copy.deepcopy(original)
        fake.set("Id", fake_id)
        fake.find(E + "Subject").text = "โอนเงินด่วน"
        signature = root.find(f"{E}Signatures/{DS}Signature")
        obj = etree.SubElement(signature, DS + "Object")
        original.addprevious(fake)
        obj.append(original)  # moves the signed letter out of its place
        # an env:Letter is nothing a signature may carry (pki.sigzone), before any reference is looked at ...
        error = await expect_code("signature.structure", dump(root), trust)
        assert error.field == "Signatures/Signature[1]/Object[1]/Letter[1]"
        # ... and the reference check on its own still sees the wrapping
        parts = envelope_parts(root)
        with pytest.raises(PkiError) as info:
            check_references(signature, id_index(root), required=[parts.body, *parts.attachments])
        assert (info.value.code, info.value.field) == ("signature.wrapping", "#Letter")


async def test_wrapping_duplicated_id(letter, signer1, trust):
    root = tree(sign_envelope(letter, signer1))
    attachments = root.find(E + "Attachments")
    attachments.append(copy.deepcopy(attachments[0]))
    await expect_code("signature.wrapping", dump(root), trust)
    # another id-like attribute name counts as well
    root = tree(sign_envelope(letter, signer1))
    root.find(f"{E}Header/{E}MessageId").set("ID", "Letter")
    await expect_code("signature.wrapping", dump(root), trust)


async def test_extra_reference(letter, signer1, trust):
    """A reference to something that is not a part of the envelope standard: an Object of the signature
    (referenced, so pki.sigzone lets it be; a ds:Object directly in Signatures is refused before,
    tests/pki/test_signature_zone.py)."""
    root = tree(sign_envelope(letter, signer1, xades=False))
    signature = root.find(f"{E}Signatures/{DS}Signature")
    obj = etree.SubElement(signature, DS + "Object", Id="Extra")
    etree.SubElement(etree.SubElement(obj, DS + "KeyInfo"), DS + "KeyName").text = "not part of the letter"
    last = signature.findall(f"{DS}SignedInfo/{DS}Reference")[-1]
    extra = copy.deepcopy(last)
    extra.set("URI", "#Extra")
    last.addnext(extra)
    validate("envelope-v1.xsd", tree(dump(root)))
    await expect_code("signature.references", dump(root), trust)


async def test_missing_reference(letter, signer1, trust):
    signed = _sign_envelope(letter, signer1, references=["#Letter"])
    error = await expect_code("signature.references", signed, trust)
    assert "att-1" in error.message
    # an attachment added after signing is not covered either
    root = tree(sign_envelope(letter, signer1))
    extra = copy.deepcopy(root.find(f"{E}Attachments/{E}Attachment"))
    extra.set("Id", "att-2")
    root.find(E + "Attachments").append(extra)
    await expect_code("signature.references", dump(root), trust)


async def test_reference_listed_twice(letter, signer1, trust):
    signed = _sign_envelope(letter, signer1, xades=False, references=["#Letter", "#att-1", "#att-1"])
    await expect_code("signature.references", signed, trust)


# --------------------------------------------------------------------------- signer policy


async def test_wrong_agency(letter, signer2, trust):
    signed = sign_envelope(letter, signer2)  # a valid certificate of agency 00002
    error = await expect_code("certificate.wrong_agency", signed, trust, sender="00001")
    assert status_for(error.code) == 403
    report = await validate_envelope(signed, trust, sender="00001")
    assert report.signature_intact and report.signer_trusted and report.signer_authorised is False
    assert (await verify_envelope(signed, trust, sender="00002")).agency_code == "00002"


async def test_pinned_fingerprints(dev_pki, factory, letter, signer1):
    other_key_same_agency = file_signer(factory.agency_signing("00001", "second key"), dev_pki)
    trust = dev_pki.trust_store(ocsp=False, binding=AgencyBinding.from_directory(
        {"00001": [fingerprint(signer1.certificate)]}))
    assert (await verify_envelope(sign_envelope(letter, signer1), trust, sender="00001")).report.ok
    await expect_code("certificate.wrong_agency", sign_envelope(letter, other_key_same_agency), trust)


async def test_expired_and_not_yet_valid_signers(dev_pki, factory, letter, trust):
    now = factory.now
    expired = factory.agency_signing("00001", "A", not_before=now - dt.timedelta(days=30),
                                     not_after=now - dt.timedelta(days=1))
    await expect_code("certificate.expired", sign_envelope(letter, file_signer(expired, dev_pki)), trust)
    future = factory.agency_signing("00001", "A", not_before=now + dt.timedelta(days=1),
                                    not_after=now + dt.timedelta(days=30))
    await expect_code("certificate.not_yet_valid", sign_envelope(letter, file_signer(future, dev_pki)),
                      trust)


async def test_unknown_ca(letter, trust):
    rogue = CertFactory.new_root("Rogue Root").intermediate("Rogue Issuing CA")
    issued = rogue.agency_signing("00001", "สำนักนายกรัฐมนตรี")  # same agency code, wrong CA
    signed = sign_envelope(letter, FileSigner(issued.key, issued.cert, [rogue.ca.cert]))
    await expect_code("certificate.untrusted", signed, trust)


async def test_key_usage_mismatch(dev_pki, factory, letter, trust):
    tls_only = factory.issue(agency_name("00001", "A"), profile="tls-client")
    await expect_code("certificate.key_usage", sign_envelope(letter, file_signer(tls_only, dev_pki)),
                      trust)


async def test_rsa_1024_refused(dev_pki, factory, letter, trust):
    weak = factory.agency_signing("00001", "A", key_type="rsa-1024")
    signed = sign_envelope(letter, file_signer(weak, dev_pki), xades=False)
    error = await expect_code("signature.algorithm", signed, trust)
    assert "2048" in error.message


async def test_sha1_refused_unless_allowed(letter, signer1, trust):
    signed = _sign_envelope(letter, signer1, xades=False, signature_method=SignatureMethod.ECDSA_SHA1,
                                    digest_algorithm=DigestAlgorithm.SHA1)
    await expect_code("signature.algorithm", signed, trust)
    verified = await verify_envelope(signed, trust, sender="00001", allow_sha1=True)
    assert verified.signature_algorithm == "ecdsa-sha1"
    sha1_digest_only = _sign_envelope(letter, signer1, xades=False, digest_algorithm=DigestAlgorithm.SHA1)
    await expect_code("signature.algorithm", sha1_digest_only, trust)


async def test_sha1_signed_certificate_refused(dev_pki, factory, letter, trust):
    try:
        issued = factory.agency_signing("00001", "A", hash_algorithm=hashes.SHA1())
    except Exception as exc:  # pragma: no cover - depends on the OpenSSL build
        pytest.skip(f"this OpenSSL cannot make SHA-1 certificates: {exc}")
    await expect_code("certificate.algorithm", sign_envelope(letter, file_signer(issued, dev_pki)), trust)


async def test_validation_is_cached(letter, signer1, trust):
    signed = sign_envelope(letter, signer1)
    for _ in range(3):
        await verify_envelope(signed, trust, sender="00001")
    assert trust.stats == {"hits": 2, "validations": 1}


def _resign_author(signed: bytes, key, *, cert_digest: bytes | None = None) -> bytes:
    """Re-make the author's XAdES signature with ``key`` after (optionally) replacing the signed CertDigest."""
    root = tree(signed)
    sig = root.find(f"{E}Signatures/{DS}Signature")
    xades = "{http://uri.etsi.org/01903/v1.3.2#}"
    props = sig.find(f"{DS}Object/{xades}QualifyingProperties/{xades}SignedProperties")
    if cert_digest is not None:
        value = props.find(f".//{xades}CertDigest/{DS}DigestValue")
        value.text = base64.b64encode(cert_digest).decode()
    ref = [r for r in sig.iter(DS + "Reference") if r.get("URI") == "#" + props.get("Id")][0]
    c14n = etree.tostring(props, method="c14n", exclusive=True)
    ref.find(DS + "DigestValue").text = base64.b64encode(hashlib.sha256(c14n).digest()).decode()
    signed_info = etree.tostring(sig.find(DS + "SignedInfo"), method="c14n", exclusive=True)
    raw = der_to_raw_ecdsa(key.sign(signed_info, ec.ECDSA(hashes.SHA256())), 32)
    sig.find(DS + "SignatureValue").text = base64.b64encode(raw).decode()
    return dump(root)


async def test_xades_certificate_digest_cache_lets_no_other_certificate_through(dev_pki, factory, letter, trust):
    """The XAdES SigningCertificate digests are cached per certificate; the signed digest is still compared
    per letter. Two certificates for one key (a re-issue): after letters signed under each have verified
    (both digests cached), a letter whose signed CertDigest names the other certificate is refused."""
    first = factory.agency_signing("00001", "Re-issued agency")
    again = factory.issue(first.cert.subject, public_key=first.key.public_key())
    signer_a = file_signer(first, dev_pki)
    signer_b = file_signer(type(first)(again.cert, first.key), dev_pki)
    for signer in (signer_a, signer_b):
        verified = await verify_envelope(sign_envelope(letter, signer), trust, sender="00001")
        assert verified.signer == signer.certificate
    by_b = sign_envelope(letter, signer_b)
    # the re-signing itself is sound: unchanged, it verifies
    await verify_envelope(_resign_author(by_b, first.key), trust, sender="00001")
    forged = _resign_author(by_b, first.key, cert_digest=first.cert.fingerprint(hashes.SHA256()))
    error = await expect_code("signature.invalid", forged, trust)
    assert "certificate digest" in str(error)


def test_xades_schemas_are_signxmls_with_the_current_one_first():
    """Reordering changes no verdict (a signature valid against any one passes) and keeps the last error."""
    ours, stock = _XAdESVerifier.schema_files, XAdESVerifier.schema_files
    assert sorted(ours) == sorted(stock) and ours[-1] == stock[-1]


def test_digest_cached_certificate_is_per_certificate(signer1, signer2):
    a, b = _DigestCachedCert(signer1.certificate), _DigestCachedCert(signer2.certificate)
    for algorithm in (hashes.SHA256(), hashes.SHA384(), hashes.SHA512()):
        for _ in range(2):  # the second call answers from the cache
            assert a.fingerprint(algorithm) == signer1.certificate.fingerprint(algorithm)
            assert b.fingerprint(algorithm) == signer2.certificate.fingerprint(algorithm)
    assert a.fingerprint(hashes.SHA256()) != b.fingerprint(hashes.SHA256())
    assert a.public_bytes(Encoding.DER) == signer1.certificate.public_bytes(Encoding.DER)
    assert a.public_bytes(Encoding.PEM) == signer1.certificate.public_bytes(Encoding.PEM)
    with pytest.raises(AttributeError):
        a.public_key()  # only what signxml's digest check uses is offered


# --------------------------------------------------------------------------- seal


async def test_seal_covers_header_body_attachments_and_author_signature(letter, signer1, seal_signer, dev_pki,
                                                                       trust):
    sealed = seal_envelope(sign_envelope(letter, signer1), seal_signer)
    validate("envelope-v1.xsd", tree(sealed))
    result = await verify_sealed(sealed, trust, gateway_cert=dev_pki.gateway_cert)
    assert result.seal_ok and result.seal_failure is None and result.author.agency_code == "00001"
    root = tree(sealed)
    assert root.find(E + "Header").get("Id") == "Header"
    seal = root.find(f"{E}Signatures/{DS}Signature[@Id='GatewaySeal']")
    uris = [r.get("URI") for r in seal.iter(DS + "Reference")]
    assert uris == ["#Header", "#Letter", "#att-1", "#AuthorSignature"]
    with pytest.raises(PkiError) as info:
        seal_envelope(sealed, seal_signer)
    assert info.value.code == "signature.sealed"


async def test_tampering_author_signature_breaks_the_seal_only(letter, signer1, seal_signer, dev_pki, trust):
    sealed = seal_envelope(sign_envelope(letter, signer1, xades=False), seal_signer)
    root = tree(sealed)
    author = root.find(f"{E}Signatures/{DS}Signature[@Id='AuthorSignature']")
    # KeyInfo is not covered by a plain author signature: the author's signature still verifies ...
    x509_data = author.find(f"{DS}KeyInfo/{DS}X509Data")
    x509_data[-1].addprevious(copy.deepcopy(x509_data[-1]))
    result = await verify_sealed(dump(root), trust, gateway_cert=dev_pki.gateway_cert)
    assert result.author.report.ok
    # ... but the seal, which covers the author's ds:Signature element, does not
    assert not result.seal_ok and result.seal_failure.code == "signature.invalid"


async def test_tampered_header_breaks_the_seal(letter, signer1, seal_signer, dev_pki, trust):
    root = tree(seal_envelope(sign_envelope(letter, signer1), seal_signer))
    root.find(f"{E}Header/{E}Recipients/{E}Recipient").text = "00009"
    result = await verify_sealed(dump(root), trust, gateway_cert=dev_pki.gateway_cert)
    assert not result.seal_ok and "#Header" in result.seal_failure.message


async def test_seal_pinned_to_gateway_certificate(letter, signer1, signer2, dev_pki, trust):
    forged = seal_envelope(sign_envelope(letter, signer1), signer2)  # trusted, but not the gateway
    result = await verify_sealed(forged, trust, gateway_cert=dev_pki.gateway_cert)
    assert not result.seal_ok and result.seal_failure.code == "certificate.untrusted"
    unsealed = await verify_sealed(sign_envelope(letter, signer1), trust,
                                           gateway_cert=dev_pki.gateway_cert)
    assert not unsealed.seal_ok and unsealed.seal_failure.code == "signature.missing"


# --------------------------------------------------------------------------- receipts


# The receipts are the gateway's own (gateway.core.receipts), so what is signed here is what production signs.
RECEIPT_AT = dt.datetime(2026, 11, 22, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=7)))
LETTER_SHA256 = hashlib.sha256(b"letter").hexdigest()


def _receipt() -> bytes:
    """An unsigned submission receipt for message msg-0001 of agency 00001."""
    return submission_receipt(message_id="msg-0001", sender="00001", sha256_hex=LETTER_SHA256, at=RECEIPT_AT)


def _delivery_receipt(delivery_id: uuid.UUID) -> bytes:
    """An unsigned delivery receipt: 00002 received msg-0001 of 00001."""
    return delivery_receipt_envelope(delivery_id=delivery_id, message_id="msg-0001", conversation_id=None,
                                     sender="00001", recipient="00002", sha256_hex=LETTER_SHA256, at=RECEIPT_AT)[1]


async def test_receipt_sign_and_verify(seal_signer, dev_pki, trust):
    delivery_id = uuid.UUID(int=42)
    for unsigned, expected in ((_receipt(), ("submission", None, None)),
                               (_delivery_receipt(delivery_id), ("delivery", "00002", str(delivery_id)))):
        signed = sign_receipt(unsigned, seal_signer)
        validate("envelope-v1.xsd", tree(signed))
        for gateway in (dev_pki.gateway_cert, trust):
            receipt = await verify_receipt(signed, gateway)
            assert (receipt.kind, receipt.recipient, receipt.delivery_id) == expected
            assert (receipt.message_id, receipt.sender) == ("msg-0001", "00001")
            assert receipt.sha256 == LETTER_SHA256
            assert receipt.at == dt.datetime(2026, 11, 22, 2, 30, tzinfo=dt.UTC)
            assert receipt.receipt.getparent() is receipt.root


async def test_receipt_tampering_and_wrong_signer(seal_signer, signer1, dev_pki):
    root = tree(sign_receipt(_receipt(), seal_signer))
    root.find(f"{E}Receipt/{E}Sha256").text = "0" * 64
    with pytest.raises(PkiError) as info:
        await verify_receipt(dump(root), dev_pki.gateway_cert)
    assert info.value.code == "signature.invalid"
    root = tree(sign_receipt(_receipt(), seal_signer))
    root.find(f"{E}Header/{E}Sender").text = "00002"  # the header is covered too (URI="")
    with pytest.raises(PkiError) as info:
        await verify_receipt(dump(root), dev_pki.gateway_cert)
    assert info.value.code == "signature.invalid"
    with pytest.raises(PkiError) as info:
        await verify_receipt(sign_receipt(_receipt(), signer1), dev_pki.gateway_cert)
    assert info.value.code == "certificate.untrusted"


async def test_a_tree_passed_in_is_verified_like_a_fresh_parse(tmp_path):
    """verify_envelope(root=...) strips comments in place and catches the same tampering."""
    pki = init_dev_pki(tmp_path, {"00001": "a"})
    trust = pki.trust_store(revocation="off")
    signed = sign_envelope(envelope(sender="00001", message_id="m-root"), pki.agency_signer("00001"))
    ok = await verify_envelope(signed, trust, sender="00001", root=parse(signed))
    assert ok.agency_code == "00001"
    commented = signed.replace(b"<env:Subject>", b"<env:Subject><!-- x -->", 1)
    assert commented != signed
    tree = parse(commented)
    v = await verify_envelope(commented, trust, sender="00001", root=tree)
    assert v.root is tree and not any(n.tag is etree.Comment for n in tree.iter())
    tampered = signed.replace(b"<env:Subject>", b"<env:Subject>X", 1)
    assert tampered != signed
    with pytest.raises(PkiError):
        await verify_envelope(tampered, trust, sender="00001", root=parse(tampered))


# --------------------------------------------------------------------------- offices' signed acks


def _signed_ack(signer, *, delivery_id="7f8c9d7e-0000-4000-8000-000000000001", sha256=None, weak=False,
                **signer_kw) -> bytes:
    root = etree.fromstring(delivery_ack(delivery_id=uuid.UUID(delivery_id), sha256_hex=sha256))
    kw = {"signature_algorithm": signer.signature_method, "digest_algorithm": DigestAlgorithm.SHA256, **signer_kw}
    class WeakSigner(XMLSigner):  # an office's legacy software that still signs with SHA-1
        def check_deprecated_methods(self):
            return None

    return dump((WeakSigner if weak else XMLSigner)(method=SignatureConstructionMethod.enveloped,
                          c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0, **kw)
                .sign(root, key=signer.xmldsig_key, cert=[signer.certificate, *signer.chain]))


async def test_signed_ack_verifies_and_reads_the_signed_tree(signer2, trust):
    ack = _signed_ack(signer2, sha256="ab" * 32)
    validate("envelope-v1.xsd", tree(ack))
    verified = await verify_signed_ack(ack, trust, agency="00002")
    assert verified.agency_code == "00002" and verified.sha256 == "ab" * 32
    assert verified.delivery_id == "7f8c9d7e-0000-4000-8000-000000000001"
    assert fingerprint(verified.signer) == fingerprint(signer2.certificate)
    # a comment splitting the signed id: .text of the received tree reads a part, the signed tree all of it
    root = tree(ack)
    did = root.find(E + "DeliveryId")
    comment = etree.Comment("x")
    comment.tail, did.text = did.text[8:], did.text[:8]
    did.append(comment)
    assert (await verify_signed_ack(dump(root), trust, agency="00002")).delivery_id == verified.delivery_id


async def test_signed_ack_refusals(signer2, trust):
    ack = _signed_ack(signer2)
    with pytest.raises(PkiError) as info:
        await verify_signed_ack(ack, trust, agency="00001")
    assert info.value.code == "certificate.wrong_agency"
    root = tree(ack)
    root.find(E + "DeliveryId").text = "7f8c9d7e-0000-4000-8000-000000000002"
    with pytest.raises(PkiError) as info:
        await verify_signed_ack(dump(root), trust, agency="00002")
    assert info.value.code == "signature.invalid"
    root = tree(ack)
    root.append(copy.deepcopy(root.find(DS + "Signature")))
    with pytest.raises(PkiError) as info:
        await verify_signed_ack(dump(root), trust, agency="00002")
    assert info.value.code == "signature.references"
    weak = _signed_ack(signer2, weak=True, signature_algorithm=SignatureMethod.ECDSA_SHA1,
                       digest_algorithm=DigestAlgorithm.SHA1)
    with pytest.raises(PkiError) as info:
        await verify_signed_ack(weak, trust, agency="00002")
    assert info.value.code == "signature.algorithm"


def test_lean_signatures_are_fresh_copies_of_a_per_key_template(letter, signer1, seal_signer, dev_pki, factory):
    """Seals and receipts start from a cached template tree: each is a separate copy (signing one never
    changes another or the template), and a different key or certificate gets its own template."""

    first = tree(seal_envelope(letter, seal_signer))
    second = tree(seal_envelope(envelope(message_id="another"), seal_signer))
    s1, s2 = (r.find(f"{E}Signatures/{DS}Signature") for r in (first, second))
    assert s1.findtext(f"{DS}SignatureValue") != s2.findtext(f"{DS}SignatureValue")
    assert [d.text for d in s1.iter(DS + "DigestValue")][0] != [d.text for d in s2.iter(DS + "DigestValue")][0]
    receipt = tree(sign_receipt(_receipt(), seal_signer))
    assert [t.get("Algorithm") for t in receipt.iter(DS + "Transform")][0].endswith("#enveloped-signature")
    assert not any(t.get("Algorithm").endswith("#enveloped-signature") for t in s1.iter(DS + "Transform"))
    other = file_signer(factory.issue(seal_signer.certificate.subject, profile="seal"), dev_pki)
    by_other = tree(seal_envelope(letter, other)).find(f"{E}Signatures/{DS}Signature")

    def certs(sig):
        return [c.text for c in sig.iter(DS + "X509Certificate")]

    assert certs(by_other)[0] == base64.b64encode(other.certificate.public_bytes(Encoding.DER)).decode()
    assert certs(s1)[0] == base64.b64encode(seal_signer.certificate.public_bytes(Encoding.DER)).decode()
    template = signature_template(seal_signer.signature_method.value, 3, False, seal_signer.certificate,
                                           *seal_signer.chain)
    assert template.get("Id") is None and all(not d.text for d in template.iter(DS + "DigestValue"))
    assert not template.findtext(f"{DS}SignatureValue")


@pytest.mark.parametrize("bend", ["xpath child", "extra transform", "inclusive c14n", "enveloped on detached",
                                  "unknown signature method", "unknown digest"])
async def test_transform_and_algorithm_allow_list(letter, signer1, trust, bend):
    """The allow-list runs before any cryptography: a reference's transforms are exactly none or exclusive c14n
    (plus enveloped-signature for receipts), no Transform carries content, methods are on the list."""
    root = tree(sign_envelope(letter, signer1, xades=False))
    sig = root.find(f"{E}Signatures/{DS}Signature")
    ref = sig.find(f"{DS}SignedInfo/{DS}Reference")
    transform = ref.find(f"{DS}Transforms/{DS}Transform")
    if bend == "xpath child":
        etree.SubElement(transform, DS + "XPath").text = "self::node()"
    elif bend == "extra transform":
        transform.addnext(copy.deepcopy(transform))
    elif bend == "inclusive c14n":
        transform.set("Algorithm", "http://www.w3.org/TR/2001/REC-xml-c14n-20010315")
    elif bend == "enveloped on detached":
        transform.addprevious(etree.Element(DS + "Transform",
                                            Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"))
    elif bend == "unknown signature method":
        sig.find(f"{DS}SignedInfo/{DS}SignatureMethod").set("Algorithm", "urn:example:made-up")
    else:
        ref.find(DS + "DigestMethod").set("Algorithm", "urn:example:made-up")
    await expect_code("signature.algorithm", dump(root), trust)
