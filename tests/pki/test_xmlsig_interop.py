"""Interoperability of the gateway's XML signatures with standard verifiers and signers.

(Enveloped signatures, an office's DeliveryAck: a reference whose only transform is the
enveloped-signature one is read the same way, inclusive C14N 1.0; see the last tests.)

What is checked, both ways:

* what the gateway's tools sign (``pki.sign``: the author's XAdES or plain signature; ``pki.seal`` with
  XAdES) names a transform on every reference, and libxmlsec1 verifies it: python-xmlsec (libxmlsec1
  1.3, bundled) and the Debian ``xmlsec1`` command (libxmlsec1 1.2, another build), the latter checking
  the certificate chain against the development root as well;
* a standard signer's reference without transforms (libxmlsec1 signing: inclusive Canonical XML 1.0)
  is accepted by the in-place verifier, signxml and libxmlsec1 alike, and through ``verify_envelope``;
* the references signxml wrote before (no transform, exclusive c14n: every XAdES signature issued so
  far) are still accepted by the gateway's verifiers (see :mod:`pki.xmlsig_policy`), refused by a strict
  verifier (``legacy_exclusive=False``) and by libxmlsec1; a digest of neither form is refused by all.
"""

from __future__ import annotations

import base64
import hashlib
import uuid

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from interop import XMLSEC1, bare_references, legacy_sign, resign_signed_info, xmlsec1_cli, xmlsec_sign
from lxml import etree
from samples import envelope
from signxml import XMLSigner
from signxml.algorithms import SignatureConstructionMethod

from pki.errors import PkiError
from pki.keys import FileSigner
from pki.receipts import verify_signed_ack
from pki.seal import seal_envelope
from pki.sign import sign_envelope
from pki.verify import verify_envelope
from pki.xmlparse import parse
from pki.xmlsig_inplace import verify_in_place
from pki.xmlsig_parts import DS, SEAL_ID, XADES, author_signature, envelope_parts, id_index, serialize
from pki.xmlsig_policy import (
    ENVELOPED,
    EXC_C14N,
    EXC_C14N_URI,
    check_algorithms,
    check_references,
    keyinfo_certs,
)
from pki.xmlsig_signxml import run_signxml
from pki.xmlsig_xmlsec import verify_with_xmlsec
from tests.support import delivery_ack


@pytest.fixture(scope="module")
def signers(dev_pki) -> dict[str, FileSigner]:
    factory = dev_pki.issuing_factory()
    out = {"ec-p256": dev_pki.agency_signer("00001")}
    for kind in ("ec-p384", "rsa-2048"):
        issued = factory.agency_signing("00001", f"agency {kind}", key_type=kind)
        out[kind] = FileSigner(issued.key, issued.cert, [dev_pki.intermediate_cert])
    return out


def _signature(root: etree._Element, seal: bool) -> tuple[int, etree._Element]:
    parts = envelope_parts(root)
    if seal:
        return [(i, s) for i, s in enumerate(parts.signatures.iterchildren(DS + "Signature"))
                if s.get("Id") == SEAL_ID][0]
    return author_signature(parts)


def _judge(raw: bytes, *, seal: bool = False, legacy_exclusive: bool = True) -> dict[str, str]:
    """Each verifier's verdict: "ok" or the error code (the policy checks pass first, as in pki.verify)."""
    root = parse(raw)
    parts = envelope_parts(root)
    position, signature = _signature(root, seal)
    if seal:
        required = [parts.header, parts.body, *parts.attachments, author_signature(parts)[1]]
    else:
        required = [parts.body, *parts.attachments]
    cert = keyinfo_certs(signature)[0]
    uris, resolved_uris = check_references(signature, id_index(root), required=required)
    check_algorithms(signature, cert, allow_sha1=False)
    resolved = {u[1:]: e for u, e in resolved_uris.items()}
    xades = signature.find(f"{DS}Object/{XADES}QualifyingProperties") is not None
    out = {"in_place": "ok" if verify_in_place(signature, cert, uris, resolved, xades=xades,
                                               legacy_exclusive=legacy_exclusive) is not None else "refused"}
    for name, run in (
        ("signxml", lambda: run_signxml(root, position, cert, len(uris), xades=xades, allow_sha1=False,
                                        resolved=resolved, legacy_exclusive=legacy_exclusive)),
        ("xmlsec", lambda: verify_with_xmlsec(signature, cert, uris, resolved)),
    ):
        try:
            run()
            out[name] = "ok"
        except PkiError as exc:
            out[name] = exc.code
    return out


