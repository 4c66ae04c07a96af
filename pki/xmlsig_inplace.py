"""Detached signatures verified in place: the hot path's verifier, signxml the judge of anything else.

Why: signxml (even with the in-place hooks of :mod:`pki.xmlsig_signxml`)
spends ~0.45 ms of pure-Python bookkeeping per author signature (it
serialises and re-parses the signature and SignedInfo, builds dataclasses per
reference, re-reads KeyInfo), against ~0.12 ms for the work itself: exclusive
c14n of each referenced element and of SignedInfo (libxml2), the digests
(OpenSSL) and one signature check (OpenSSL). libxmlsec1 (PyPI ``xmlsec``,
:mod:`pki.xmlsig_xmlsec`) was measured on the same envelopes: 0.41 ms for a
4-reference seal (its node-set c14n walks the whole document once per
reference), and it cannot verify the XAdES signatures signxml wrote before
``pki.sign`` named every transform (their SignedProperties and KeyInfo
references carry none and were digested with exclusive c14n, where XML-DSig
4.4.3.2 and libxmlsec1 use inclusive c14n: see :mod:`pki.xmlsig_policy`).

:func:`verify_detached` runs :func:`verify_in_place` and, whenever it does not
say "valid", :func:`pki.xmlsig_signxml.run_signxml`, which then gives the
verdict and its stable error code. So the fast path can only ever *accept*
what it fully checked, and only in the one shape it knows:

* the caller has already pinned the reference set and the place of every
  referenced element (:func:`pki.xmlsig_policy.check_references`) and the
  algorithms (:func:`pki.xmlsig_policy.check_algorithms`);
* the ``ds:Signature`` is valid against the same schemas signxml validates it
  with (the XML-DSig schema; for XAdES signxml's three XAdES schemas, any one).
  When the caller says the whole tree was just validated against the envelope
  XSD and its signature zone checked (``schema_checked``: the gateway's intake
  does both, ``schemas/envelope-v1.xsd`` and :func:`pki.sigzone.check_signature_zone`),
  that check is not repeated for a signature :func:`schema_implied` clears: the
  envelope XSD validates each ``ds:Signature`` with the very schema files
  signxml uses (XML-DSig, XML-DSig 1.1, XAdES 1.4.1 and 1.3.2 of 2016-01), in
  a whole document (ids unique in all of it; these schemas have no IDREF nor
  identity constraint), but it also declares elements signxml's schema for the
  signature does not know: XML-DSig 1.1's (and the envelope's) for a XAdES
  signature, XAdES' (and the envelope's) for a plain one. Such an element where
  a wildcard is strict (``xades:SignedSignatureProperties``' ``##other`` ...)
  is valid for the envelope XSD and not for signxml's, so a signature holding
  any element of those namespaces is schema-checked as before. Without them, both
  see the same declarations for every element of the signature, and the zone
  check has refused every attribute in a namespace (``xsi:type`` ...): the
  envelope XSD accepts no signature signxml's schemas refuse
  (``tests/pki/test_signature_schema_implied.py``: generated and mutated
  signatures, the hostile corpus, and the strict-wildcard case that needs the
  namespace rule);
* KeyInfo holds X509Data only (a KeyValue makes signxml check it against the
  certificate: that shape goes to signxml); SignedInfo's
  CanonicalizationMethod and SignatureMethod carry no child (no
  InclusiveNamespaces, no HMACOutputLength);
* every reference is digested from the in-tree element and compared with the
  signed ``DigestValue``: exclusive c14n where the reference names it; without
  transforms, the standard inclusive C14N 1.0 form, else (issued signatures,
  ``legacy_exclusive``) the exclusive one
  (:func:`pki.xmlsig_policy.reference_octets`, which signxml's reference hook
  in :mod:`pki.xmlsig_signxml` uses too, so the two agree); the signature
  value is checked over the exclusive c14n of the in-tree SignedInfo with the
  certificate's key, the ECDSA value as ``r || s`` of the key's width, RSA as
  PKCS#1 v1.5, as signxml does;
* XAdES: a reference to ``SignedProperties`` is required, and the
  ``SigningCertificate`` / ``SigningCertificateV2`` rule is signxml's (exactly
  one of them; every ``Cert`` digest matches a KeyInfo certificate, the first
  matches the signing certificate).

The elements returned are the very ones digested, so "only verified data
travels" holds by identity. Differential tests (``tests/pki/test_xmlsig_differential.py``)
run this verifier, signxml and libxmlsec1 on generated valid and mutated signatures.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lxml import etree
from signxml import VerifyResult
from signxml.algorithms import DigestAlgorithm, SignatureMethod, digest_algorithm_implementations
from signxml.xades import XAdESVerifyResult

from pki.errors import PkiError
from pki.trust import per_certificate
from pki.xmlsig_parts import DS, XADES, c14n, child, children
from pki.xmlsig_policy import LEGACY_EXCLUSIVE, keyinfo_certs, reference_octets
from pki.xmlsig_signxml import cert_fingerprint, run_signxml, signature_schemas

__all__ = ["ENVELOPE_SCHEMA", "schema_implied", "verify_detached", "verify_in_place"]

#: The schema (in the ``schemas`` package) whose validity of the whole envelope stands in for signxml's
#: schema check of its ``ds:Signature`` (``schema_checked``).
ENVELOPE_SCHEMA = "envelope-v1.xsd"

#: Digest method URI -> hashlib's constructor (``hashlib.new(name)`` looks the name up on every call).
_HASHES: dict[str, Callable[[bytes], Any]] = {
    DigestAlgorithm.SHA1.value: hashlib.sha1, DigestAlgorithm.SHA224.value: hashlib.sha224,
    DigestAlgorithm.SHA256.value: hashlib.sha256, DigestAlgorithm.SHA384.value: hashlib.sha384,
    DigestAlgorithm.SHA512.value: hashlib.sha512}
#: Digest method URI -> the cryptography hash class signxml fingerprints certificates with.
_CERT_DIGESTS: dict[str, Any] = {d.value: digest_algorithm_implementations[d] for d in DigestAlgorithm
                                 if d in digest_algorithm_implementations}
_SIGNATURE_CHILDREN = frozenset({DS + "SignedInfo", DS + "SignatureValue", DS + "KeyInfo", DS + "Object"})
_KEY_INFO = DS + "KeyInfo"
_X509_DATA = DS + "X509Data"
_REFERENCE = DS + "Reference"
_TRANSFORMS = DS + "Transforms"
_DIGEST_METHOD = DS + "DigestMethod"
_DIGEST_VALUE = DS + "DigestValue"
_SIGNED_PROPERTIES = XADES + "SignedProperties"
_SIGNED_SIGNATURE_PROPERTIES = XADES + "SignedSignatureProperties"
_SIGNING_CERTIFICATES = (XADES + "SigningCertificate", XADES + "SigningCertificateV2")
_CERT = XADES + "Cert"
_CERT_DIGEST = XADES + "CertDigest"


class _NotHere(Exception):
    """The fast path does not accept this signature (signxml decides)."""


def verify_detached(root: etree._Element, signature: etree._Element, signature_index: int,
                    cert: x509.Certificate, uris: Sequence[str], resolved: dict[str, etree._Element], *,
                    xades: bool, allow_sha1: bool, certs: Sequence[x509.Certificate] | None = None,
                    legacy_exclusive: bool = LEGACY_EXCLUSIVE, schema_checked: bool = False,
                    exclusive_sha256: dict[str, bytes] | None = None) -> list[VerifyResult]:
    """One result per reference (SignedInfo order) whose ``signed_xml`` is the in-tree element, or
    :class:`pki.errors.SignatureError` (from signxml, which judges every signature the fast path does not
    accept). ``resolved``: ``id -> element`` as pinned by :func:`pki.xmlsig_policy.check_references`.
    ``exclusive_sha256``: see :func:`verify_in_place` (left empty when signxml judges)."""
    found: dict[str, bytes] = {}
    results = verify_in_place(signature, cert, uris, resolved, xades=xades, certs=certs,
                              legacy_exclusive=legacy_exclusive, schema_checked=schema_checked,
                              exclusive_sha256=found)
    if results is not None:
        if exclusive_sha256 is not None:
            exclusive_sha256.update(found)
        return results
    return run_signxml(root, signature_index, cert, len(uris), xades=xades, allow_sha1=allow_sha1,
                       resolved=resolved, legacy_exclusive=legacy_exclusive)


def verify_in_place(signature: etree._Element, cert: x509.Certificate, uris: Sequence[str],
                    resolved: dict[str, etree._Element], *, xades: bool,
                    certs: Sequence[x509.Certificate] | None = None,
                    legacy_exclusive: bool = LEGACY_EXCLUSIVE, schema_checked: bool = False,
                    exclusive_sha256: dict[str, bytes] | None = None) -> list[VerifyResult] | None:
    """The results when the signature verifies in the shape described in the module docstring, else None.

    ``certs``: the KeyInfo certificates (:func:`pki.xmlsig_policy.keyinfo_certs`), read again when not given.
    ``legacy_exclusive``: see :func:`pki.xmlsig_policy.reference_octets`.
    ``schema_checked``: the envelope holding ``signature`` was validated as a whole against
    ``schemas/envelope-v1.xsd`` (:data:`ENVELOPE_SCHEMA`) and its signature zone checked just before, so
    signxml's schemas are not run again where that implies them (:func:`schema_implied`, module
    docstring); only the caller that ran both may say so.
    ``exclusive_sha256``: filled, when the signature verifies, with ``URI -> SHA-256`` of the exclusive
    c14n of the element (:func:`pki.xmlsig_parts.c14n`) for every reference that names exclusive c14n and
    SHA-256: the signed digest, now proven to be that (the gateway's seal reuses it, :func:`pki.seal.seal_tree`).
    """
    try:
        results = _verify(signature, cert, uris, resolved, xades,
                          keyinfo_certs(signature) if certs is None else certs, legacy_exclusive, schema_checked,
                          exclusive_sha256)
    except (_NotHere, InvalidSignature, PkiError, ValueError, TypeError, KeyError, IndexError, binascii.Error):
        if exclusive_sha256 is not None:
            exclusive_sha256.clear()
        return None
    return results


def _verify(signature: etree._Element, cert: x509.Certificate, uris: Sequence[str],
            resolved: dict[str, etree._Element], xades: bool,
            certs: Sequence[x509.Certificate], legacy_exclusive: bool, schema_checked: bool,
            exclusive_sha256: dict[str, bytes] | None) -> list[VerifyResult]:
    kids = signature[:]  # ``list(signature)``, made in C (see :func:`pki.xmlsig_parts.child`)
    key_info = None
    for el in kids:
        tag = el.tag
        if tag not in _SIGNATURE_CHILDREN:
            raise _NotHere
        if tag == _KEY_INFO and key_info is None:
            key_info = el
    if key_info is not None and any(c.tag != _X509_DATA for c in key_info[:]):
        raise _NotHere
    if not (schema_checked and schema_implied(signature, xades)) and not _schema_valid(signature, xades):
        raise _NotHere
    signed_info, value_el = kids[0], kids[1]
    info_kids = signed_info[:]
    refs = [r for r in info_kids if r.tag == _REFERENCE]
    if len(info_kids[0]) or len(info_kids[1]) or len(refs) != len(uris):
        raise _NotHere
    digested: list[tuple[bytes, etree._Element]] = []
    signed_properties = None
    for ref, uri in zip(refs, uris, strict=True):
        ref_kids = ref[:]
        if ref.get("URI") != uri or len(ref_kids) < 2 or ref_kids[-2].tag != _DIGEST_METHOD \
                or ref_kids[-1].tag != _DIGEST_VALUE:
            raise _NotHere
        element = resolved[uri[1:]]
        new_hash = _HASHES[ref_kids[-2].get("Algorithm") or ""]
        signed_digest = binascii.a2b_base64(ref_kids[-1].text or "")
        for octets in reference_octets(ref, element, legacy_exclusive=legacy_exclusive):
            if new_hash(octets).digest() == signed_digest:
                break
        else:
            raise _NotHere
        if exclusive_sha256 is not None and ref_kids[0].tag == _TRANSFORMS and new_hash is hashlib.sha256:
            # Transforms named (exclusive c14n, the one allowed): the octets were c14n(element) alone
            exclusive_sha256[uri] = signed_digest
        if element.tag == _SIGNED_PROPERTIES:
            signed_properties = element
        digested.append((octets, element))
    _check_value(cert, info_kids[1].get("Algorithm"), binascii.a2b_base64(value_el.text or ""), c14n(signed_info))
    ssp = None
    if xades:
        if signed_properties is None:
            raise _NotHere
        ssp = child(signed_properties, _SIGNED_SIGNATURE_PROPERTIES)
        if ssp is None:
            raise _NotHere
        _check_signing_certificate(ssp, certs, cert)
    pem = _public_pem(cert)
    out: list[VerifyResult] = []
    for canonical, element in digested:
        if ssp is not None and element is signed_properties:
            out.append(XAdESVerifyResult(canonical, element, signature, signature_key=pem, signed_properties=ssp))
        else:
            out.append(VerifyResult(canonical, element, signature, signature_key=pem))
    return out


def _check_value(cert: x509.Certificate, method_uri: str | None, raw: bytes, signed_info_c14n: bytes) -> None:
    key = _public_key(cert)
    scheme = _SCHEMES.get(method_uri or "")
    if scheme is None:
        raise _NotHere
    family, algorithm = scheme
    if family == "ECDSA_" and isinstance(key, ec.EllipticCurvePublicKey):
        width = (key.key_size + 7) // 8
        if len(raw) != 2 * width:
            raise _NotHere
        der = encode_dss_signature(int.from_bytes(raw[:width], "big"), int.from_bytes(raw[width:], "big"))
        key.verify(der, signed_info_c14n, algorithm)
    elif family == "RSA_" and isinstance(key, rsa.RSAPublicKey):
        key.verify(raw, signed_info_c14n, padding.PKCS1v15(), algorithm)
    else:
        raise _NotHere


def _scheme(method: SignatureMethod) -> tuple[str, object]:
    algorithm = digest_algorithm_implementations[method]()
    return ("ECDSA_", ec.ECDSA(algorithm)) if method.name.startswith("ECDSA_") else ("RSA_", algorithm)


#: Signature method URI -> (key family, what ``verify`` takes), built once (the ECDSA object checks its
#: argument's type on every construction).
_SCHEMES: dict[str, tuple[str, Any]] = {m.value: _scheme(m) for m in SignatureMethod
                                         if m.name.startswith(("ECDSA_", "RSA_")) and "PSS" not in m.name
                                         and m in digest_algorithm_implementations}


@per_certificate()
def _public_key(cert: x509.Certificate) -> Any:
    return cert.public_key()


def _check_signing_certificate(ssp: etree._Element, certs: Sequence[x509.Certificate],
                               signing_cert: x509.Certificate) -> None:
    """signxml's XAdES certificate rule (``XAdESVerifier._verify_cert_digests``), on the in-tree elements."""
    holders = [c for c in ssp[:] if c.tag in _SIGNING_CERTIFICATES]
    if len(holders) != 1:
        raise _NotHere
    for i, cert_el in enumerate(children(holders[0], _CERT)):
        cert_digest = child(cert_el, _CERT_DIGEST)
        if cert_digest is None or len(cert_digest) < 2:
            raise _NotHere
        algorithm = _CERT_DIGESTS[cert_digest[0].get("Algorithm")]
        value = binascii.a2b_base64(cert_digest[1].text or "")
        if i == 0:  # the first names the signing certificate (which is then also one of them)
            if value != cert_fingerprint(signing_cert, algorithm):
                raise _NotHere
        elif not any(value == cert_fingerprint(c, algorithm) for c in (*certs, signing_cert)):
            raise _NotHere


#: Per signxml schema set (XAdES or not): the elements the envelope XSD declares beyond it ("{ns}*").
_BEYOND_SIGNXML: dict[bool, tuple[str, ...]] = {
    True: ("{http://www.w3.org/2009/xmldsig11#}*", "{urn:th:gov:saraban:envelope:1}*"),
    False: (XADES + "*", "{http://uri.etsi.org/01903/v1.4.1#}*", "{urn:th:gov:saraban:envelope:1}*"),
}


def schema_implied(signature: etree._Element, xades: bool) -> bool:
    """Whether the envelope XSD's validity of the document holding ``signature`` (and a checked signature zone)
    implies validity against signxml's schemas for it: no element of a namespace the envelope XSD declares
    beyond those (see the module docstring). One walk in C; the usual signature has none."""
    return next(signature.iter(*_BEYOND_SIGNXML[xades]), None) is None


def _schema_valid(signature: etree._Element, xades: bool) -> bool:
    """Valid against one of the schemas signxml would validate this signature with (validated in place)."""
    schemas = _SCHEMAS.get(xades)
    if schemas is None:
        schemas = _SCHEMAS[xades] = tuple(signature_schemas(xades))
    return any(schema.validate(signature) for schema in schemas)


_SCHEMAS: dict[bool, tuple[etree.XMLSchema, ...]] = {}


@per_certificate()
def _public_pem(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
