"""Legacy e-CMS letter signatures: XML-DSig in ram:GovernmentSignature over ``#Letter``.

The e-CMS profile signs ``ram:CorrespondenceLetter ID="Letter"`` with a
same-document reference, historically with rsa-sha1 / sha1 and inclusive C14N
(with comments). The gateway verifies such a signature only as a *report*
(pyHanko style: separate facts, a computed bottom line) and the handler applies
policy:

* ``intact``: the digest and signature value check out (signxml, reference count
  pinned to 1, algorithm allow-list: SHA-1 only when the legacy profile allows it);
* ``trusted``: the certificate in KeyInfo is pinned to the sending agency in the
  directory (``cert_fingerprints``). A bare RSAKeyValue is never trusted. With
  ``ecms_require_trusted_signature`` the facade instead validates ``certificate``
  against the gateway's trust store (path to an anchor, usage, revocation, and
  the agency binding, which includes those pins), like a native signature.

Only the bytes signxml reports as covered (``signed_xml``) are compared with
what the gateway maps, so an unsigned sibling cannot be smuggled in.

This is the small local verifier the brief allows until :mod:`pki.verify` takes legacy letters;
switch :func:`verify_letter_signature` to it then (same report shape).
"""

from __future__ import annotations

import base64
import copy
import hashlib
from dataclasses import dataclass, replace

from cryptography import x509
from lxml import etree
from signxml import DigestAlgorithm, SignatureConfiguration, SignatureMethod, XMLVerifier
from signxml.exceptions import InvalidInput, InvalidSignature

from gateway.core.ecmswire.soap import DS_NS, RAM_NS

_SHA1_URIS = ("http://www.w3.org/2000/09/xmldsig#rsa-sha1", "http://www.w3.org/2000/09/xmldsig#sha1")


@dataclass(frozen=True)
class LegacySignatureReport:
    present: bool
    """A ds:Signature was found in the GovernmentSignature."""
    intact: bool = False
    """The signature verifies over exactly one reference, #Letter."""
    algorithm: str | None = None
    """SignatureMethod Algorithm URI."""
    sha1: bool = False
    """SHA-1 was used (signature or digest)."""
    algorithm_allowed: bool = True
    certificate_sha256: str | None = None
    """Fingerprint of the KeyInfo certificate, if any."""
    certificate: x509.Certificate | None = None
    """The KeyInfo certificate of an intact signature (for trust-store validation)."""
    trusted: bool = False
    """The certificate is pinned to the sending agency."""
    reason: str | None = None
    """Why it is not intact / not trusted."""

    @property
    def valid(self) -> bool:
        return self.present and self.intact and self.trusted and self.algorithm_allowed


def _c14n(el: etree._Element) -> bytes:
    return etree.tostring(el, method="c14n", exclusive=True, with_comments=False)


def verify_letter_signature(gov_doc: etree._Element, *, allow_sha1: bool,
                            agency_fingerprints: tuple[str, ...]) -> LegacySignatureReport:
    """Verify the legacy signature of an rsm:GovernmentDocument; never raises on bad signatures."""
    sig = gov_doc.find(f".//{{{RAM_NS}}}GovernmentSignature/{{{DS_NS}}}Signature")
    if sig is None:
        return LegacySignatureReport(present=False)
    method_el = sig.find(f"{{{DS_NS}}}SignedInfo/{{{DS_NS}}}SignatureMethod")
    algorithm = method_el.get("Algorithm") if method_el is not None else None
    digests = [d.get("Algorithm") for d in sig.iterfind(f".//{{{DS_NS}}}DigestMethod")]
    sha1 = algorithm in _SHA1_URIS or any(d in _SHA1_URIS for d in digests)
    refs = [r.get("URI") for r in sig.iterfind(f"{{{DS_NS}}}SignedInfo/{{{DS_NS}}}Reference")]
    base = LegacySignatureReport(present=True, algorithm=algorithm, sha1=sha1,
                                 algorithm_allowed=allow_sha1 or not sha1)
    if refs != ["#Letter"]:
        return replace(base, reason=f"expected one reference to #Letter, found {refs}")
    if sha1 and not allow_sha1:
        return replace(base, reason="SHA-1 signatures are not allowed by the legacy profile")
    cert_el = sig.find(f"{{{DS_NS}}}KeyInfo/{{{DS_NS}}}X509Data/{{{DS_NS}}}X509Certificate")
    cert = None
    fingerprint = None
    if cert_el is not None:
        try:
            der = base64.b64decode("".join((cert_el.text or "").split()))
            cert = x509.load_der_x509_certificate(der)
            fingerprint = hashlib.sha256(der).hexdigest()
        except ValueError:
            return replace(base, reason="the KeyInfo certificate cannot be read")
    methods = frozenset(m for m in SignatureMethod if allow_sha1 or "SHA1" not in m.name)
    digest_algs = frozenset(d for d in DigestAlgorithm if allow_sha1 or "SHA1" not in d.name)
    config = SignatureConfiguration(require_x509=False, expect_references=1, signature_methods=methods,
                                    digest_algorithms=digest_algs, ignore_ambiguous_key_info=True,
                                    location=f"./{{{RAM_NS}}}GovernmentSignature/")
    doc = copy.deepcopy(gov_doc)
    if doc.find(f"{{{RAM_NS}}}GovernmentSignature") is None:
        return replace(base, certificate_sha256=fingerprint,
                       reason="the signature must be the GovernmentSignature beside the letter")
    try:
        result = XMLVerifier().verify(doc, x509_cert=cert, id_attribute="ID", expect_config=config)
    except (InvalidSignature, InvalidInput) as exc:
        return replace(base, certificate_sha256=fingerprint, reason=f"does not verify: {exc}")
    covered = None if isinstance(result, list) else result.signed_xml  # one reference expected: one result
    letter = doc.find(f"{{{RAM_NS}}}CorrespondenceLetter")
    if covered is None or letter is None or _c14n(covered) != _c14n(letter):
        return replace(base, certificate_sha256=fingerprint, reason="the signed content is not the letter")
    trusted = fingerprint is not None and fingerprint in agency_fingerprints
    return replace(base, intact=True, certificate_sha256=fingerprint, certificate=cert, trusted=trusted,
                   reason=None if trusted else "the certificate is not pinned to the sending agency")