# --------------------------------------------------------------------------- (a) what the gateway signs


@pytest.mark.parametrize("xades", [True, False])
@pytest.mark.parametrize("key", ["ec-p256", "ec-p384", "rsa-2048"])
def test_every_reference_the_signer_writes_names_exclusive_c14n(signers, seal_signer, xades, key):
    signed = sign_envelope(envelope(attachments=2), signers[key], xades=xades, sign_header=True)
    for raw, seal in ((signed, False), (seal_envelope(signed, seal_signer, xades=True), True)):
        _, signature = _signature(parse(raw), seal)
        refs = list(signature[0].iterchildren(DS + "Reference"))
        assert len(refs) == (4 if not seal else 5) + (2 if xades or seal else 0)
        for ref in refs:
            assert [t.get("Algorithm") for t in ref.iter(DS + "Transform")] == [EXC_C14N_URI], ref.get("URI")


@pytest.mark.parametrize("xades", [True, False])
@pytest.mark.parametrize("key", ["ec-p256", "ec-p384", "rsa-2048"])
def test_libxmlsec1_verifies_what_the_gateway_signs(signers, seal_signer, xades, key):
    signed = sign_envelope(envelope(attachments=2), signers[key], xades=xades)
    sealed = seal_envelope(signed, seal_signer, xades=True)
    assert _judge(sealed) == {"in_place": "ok", "signxml": "ok", "xmlsec": "ok"}
    assert _judge(sealed, seal=True) == {"in_place": "ok", "signxml": "ok", "xmlsec": "ok"}


@pytest.mark.skipif(XMLSEC1 is None, reason="the xmlsec1 command is not installed (make system-deps)")
@pytest.mark.parametrize("xades", [True, False])
def test_xmlsec1_command_verifies_what_the_gateway_signs(signers, seal_signer, dev_pki, tmp_path, xades):
    """Another libxmlsec1 (Debian's 1.2 build, OpenSSL), the chain checked up to the development root."""
    signed = sign_envelope(envelope(attachments=2), signers["ec-p256"], xades=xades)
    sealed = seal_envelope(signed, seal_signer, xades=True)
    trusted = [dev_pki.root_cert.public_bytes(Encoding.PEM)]
    untrusted = [dev_pki.intermediate_cert.public_bytes(Encoding.PEM)]
    for signature_id in ("AuthorSignature", SEAL_ID):
        done = xmlsec1_cli(sealed, signature_id, trusted, untrusted, tmp_path)
        assert done.returncode == 0 and "OK" in done.stderr, done.stderr[-2000:]
    # and it is a real check: one changed byte of the letter and it says no
    tampered = sealed.replace("ขอเชิญประชุม".encode(), "ขอเชิญประชุน".encode(), 1)
    assert tampered != sealed
    done = xmlsec1_cli(tampered, "AuthorSignature", trusted, untrusted, tmp_path)
    assert done.returncode != 0 and "FAIL" in done.stderr


@pytest.mark.skipif(XMLSEC1 is None, reason="the xmlsec1 command is not installed (make system-deps)")
def test_xmlsec1_command_refuses_the_old_signxml_references(signers, dev_pki, tmp_path):
    """The defect as it was: a reference without transform digested with exclusive c14n."""
    legacy = legacy_sign(envelope(), signers["ec-p256"])
    assert len(bare_references(author_signature(envelope_parts(parse(legacy)))[1])) == 2
    done = xmlsec1_cli(legacy, "AuthorSignature", [dev_pki.root_cert.public_bytes(Encoding.PEM)],
                       [dev_pki.intermediate_cert.public_bytes(Encoding.PEM)], tmp_path)
    assert done.returncode != 0 and "data and digest do not match" in done.stderr, done.stderr[-2000:]


# --------------------------------------------------------------------------- (b) what a standard signer writes


@pytest.mark.parametrize("key", ["ec-p256", "ec-p384", "rsa-2048"])
def test_standard_references_without_transforms_are_accepted_by_every_verifier(signers, key):
    standard = xmlsec_sign(legacy_sign(envelope(attachments=2), signers[key]), signers[key])
    _, signature = author_signature(envelope_parts(parse(standard)))
    bare = bare_references(signature)
    assert len(bare) == 2  # SignedProperties and KeyInfo, digested by libxmlsec1 the standard way
    root = parse(standard)
    index = id_index(root)
    for ref in bare:
        element = index[ref.get("URI")[1:]][0]
        inclusive = etree.tostring(element, method="c14n", exclusive=False, with_comments=False)
        exclusive = etree.tostring(element, method="c14n", exclusive=True, with_comments=False)
        assert inclusive != exclusive  # the envelope's namespace is in scope: the two forms differ here
        assert base64.b64decode(ref.find(DS + "DigestValue").text) == hashlib.sha256(inclusive).digest()
    assert _judge(standard) == {"in_place": "ok", "signxml": "ok", "xmlsec": "ok"}
    assert _judge(standard, legacy_exclusive=False) == {"in_place": "ok", "signxml": "ok", "xmlsec": "ok"}


async def test_standard_signature_passes_verify_envelope(signers, trust):
    standard = xmlsec_sign(legacy_sign(envelope(), signers["ec-p256"]), signers["ec-p256"])
    verified = await verify_envelope(standard, trust, sender="00001")
    assert verified.report.ok and verified.agency_code == "00001"


def test_inherited_xml_attributes_are_part_of_the_standard_form(signers):
    """C14N 1.0: the apex of a document subset carries its ancestors' xml:* attributes (libxmlsec1 does)."""
    unsigned = etree.fromstring(envelope())
    unsigned.set("{http://www.w3.org/XML/1998/namespace}lang", "th")
    unsigned.set("{http://www.w3.org/XML/1998/namespace}space", "preserve")
    raw = etree.tostring(unsigned, xml_declaration=True, encoding="UTF-8")
    standard = xmlsec_sign(legacy_sign(raw, signers["ec-p256"]), signers["ec-p256"])
    assert _judge(standard) == {"in_place": "ok", "signxml": "ok", "xmlsec": "ok"}
    # a change of the inherited attribute changes what the standard form digests
    root = parse(standard)
    root.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    assert _judge(serialize(root)) == {"in_place": "refused", "signxml": "signature.invalid",
                                       "xmlsec": "signature.invalid"}


def test_signatures_issued_before_still_verify_but_only_by_compatibility(signers):
    """Decided in pki.xmlsig_policy: the old signxml form (exclusive c14n without a transform) stays
    accepted, since every XAdES signature issued so far has it; libxmlsec1 and a strict verifier refuse."""
    legacy = legacy_sign(envelope(attachments=2), signers["ec-p256"])
    assert _judge(legacy) == {"in_place": "ok", "signxml": "ok", "xmlsec": "signature.invalid"}
    assert _judge(legacy, legacy_exclusive=False) == {"in_place": "refused", "signxml": "signature.invalid",
                                                      "xmlsec": "signature.invalid"}


@pytest.mark.parametrize("form", ["c14n with comments", "plain serialisation", "another element"])
def test_a_bare_reference_digested_any_other_way_is_refused(signers, form):
    signer = signers["ec-p256"]
    root = parse(xmlsec_sign(legacy_sign(envelope(), signer), signer))
    _, signature = author_signature(envelope_parts(root))
    index = id_index(root)
    ref = bare_references(signature)[0]
    element = index[ref.get("URI")[1:]][0]
    element.append(etree.Comment(" a comment "))
    octets = {"c14n with comments": etree.tostring(element, method="c14n", with_comments=True),
              "plain serialisation": etree.tostring(element),
              "another element": etree.tostring(element[0], method="c14n")}[form]
    element.remove(element[-1])
    for standard_or_old in (etree.tostring(element, method="c14n"),
                            etree.tostring(element, method="c14n", exclusive=True)):
        assert octets != standard_or_old
    ref.find(DS + "DigestValue").text = base64.b64encode(hashlib.sha256(octets).digest()).decode()
    resign_signed_info(signature, signer)
    assert _judge(serialize(root)) == {"in_place": "refused", "signxml": "signature.invalid",
                                       "xmlsec": "signature.invalid"}


# --------------------------------------------------------------------------- enveloped: an office's DeliveryAck


def _ack_legacy(signer: FileSigner) -> bytes:
    """A DeliveryAck signed by signxml with the c14n transform left out (``exclude_c14n_transform_element``):
    the reference's only transform is the enveloped one, the digest exclusive c14n. The root declares a
    namespace nothing uses, as many documents do, so that the inclusive and exclusive forms differ."""
    plain = etree.fromstring(delivery_ack(delivery_id=uuid.UUID(int=7), sha256_hex="ab" * 32))
    root = etree.Element(plain.tag, dict(plain.attrib), nsmap={**plain.nsmap, "x": "urn:example:unused"})
    root.text = plain.text
    root.extend(list(plain))
    signed = XMLSigner(method=SignatureConstructionMethod.enveloped, signature_algorithm=signer.signature_method,
                       c14n_algorithm=EXC_C14N).sign(root, key=signer.xmldsig_key,
                                                     cert=[signer.certificate, *signer.chain],
                                                     exclude_c14n_transform_element=True)
    return etree.tostring(signed)


def _ack_signature_forms(raw: bytes) -> tuple[list[str | None], bytes, bytes]:
    root = parse(raw)
    signature = root.find(DS + "Signature")
    ref = signature[0].find(DS + "Reference")
    transforms = [t.get("Algorithm") for t in ref.iter(DS + "Transform")]
    whole = etree.fromstring(raw)
    whole.remove(whole.find(DS + "Signature"))
    return transforms, etree.tostring(whole, method="c14n"), etree.tostring(whole, method="c14n", exclusive=True)


async def test_enveloped_reference_without_c14n_is_read_the_standard_way(signers, trust):
    signer = signers["ec-p256"]
    legacy = _ack_legacy(signer)
    standard = xmlsec_sign(legacy, signer, signature_id=None)
    for raw, form in ((standard, 1), (legacy, 2)):
        transforms, inclusive, exclusive = _ack_signature_forms(raw)
        assert transforms == [ENVELOPED] and inclusive != exclusive
        digest = base64.b64decode(parse(raw).find(f"{DS}Signature/{DS}SignedInfo/{DS}Reference/{DS}DigestValue")
                                  .text)
        assert digest == hashlib.sha256((inclusive, exclusive)[form - 1]).digest()
        verified = await verify_signed_ack(raw, trust, agency="00001")
        assert verified.sha256 == "ab" * 32 and verified.agency_code == "00001"
    # the old form only by compatibility: a strict verifier refuses it, and accepts the standard one
    for raw, ok in ((standard, True), (legacy, False)):
        root = parse(raw)
        cert = keyinfo_certs(root.find(DS + "Signature"))[0]
        if ok:
            run_signxml(root, 0, cert, 1, xades=False, allow_sha1=False, legacy_exclusive=False)
        else:
            with pytest.raises(PkiError) as info:
                run_signxml(root, 0, cert, 1, xades=False, allow_sha1=False, legacy_exclusive=False)
            assert info.value.code == "signature.invalid"
