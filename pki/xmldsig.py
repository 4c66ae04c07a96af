"""XML signatures of the envelope: the author's signature, the gateway's seal, receipts.

Three signatures live in ``/env:Envelope/env:Signatures`` (namespace
``urn:th:gov:saraban:envelope:1``), never around or inside the content:

* **Author signature** (``Id="AuthorSignature"``, the first ``ds:Signature``):
  detached, same-document references to the body (``#Letter`` / ``#Notifier``
  / ``#Receipt``), to every ``Attachment`` by its ``Id`` and, if the author
  chooses, to ``#Header``. XAdES-BES by default (signing time and a digest of
  the signing certificate are signed too).
* **Gateway seal** (``Id="GatewaySeal"``): detached references to the header,
  the body, every attachment *and the author's ds:Signature element*, so a
  receiver verifies the path (who forwarded what, with which routing) as well
  as the author, and nobody can swap the author's signature underneath.
* **Receipt signature** (``Id="ReceiptSignature"``): a receipt is an ordinary
  envelope whose body is ``env:Receipt`` (schema-valid as is); the gateway
  signs it with an *enveloped* signature (``URI=""`` + the
  enveloped-signature transform), i.e. over the whole envelope.

Every signature uses exclusive c14n (so moving a signature into
``env:Signatures`` or forwarding an element does not change digests), SHA-256
digests and ECDSA or RSA with SHA-256 (SHA-384 for P-384 keys), and carries
the signer's certificate and chain in ``KeyInfo/X509Data``.

Verification ("see what is signed")
-----------------------------------
signxml verifies the cryptography under a pinned ``SignatureConfiguration``
(exact reference count, algorithm allow-lists, exclusive c14n). Around it,
this module defends against signature wrapping:

1. The tree is parsed once by :func:`pki.xmlparse.parse` and comments and
   processing instructions are removed (c14n drops them, so a comment inside
   a signed text node would otherwise let ``.text`` read something other than
   what was signed).
2. Before any cryptography, the reference list is checked against the
   document: every ``URI`` is a bare ``#id``; every id occurs exactly once in
   the whole document under any id-like attribute (``Id``, ``ID``, ``id``,
   ``xml:id``, any namespace; ds:Object included); the element it names sits
   where the standard puts it (``/Envelope/Letter``,
   ``/Envelope/Attachments/Attachment``, ...); and the set covers exactly the
   body and every attachment (plus, optionally, the header; plus the XAdES
   SignedProperties and KeyInfo inside this very signature).
3. After signxml, the canonical bytes of each in-tree element are compared
   with the bytes signxml digested (``VerifyResult.signed_data``). Equal bytes
   prove that the element instances handed downstream (``VerifiedEnvelope.body``
   and ``.attachments``) are exactly what was signed.

Trust is not signxml's job here: signxml is given the certificate from
KeyInfo as ``x509_cert`` (it only checks the signature value with it), and
:class:`pki.trust.TrustStore` decides whether that certificate is trusted,
valid now, not revoked and allowed to sign for the sender.

Validation returns a :class:`ValidationReport` of separate facts (like
pyHanko's status objects); :func:`verify_envelope` raises the failing fact's
:class:`PkiError`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lxml import etree
from signxml import SignatureConfiguration, VerifyResult, XMLSigner, XMLVerifier
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import InvalidDigest, InvalidInput, InvalidSignature, SignXMLException
from signxml.xades import XAdESSignatureConfiguration, XAdESSigner, XAdESVerifier

from pki.errors import AttachmentError, CertificateError, PkiError, SignatureError, StructureError
from pki.keys import Signer
from pki.trust import TrustStore, ValidatedCert, agency_of, fingerprint, per_certificate
from pki.xmlparse import parse

__all__ = [
    "AUTHOR_SIGNATURE_ID", "SEAL_ID", "RECEIPT_SIGNATURE_ID",
    "ValidationReport", "VerifiedEnvelope", "SealedEnvelope", "VerifiedReceipt",
    "sign_envelope", "validate_envelope", "verify_envelope", "seal_envelope", "verify_sealed",
    "sign_receipt", "verify_receipt", "build_receipt", "VerifiedAck", "verify_signed_ack",
]

#: The envelope standard's namespace (:mod:`gateway.core.xml` names it too; a test keeps the two equal).
ENVELOPE_NS = "urn:th:gov:saraban:envelope:1"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"

AUTHOR_SIGNATURE_ID = "AuthorSignature"
SEAL_ID = "GatewaySeal"
RECEIPT_SIGNATURE_ID = "ReceiptSignature"

_E = "{%s}" % ENVELOPE_NS
_DS = "{%s}" % DSIG_NS
_XADES_NS = "http://uri.etsi.org/01903/v1.3.2#"
_XADES = "{%s}" % _XADES_NS
_XADES_SIGNED_PROPERTIES = "http://uri.etsi.org/01903#SignedProperties"
_XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
_ID_NAMES = frozenset({"Id", "ID", "id"})
_BODY_TAGS = (_E + "Letter", _E + "Notifier", _E + "Receipt")
_SIGNABLE_TAGS = frozenset(_BODY_TAGS + (_E + "Attachment", _E + "Header"))

_EXC_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
_EXC_C14N_URI = _EXC_C14N.value
_ENVELOPED = SignatureConstructionMethod.enveloped.value
#: Transform lists a reference may carry: detached (the seal, author signatures) and enveloped (receipts, acks).
_DETACHED_TRANSFORMS = frozenset({(), (_EXC_C14N_URI,)})
_ENVELOPED_TRANSFORMS = frozenset({(_ENVELOPED,), (_ENVELOPED, _EXC_C14N_URI)})

_STRONG_METHODS = frozenset({
    SignatureMethod.RSA_SHA256, SignatureMethod.RSA_SHA384, SignatureMethod.RSA_SHA512,
    SignatureMethod.ECDSA_SHA256, SignatureMethod.ECDSA_SHA384, SignatureMethod.ECDSA_SHA512,
})
_SHA1_METHODS = frozenset({SignatureMethod.RSA_SHA1, SignatureMethod.ECDSA_SHA1})
_STRONG_DIGESTS = frozenset({DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512})
_ALLOWED_CURVES = frozenset({"secp256r1", "secp384r1"})
# The same allow-lists keyed by their URIs, so a letter's check is a dictionary look-up.
_METHODS_STRONG = MappingProxyType({m.value: m for m in _STRONG_METHODS})
_METHODS_WITH_SHA1 = MappingProxyType({m.value: m for m in _STRONG_METHODS | _SHA1_METHODS})
_DIGEST_URIS_STRONG = frozenset(d.value for d in _STRONG_DIGESTS)
_DIGEST_URIS_WITH_SHA1 = _DIGEST_URIS_STRONG | {DigestAlgorithm.SHA1.value}
_MIN_RSA_BITS = 2048
_MAX_KEYINFO_CERTS = 5


# ============================================================================ results


@dataclass(frozen=True)
class ValidationReport:
    """Separate facts about one envelope's author signature, and a computed bottom line.

    A fact is ``True`` (checked, holds), ``False`` (checked, fails) or ``None``
    (not checked, usually because an earlier fact failed). ``failure`` is the
    first failing fact's error.
    """

    #: XSD validity, recorded by the caller (``dataclasses.replace(report, schema_valid=...)``);
    #: ``None`` = not recorded here, does not block :attr:`ok`.
    schema_valid: bool | None = None
    #: Whether the envelope carries an author signature at all.
    signed: bool = False
    #: Whether a signature was required (``require_signature``).
    signature_required: bool = True
    #: The signature value and every reference digest verify, over exactly the expected parts,
    #: and the verified parts are the elements in place (no wrapping).
    signature_intact: bool | None = None
    #: The signer's certificate chains to a trust anchor, is valid, not revoked, fit for document signing.
    signer_trusted: bool | None = None
    #: The certificate may sign for the sending agency.
    signer_authorised: bool | None = None
    #: Every attachment's Size and Sha256 match its decoded Content.
    digests_ok: bool | None = None
    #: Algorithms, key type and key size are on the allow-list.
    policy_ok: bool | None = None
    #: The first failing fact's error (None when everything checked holds).
    failure: PkiError | None = None
    #: Agency code of the signer's certificate, when known.
    agency_code: str | None = None
    #: Signer subject (RFC 4514), when known.
    signer_subject: str | None = None
    #: ``"ecdsa-sha256"``, ``"rsa-sha256"`` ... when known.
    signature_algorithm: str | None = None

    @property
    def ok(self) -> bool:
        """The bottom line: everything checked holds and nothing required is missing."""
        if self.failure is not None or self.schema_valid is False or self.digests_ok is not True:
            return False
        if not self.signed:
            return not self.signature_required
        return all(f is True for f in (self.signature_intact, self.signer_trusted, self.signer_authorised,
                                       self.policy_ok))

    def summary(self) -> str:
        if self.ok:
            return f"valid, signed by {self.signer_subject}" if self.signed else "valid, unsigned"
        return f"invalid: {self.failure.code if self.failure else 'schema'}"


@dataclass(frozen=True)
class VerifiedEnvelope:
    """An envelope whose author signature verified; downstream code takes only this type.

    ``body`` and ``attachments`` are element instances *inside* ``root``
    whose canonical form was proven equal to what the signature covers. The
    header is **not** covered by the author's signature unless
    ``"#Header"`` is in :attr:`references`: the caller checks it (sender, recipients)
    against the authenticated client and :attr:`agency_code`.
    """

    #: The parsed tree that was verified (comments and processing instructions removed).
    root: etree._Element
    #: The verified body element (env:Letter, env:Notifier or env:Receipt).
    body: etree._Element
    #: The verified env:Attachment elements, in document order.
    attachments: tuple[etree._Element, ...]
    #: The signer's certificate (None only for an unsigned envelope accepted with require_signature=False).
    signer: x509.Certificate | None
    #: The agency the signer's certificate belongs to.
    agency_code: str | None
    #: ``"ecdsa-sha256"`` ... (None when unsigned).
    signature_algorithm: str | None
    #: The exact bytes that were verified (store and forward these).
    raw: bytes
    #: The separate facts.
    report: ValidationReport
    #: Decoded content of each attachment by its Id (sizes and digests checked).
    contents: Mapping[str, bytes] = field(default_factory=dict)
    #: The reference URIs the signature covers, e.g. ("#Letter", "#att-1").
    references: tuple[str, ...] = ()
    #: The trust store's verdict on the signer (path, validity window).
    validated: ValidatedCert | None = None
    #: XAdES SigningTime claimed by the signer (signed, but only a claim), if present.
    signing_time: dt.datetime | None = None

    @property
    def header(self) -> etree._Element | None:
        """The header element (unsigned by the author unless ``#Header`` is referenced)."""
        return self.root.find(_E + "Header")


class SealedEnvelope(NamedTuple):
    """Result of :func:`verify_sealed`: the author's verified envelope and the seal's verdict."""

    author: VerifiedEnvelope
    #: The gateway seal verifies with the pinned gateway certificate and covers header, body,
    #: attachments and the author's signature.
    seal_ok: bool
    #: Why the seal failed (None when it holds).
    seal_failure: PkiError | None


@dataclass(frozen=True)
class VerifiedReceipt:
    """A receipt whose signature verified; every field below comes from the verified tree."""

    #: The verified envelope as signed (re-parsed from the canonical bytes; signature excluded).
    root: etree._Element
    #: The verified env:Receipt element inside :attr:`root`.
    receipt: etree._Element
    #: ``submission`` or ``delivery``.
    kind: str
    message_id: str
    sender: str
    recipient: str | None
    delivery_id: str | None
    #: SHA-256 (hex) of the acknowledged bytes.
    sha256: str
    at: dt.datetime
    #: The certificate that signed the receipt.
    signer: x509.Certificate
    raw: bytes


# ============================================================================ signxml glue


class _InPlaceVerifierMixin:
    """signxml's verifier, told which signature to check and how to find referenced elements.

    Two hooks, both for speed, neither weakening the check:

    * ``_get_signature``: signxml finds "the first ds:Signature at
      ``location``"; an envelope holds two (author, seal), so the verifier is
      told which one by position in ``/Envelope/Signatures``.
    * ``get_root`` / ``_verify_reference`` (detached signatures only): stock
      signxml re-serialises and re-parses the *whole document* once per
      reference and resolves each ``#id`` with a document-wide XPath, ~0.3 ms
      per reference on a 6 KB envelope. Our references were already resolved
      against a complete id index (each id unique, each element in its place)
      and their transforms pinned to exclusive c14n, which does not depend on
      the ancestors' namespaces; so the in-place element is canonicalised and
      digested directly. The digest comparison, the algorithm allow-list and
      the reference count remain signxml's; ``signed_xml`` is then the very
      element in our tree whose bytes were digested.

    Receipts (enveloped, ``URI=""``) take signxml's stock path.
    """

    signature_index: int = 0
    #: id -> element, pre-validated (unique, in place); None = stock signxml behaviour.
    resolved: dict[str, etree._Element] | None = None

    def _get_signature(self, root):  # noqa: D401 - signxml hook
        if root.tag == _DS + "Signature":
            return root
        if root.tag == _E + "DeliveryAck":  # an office's ack: one enveloped signature, a child of the root
            found = root.findall(_DS + "Signature")
            if len(found) != 1:
                raise InvalidInput("a DeliveryAck carries exactly one signature")
            return found[0]
        signatures = _grandchildren(root, _E + "Signatures", _DS + "Signature")
        if len(signatures) <= self.signature_index:
            raise InvalidInput("the selected signature is missing")
        return signatures[self.signature_index]

    def get_root(self, data):
        if self.resolved is not None and isinstance(data, etree._Element):
            return data  # detached verification never mutates the document
        return super().get_root(data)

    def _check_cert_validity(self, cert, cert_source):
        # Validity periods are the trust store's verdict (stable codes, injectable clock).
        return None

    def _verify_reference(self, reference, index, root, uri_resolver, c14n_algorithm, signature,
                          signature_key_used):
        if self.resolved is None:
            return super()._verify_reference(reference, index, root, uri_resolver, c14n_algorithm, signature,
                                             signature_key_used)
        uri = reference.get("URI") or ""
        payload = self.resolved.get(uri[1:])
        if payload is None:
            raise InvalidInput(f"Unable to resolve reference URI: {uri}")
        digest_alg = DigestAlgorithm(self._find(reference, "DigestMethod").get("Algorithm"))
        self.check_digest_alg_expected(digest_alg)
        digest_value = self._find(reference, "DigestValue")
        payload_c14n = _c14n(payload)
        if base64.b64decode(digest_value.text or "") != self._get_digest(payload_c14n, digest_alg):
            raise InvalidDigest(f"Digest mismatch for reference {index} ({uri})")
        if getattr(self, "_pem_of", None) is not signature_key_used:
            self._pem_of = signature_key_used
            self._pem = signature_key_used.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        return VerifyResult(payload_c14n, payload, signature, signature_key=self._pem)


    # signxml looks elements up through ElementPath with a prefix map (~4 us a call, a dozen
    # calls per reference). A plain child look-up is the same query when there is no path
    # (``xpath`` empty, no "/" in the query): scan the children for the Clark name.
    def _find(self, element, query, require=True, xpath=""):
        if xpath or "/" in query:
            return super()._find(element, query, require=require, xpath=xpath)
        ns, _, local = query.partition(":") if ":" in query else ("ds", "", query)
        tag = f"{{{_SIGNXML_NS[ns]}}}{local}"
        for child in element:
            if child.tag == tag:
                return child
        if require:
            raise InvalidInput(f"Expected to find XML element {local} in {element.tag}")
        return None

    def _findall(self, element, query, xpath=""):
        if xpath or "/" in query:
            return super()._findall(element, query, xpath=xpath)
        ns, _, local = query.partition(":") if ":" in query else ("ds", "", query)
        tag = f"{{{_SIGNXML_NS[ns]}}}{local}"
        return [child for child in element if child.tag == tag]


class _Verifier(_InPlaceVerifierMixin, XMLVerifier):
    pass


class _XAdESVerifier(_InPlaceVerifierMixin, XAdESVerifier):
    # signxml accepts a signature valid against any one of its three XAdES schemas and tries them
    # in this list's order. Its first, XAdESv141.xsd, has no SigningCertificateV2 (what signxml
    # and most current signers write), so every letter paid a failed validation (~40 us) and an
    # exception before the schema that fits. Same three schemas, same any-of rule, the one that
    # fits current signatures first; the last stays last, so a refusal reports the same error.
    schema_files: ClassVar[list[str]] = ["XAdES01903v141-201601.xsd", "XAdESv141.xsd", "XAdES01903v141-201506.xsd"]

    def _verify_cert_digests(self, verify_result):
        # signxml re-wraps every KeyInfo certificate as PEM (textwrap) and parses it per letter;
        # the same certificates are parsed once through the DER cache, and their digests are
        # computed once (see _DigestCachedCert). The digest checks themselves are signxml's own.
        found = []
        for x509_data in self._findall(verify_result.signature_xml, "ds:KeyInfo/ds:X509Data"):
            for cert in self._findall(x509_data, "X509Certificate"):
                found.append(_load_cert_b64("".join((cert.text or "").split())))
        signing_cert = self._find_signing_cert(verify_result, found)
        certs = [_DigestCachedCert(c) for c in found]
        if signing_cert is not None:
            signing_cert = _DigestCachedCert(signing_cert)
            self._add_cert_if_missing(certs, signing_cert)
        props = self._find(verify_result.signed_xml, "xades:SignedSignatureProperties")
        v1 = self._find(props, "xades:SigningCertificate", require=False)
        v2 = self._find(props, "xades:SigningCertificateV2", require=False)
        if (v1 is None) == (v2 is None):
            raise InvalidInput("Expected to find exactly one of xades:SigningCertificate or xades:SigningCertificateV2")
        self._verify_cert_digest(v1 if v1 is not None else v2, certs=certs, signing_cert=signing_cert)


class _DigestCachedCert:
    """A certificate as signxml's XAdES check uses it, with DER and digests computed once per certificate.

    ``XAdESVerifier._verify_cert_digest`` fingerprints every KeyInfo
    certificate for every letter (~15 us each) and ``_add_cert_if_missing``
    re-encodes each to DER. Those values depend only on the certificate, so
    they are memoised per certificate object (:func:`pki.trust.per_certificate`:
    a different certificate is never a stale hit), and the comparison against
    the signed ``CertDigest`` stays signxml's, per letter. Only the two methods signxml
    calls are offered; anything else is an ``AttributeError``, not a silent
    pass-through.
    """

    __slots__ = ("cert",)

    def __init__(self, cert: x509.Certificate) -> None:
        self.cert = cert

    def fingerprint(self, algorithm: hashes.HashAlgorithm) -> bytes:
        return _cert_fingerprint(self.cert, type(algorithm))

    def public_bytes(self, encoding: Encoding) -> bytes:
        return _cert_der(self.cert) if encoding == Encoding.DER else self.cert.public_bytes(encoding)


@per_certificate()
def _cert_fingerprint(cert: x509.Certificate, algorithm: type[hashes.HashAlgorithm]) -> bytes:
    return cert.fingerprint(algorithm())


@per_certificate()
def _cert_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


class _InPlaceSignerMixin:
    """signxml's signer without the per-reference document copies (detached signatures only).

    Stock ``XMLSigner.sign`` copies the document once, then copies every
    referenced element, each found by a document-wide XPath. For a detached
    signature the document is never modified by signxml (the signature is
    built apart and we insert it afterwards), and exclusive c14n of an element
    is the same in place as in a copy, so the in-place elements from our
    verified-unique id index are used. Everything else (SignedInfo, digests,
    SignatureValue, KeyInfo, XAdES properties) is signxml's.
    """

    resolved: dict[str, etree._Element] | None = None

    def get_root(self, data):
        if self.resolved is not None and isinstance(data, etree._Element):
            return data
        return super().get_root(data)

    def _resolve_reference(self, doc_root, reference, uri_resolver=None):
        uri = reference.get("URI") or ""
        if self.resolved is not None and uri.startswith("#") and uri[1:] in self.resolved:
            return self.resolved[uri[1:]]
        return super()._resolve_reference(doc_root, reference, uri_resolver=uri_resolver)


class _WeakOk:
    """Let a signer produce SHA-1 signatures (tests of the allow_sha1 switch only)."""

    def check_deprecated_methods(self):
        return None


class _Signer(_InPlaceSignerMixin, XMLSigner):
    pass


class _XAdESSigner(_InPlaceSignerMixin, XAdESSigner):
    pass


class _WeakXMLSigner(_WeakOk, _Signer):
    pass


class _WeakXAdESSigner(_WeakOk, _XAdESSigner):
    pass


from signxml.util import namespaces as _signxml_namespaces  # noqa: E402

_SIGNXML_NS = dict(_signxml_namespaces)


def _set_id(signature_id: str):
    def annotate(sig_root, signing_settings):
        sig_root.set("Id", signature_id)
    return annotate


def _make_signer(signer: Signer, *, xades: bool, method: SignatureConstructionMethod, signature_id: str,
                 signature_method: SignatureMethod | None = None,
                 digest_algorithm: DigestAlgorithm = DigestAlgorithm.SHA256) -> XMLSigner:
    sm = signature_method or signer.signature_method
    weak = sm in _SHA1_METHODS or digest_algorithm == DigestAlgorithm.SHA1
    if xades:
        cls = _WeakXAdESSigner if weak else _XAdESSigner
    else:
        cls = _WeakXMLSigner if weak else _Signer
    xs = cls(method=method, signature_algorithm=sm, digest_algorithm=digest_algorithm, c14n_algorithm=_EXC_C14N)
    # Our Id first: the XAdES annotator derives QualifyingProperties/@Target from it.
    xs.signature_annotators.insert(0, _set_id(signature_id))
    return xs


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def _alg_name(method: SignatureMethod) -> str:
    return method.name.lower().replace("_", "-")


# ============================================================================ envelope structure


@dataclass
class _Parts:
    root: etree._Element
    header: etree._Element | None
    body: etree._Element
    attachments: list[etree._Element]
    signatures: etree._Element | None


def _child(parent: etree._Element, tag: str) -> etree._Element | None:
    """``parent.find(tag)`` for a Clark-notation tag, without ElementPath (~3 us a call, dozens a letter)."""
    for child in parent:
        if child.tag == tag:
            return child
    return None


def _grandchildren(parent: etree._Element, tag: str, child_tag: str) -> list[etree._Element]:
    """``parent.findall(f"{tag}/{child_tag}")``: every ``child_tag`` child of every ``tag`` child, in order."""
    return [el for mid in parent.iterchildren(tag) for el in mid.iterchildren(child_tag)]


def _parts(root: etree._Element) -> _Parts:
    if root.tag != _E + "Envelope":
        raise StructureError(f"not a gateway envelope (root element {root.tag})", field="/")
    bodies = [c for c in root if c.tag in _BODY_TAGS]
    if len(bodies) != 1:
        raise StructureError("an envelope has exactly one Letter, Notifier or Receipt", field="/Envelope")
    body = bodies[0]
    if not body.get("Id"):
        raise StructureError(f"{etree.QName(body).localname} has no Id to sign", field=etree.QName(body).localname)
    attachments = _grandchildren(root, _E + "Attachments", _E + "Attachment")
    for i, att in enumerate(attachments, 1):
        if not att.get("Id"):
            raise StructureError("an Attachment has no Id to sign", field=f"Attachments/Attachment[{i}]")
    return _Parts(root, _child(root, _E + "Header"), body, attachments, _child(root, _E + "Signatures"))


def _signatures_container(parts: _Parts) -> etree._Element:
    """``env:Signatures``, created in the place the XSD orders (after Attachments / the body)."""
    if parts.signatures is not None:
        return parts.signatures
    container = etree.Element(_E + "Signatures")
    anchor = parts.root.find(_E + "Attachments")
    if anchor is None:
        anchor = parts.body
    anchor.addnext(container)
    # keep the pretty-printing of the input, if any
    container.tail, anchor.tail = anchor.tail, anchor.tail
    parts.signatures = container
    return container


def _id_index(root: etree._Element) -> dict[str, list[etree._Element]]:
    """Every id-like attribute value in the document -> the elements carrying it."""
    index: dict[str, list[etree._Element]] = {}
    for el in root.iter(etree.Element):
        for name, value in el.attrib.items():
            local = name.rsplit("}", 1)[-1]
            if local in _ID_NAMES:
                index.setdefault(value, []).append(el)
    return index


def _ensure_unique_id(index: dict[str, list[etree._Element]], value: str, element: etree._Element) -> None:
    holders = index.get(value, [])
    if any(h is not element for h in holders):
        raise StructureError(f"Id {value!r} is already used in the envelope", field=f"@Id={value}")


def _strip_comments(root: etree._Element) -> None:
    # c14n without comments drops them; merge their neighbouring text so .text reads what was signed.
    etree.strip_tags(root, etree.Comment, etree.ProcessingInstruction)


def _author_signature(parts: _Parts) -> tuple[int, etree._Element] | None:
    if parts.signatures is None:
        return None
    for i, sig in enumerate(parts.signatures.iterchildren(_DS + "Signature")):
        if sig.get("Id") != SEAL_ID:
            return i, sig
    return None


def _signature_index(parts: _Parts, signature: etree._Element) -> int:
    for i, sig in enumerate(parts.signatures.iterchildren(_DS + "Signature")):
        if sig is signature:
            return i
    raise StructureError("signature not found")


# ============================================================================ signing


def _sign_detached(parts: _Parts, signer: Signer, references: Sequence[str], *, signature_id: str, xades: bool,
                   signature_method: SignatureMethod | None = None,
                   digest_algorithm: DigestAlgorithm = DigestAlgorithm.SHA256) -> etree._Element:
    index = _id_index(parts.root)
    resolved: dict[str, etree._Element] = {}
    for uri in references:
        holders = index.get(uri[1:], []) if uri.startswith("#") else []
        if len(holders) != 1:
            # signxml would silently sign the whole document for an unresolvable detached reference
            raise StructureError(f"reference {uri} must name exactly one element, found {len(holders)}", field=uri)
        resolved[uri[1:]] = holders[0]
    if signature_id in index:
        raise StructureError(f"Id {signature_id!r} is already used in the envelope", field=f"@Id={signature_id}")
    xs = _make_signer(signer, xades=xades, method=SignatureConstructionMethod.detached, signature_id=signature_id,
                      signature_method=signature_method, digest_algorithm=digest_algorithm)
    xs.resolved = resolved
    kwargs: dict[str, Any] = {}
    if xades:
        kwargs["always_add_key_value"] = False
    signature = xs.sign(parts.root, key=signer.xmldsig_key, cert=[signer.certificate, *signer.chain],
                        reference_uri=list(references), **kwargs)
    _signatures_container(parts).append(signature)
    return signature


def _lean_signature(signer: Signer, references: Sequence[tuple[str, etree._Element]], *, signature_id: str,
                    enveloped: bool = False) -> etree._Element:
    """Build and sign a ds:Signature for the gateway's own seal and receipts, without signxml's overhead.

    Why not signxml here: on the gateway's hot path signxml's ``sign()`` costs
    ~0.6 ms of pure-Python bookkeeping for a 4-reference seal (QName
    construction, dataclass copies, PEM round trips), against ~0.05 ms for
    the ECDSA operation. This builder emits exactly the shape signxml emits
    (same algorithms, ``ds`` prefix, one exclusive-c14n Transform per
    reference, X509Data with the certificate then the chain); the tests verify
    its output with *stock* ``signxml.XMLVerifier``, so interoperability is
    checked, not assumed. Author signatures (and XAdES) are still made by
    signxml, and every incoming signature is verified by signxml.

    The element tree is not built per call: :func:`_signature_template` builds
    it once per (key, number of references, enveloped or not) with the element
    builder, and each signature is a deep copy of it (one C-level tree copy,
    ~25 elements, where building them through the Python API cost ~20% of a
    seal) with the Id, the URIs, the digests and the signature value filled in.
    """
    sig = copy.deepcopy(_signature_template(signer.signature_method.value, len(references), enveloped,
                                            signer.certificate, *signer.chain))
    sig.set("Id", signature_id)
    signed_info = sig[0]
    # SignedInfo: CanonicalizationMethod, SignatureMethod, then one Reference per part, in order
    for ref, (uri, element) in zip(signed_info[2:], references, strict=False):
        ref.set("URI", uri)
        ref[-1].text = base64.b64encode(hashlib.sha256(_c14n(element)).digest()).decode()
    sig[1].text = base64.b64encode(signer.sign(_c14n(signed_info))).decode()
    return sig


@per_certificate(64)
def _signature_template(method_uri: str, n_refs: int, enveloped: bool, *certs: x509.Certificate) -> etree._Element:
    """The shape of a lean signature with everything but the per-document values (see :func:`_lean_signature`).

    Never handed out: :func:`_lean_signature` signs a deep copy. Keyed by the
    signature method and the certificate objects (see
    :func:`pki.trust.per_certificate`), so a new seal key or certificate gets
    a template of its own.
    """
    sig = etree.Element(_DS + "Signature", nsmap={"ds": DSIG_NS})
    signed_info = etree.SubElement(sig, _DS + "SignedInfo")
    etree.SubElement(signed_info, _DS + "CanonicalizationMethod", Algorithm=_EXC_C14N_URI)
    etree.SubElement(signed_info, _DS + "SignatureMethod", Algorithm=method_uri)
    for _ in range(n_refs):
        ref = etree.SubElement(signed_info, _DS + "Reference", URI="")
        transforms = etree.SubElement(ref, _DS + "Transforms")
        if enveloped:
            etree.SubElement(transforms, _DS + "Transform", Algorithm=_ENVELOPED)
        etree.SubElement(transforms, _DS + "Transform", Algorithm=_EXC_C14N_URI)
        etree.SubElement(ref, _DS + "DigestMethod", Algorithm=DigestAlgorithm.SHA256.value)
        etree.SubElement(ref, _DS + "DigestValue")
    etree.SubElement(sig, _DS + "SignatureValue")
    x509_data = etree.SubElement(etree.SubElement(sig, _DS + "KeyInfo"), _DS + "X509Data")
    for cert in certs:
        etree.SubElement(x509_data, _DS + "X509Certificate").text = _cert_b64(cert)
    return sig


@per_certificate(64)
def _cert_b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(Encoding.DER)).decode()


def _sign_envelope(envelope_bytes: bytes, signer: Signer, *, xades: bool = True, sign_header: bool = False,
                   references: Sequence[str] | None = None, signature_method: SignatureMethod | None = None,
                   digest_algorithm: DigestAlgorithm = DigestAlgorithm.SHA256) -> bytes:
    root = parse(envelope_bytes)
    parts = _parts(root)
    if _author_signature(parts) is not None:
        raise SignatureError("the envelope is already signed", code="signature.invalid", field="Signatures")
    if references is None:
        references = [f"#{parts.body.get('Id')}"] + [f"#{a.get('Id')}" for a in parts.attachments]
        if sign_header:
            if parts.header is None:
                raise StructureError("the envelope has no Header", field="Header")
            if not parts.header.get("Id"):
                _ensure_unique_id(_id_index(root), "Header", parts.header)
                parts.header.set("Id", "Header")
            references.insert(0, f"#{parts.header.get('Id')}")
    _sign_detached(parts, signer, references, signature_id=AUTHOR_SIGNATURE_ID, xades=xades,
                   signature_method=signature_method, digest_algorithm=digest_algorithm)
    return _serialize(root)


def sign_envelope(envelope_bytes: bytes, signer: Signer, *, xades: bool = True, sign_header: bool = False) -> bytes:
    """Add the author's signature (``Id="AuthorSignature"``) to an envelope and return the new bytes.

    Covers the body and every attachment by ``#Id`` (and ``#Header`` when
    ``sign_header``; a header without an Id gets ``Id="Header"``).
    ``env:Signatures`` is created after Attachments if missing.
    """
    return _sign_envelope(envelope_bytes, signer, xades=xades, sign_header=sign_header)


def seal_envelope(envelope_bytes: bytes, seal_signer: Signer, *, xades: bool = False) -> bytes:
    """Add the gateway seal (``Id="GatewaySeal"``) after the author's signature.

    The seal covers the header (given ``Id="Header"`` if it has none), the
    body, every attachment and the author's ``ds:Signature`` element (given
    ``Id="AuthorSignature"`` if it has none). Call it on the verified bytes
    (:attr:`VerifiedEnvelope.raw`).
    """
    root = parse(envelope_bytes)
    parts = _parts(root)
    if parts.header is None:
        raise StructureError("the envelope has no Header", field="Header")
    if parts.signatures is not None and any(s.get("Id") == SEAL_ID for s in parts.signatures):
        raise SignatureError("the envelope is already sealed", code="signature.sealed", field="Signatures")
    index = _id_index(root)
    if not parts.header.get("Id"):
        _ensure_unique_id(index, "Header", parts.header)
        parts.header.set("Id", "Header")
        index["Header"] = [parts.header]
    references = [f"#{parts.header.get('Id')}", f"#{parts.body.get('Id')}"]
    references += [f"#{a.get('Id')}" for a in parts.attachments]
    author = _author_signature(parts)
    if author is not None:
        signature = author[1]
        if not signature.get("Id"):
            _ensure_unique_id(index, AUTHOR_SIGNATURE_ID, signature)
            signature.set("Id", AUTHOR_SIGNATURE_ID)
            index[AUTHOR_SIGNATURE_ID] = [signature]
        references.append(f"#{signature.get('Id')}")
    if xades:
        _sign_detached(parts, seal_signer, references, signature_id=SEAL_ID, xades=True)
        return _serialize(root)
    targets = []
    for uri in references:
        holders = index.get(uri[1:], [])
        if len(holders) != 1:
            raise StructureError(f"Id {uri[1:]!r} must occur exactly once, found {len(holders)}", field=uri)
        targets.append((uri, holders[0]))
    if SEAL_ID in index:
        raise StructureError(f"Id {SEAL_ID!r} is already used in the envelope", field=f"@Id={SEAL_ID}")
    _signatures_container(parts).append(_lean_signature(seal_signer, targets, signature_id=SEAL_ID))
    return _serialize(root)


# ============================================================================ verification core


@dataclass
class _Check:
    """Outcome of verifying one detached signature (internal)."""

    report: ValidationReport
    cert: x509.Certificate | None = None
    extra_certs: list[x509.Certificate] = field(default_factory=list)
    references: tuple[str, ...] = ()
    algorithm: str | None = None
    signing_time: dt.datetime | None = None


_REPORT_FIELDS = frozenset(f.name for f in fields(ValidationReport))


def _evolve(report: ValidationReport, **changes: Any) -> ValidationReport:
    """``dataclasses.replace(report, **changes)`` without its per-call field introspection.

    A verification records its facts one by one, seven updates a letter;
    ``replace`` re-reads the dataclass fields and runs the frozen ``__init__``
    each time (~9 us, against ~2 us here). The report has no ``__post_init__``
    and no derived fields, so a copy of its ``__dict__`` with the changes is
    the very object ``replace`` builds; unknown names are refused as there.
    """
    if not changes.keys() <= _REPORT_FIELDS:
        raise TypeError(f"ValidationReport has no field(s) {sorted(changes.keys() - _REPORT_FIELDS)}")
    new = object.__new__(ValidationReport)
    new.__dict__.update(report.__dict__, **changes)
    return new


def _fail(report: ValidationReport, error: PkiError, **facts: Any) -> ValidationReport:
    return _evolve(report, failure=report.failure or error, **facts)


def _keyinfo_certs(signature: etree._Element) -> list[x509.Certificate]:
    nodes = [n for key_info in signature.iterchildren(_DS + "KeyInfo")
             for n in _grandchildren(key_info, _DS + "X509Data", _DS + "X509Certificate")]
    if not nodes:
        raise SignatureError("the signature carries no X.509 certificate in KeyInfo", field="Signatures/KeyInfo")
    if len(nodes) > _MAX_KEYINFO_CERTS:
        raise SignatureError("too many certificates in KeyInfo", field="Signatures/KeyInfo")
    try:
        return [_load_cert_b64("".join((n.text or "").split())) for n in nodes]
    except (ValueError, binascii.Error) as exc:
        raise SignatureError(f"unreadable certificate in KeyInfo: {exc}", field="Signatures/KeyInfo") from None


@functools.lru_cache(maxsize=4096)
def _load_cert_b64(text: str) -> x509.Certificate:
    """Certificates arrive with every letter; the same few thousand are parsed once."""
    return x509.load_der_x509_certificate(base64.b64decode(text, validate=True))


@per_certificate()
def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def _check_algorithms(signature: etree._Element, cert: x509.Certificate, *, allow_sha1: bool,
                      enveloped: bool = False) -> SignatureMethod:
    """Allow-list the algorithms before any cryptography runs (``signature.algorithm``)."""
    signed_info = _child(signature, _DS + "SignedInfo")
    if signed_info is None:
        raise SignatureError("the signature has no SignedInfo", field="Signatures/SignedInfo")
    c14n = _child(signed_info, _DS + "CanonicalizationMethod")
    if c14n is None or c14n.get("Algorithm") != _EXC_C14N_URI:
        raise SignatureError("SignedInfo must use exclusive c14n without comments", code="signature.algorithm",
                             field="Signatures/SignedInfo/CanonicalizationMethod")
    sm_el = _child(signed_info, _DS + "SignatureMethod")
    uri = sm_el.get("Algorithm") if sm_el is not None else None
    method = (_METHODS_WITH_SHA1 if allow_sha1 else _METHODS_STRONG).get(uri)
    if method is None:
        raise SignatureError(f"signature method {uri} is not allowed", code="signature.algorithm",
                             field="Signatures/SignatureMethod")
    digests = _DIGEST_URIS_WITH_SHA1 if allow_sha1 else _DIGEST_URIS_STRONG
    allowed_transforms = _ENVELOPED_TRANSFORMS if enveloped else _DETACHED_TRANSFORMS
    for ref in signed_info.iterchildren(_DS + "Reference"):
        dm = _child(ref, _DS + "DigestMethod")
        if dm is None or dm.get("Algorithm") not in digests:
            raise SignatureError(f"digest method of {ref.get('URI')} is not allowed", code="signature.algorithm",
                                 field="Signatures/Reference/DigestMethod")
        transform_els = _grandchildren(ref, _DS + "Transforms", _DS + "Transform")
        transforms = tuple(t.get("Algorithm") for t in transform_els)
        # no Transform may carry content (XPath, InclusiveNamespaces ...): any child element at all
        if transforms not in allowed_transforms or any(len(t) for t in transform_els):
            raise SignatureError(f"transforms of {ref.get('URI')} are not allowed", code="signature.algorithm",
                                 field="Signatures/Reference/Transforms")
    key = cert.public_key()
    family_ok = (method.name.startswith("ECDSA_") and isinstance(key, ec.EllipticCurvePublicKey)) or \
                (method.name.startswith("RSA_") and isinstance(key, rsa.RSAPublicKey))
    if not family_ok:
        raise SignatureError("the signature method does not match the certificate's key",
                             code="signature.algorithm", field="Signatures/SignatureMethod")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < _MIN_RSA_BITS:
        raise SignatureError(f"RSA keys need at least {_MIN_RSA_BITS} bits, this one has {key.key_size}",
                             code="signature.algorithm", field="Signatures/KeyInfo")
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in _ALLOWED_CURVES:
        raise SignatureError(f"curve {key.curve.name} is not allowed (P-256, P-384)", code="signature.algorithm",
                             field="Signatures/KeyInfo")
    return method


def _check_references(parts: _Parts, signature: etree._Element, index: dict[str, list[etree._Element]], *,
                      required: Sequence[etree._Element], optional: Sequence[etree._Element] = (),
                      ) -> tuple[list[str], dict[str, etree._Element]]:
    """Pin the reference set and the place of every referenced element (see module docstring)."""
    signed_info = _child(signature, _DS + "SignedInfo")
    refs = list(signed_info.iterchildren(_DS + "Reference")) if signed_info is not None else []
    uris = [r.get("URI") for r in refs]
    if not uris:
        raise SignatureError("the signature has no references", code="signature.references",
                             field="Signatures/SignedInfo")
    if len(set(uris)) != len(uris):
        raise SignatureError("a part is referenced twice", code="signature.references",
                             field="Signatures/SignedInfo")
    xades_parts: list[etree._Element] = []
    key_info = _child(signature, _DS + "KeyInfo")
    if key_info is not None:
        xades_parts.append(key_info)
    xades_parts += [props for qp in _grandchildren(signature, _DS + "Object", _XADES + "QualifyingProperties")
                    for props in qp.iterchildren(_XADES + "SignedProperties")]
    allowed = {id(e): e for e in list(required) + list(optional) + xades_parts}
    resolved: dict[str, etree._Element] = {}
    for ref, uri in zip(refs, uris, strict=False):
        if not uri or not uri.startswith("#") or uri.startswith("#xpointer(") or len(uri) < 2:
            raise SignatureError(f"reference URI {uri!r} is not a same-document #id", code="signature.references",
                                 field="Signatures/SignedInfo/Reference")
        holders = index.get(uri[1:], [])
        if not holders:
            raise SignatureError(f"reference {uri} names nothing in the envelope", code="signature.references",
                                 field=uri)
        if len(holders) > 1:
            raise SignatureError(f"Id {uri[1:]!r} occurs {len(holders)} times", code="signature.wrapping",
                                 field=uri)
        target = holders[0]
        if id(target) not in allowed:
            if target.tag in _SIGNABLE_TAGS:
                raise SignatureError(f"the element signed as {uri} is not in its place in the envelope",
                                     code="signature.wrapping", field=uri)
            raise SignatureError(f"reference {uri} covers something that is not part of the envelope standard",
                                 code="signature.references", field=uri)
        if target in xades_parts and (ref.get("Type") not in (None, _XADES_SIGNED_PROPERTIES)):
            raise SignatureError(f"unexpected reference type on {uri}", code="signature.references", field=uri)
        resolved[uri] = target
    covered = {id(e) for e in resolved.values()}
    for element in required:
        if id(element) not in covered:
            name = etree.QName(element).localname
            raise SignatureError(f"the signature does not cover {name} {element.get('Id')!r}",
                                 code="signature.references", field=f"{name}[@Id='{element.get('Id')}']")
    return uris, resolved


def _run_signxml(root: etree._Element, signature_index: int, cert: x509.Certificate, n_refs: int, *,
                 xades: bool, allow_sha1: bool, resolved: dict[str, etree._Element] | None = None) -> list[Any]:
    methods = _STRONG_METHODS | (_SHA1_METHODS if allow_sha1 else frozenset())
    digests = _STRONG_DIGESTS | ({DigestAlgorithm.SHA1} if allow_sha1 else frozenset())
    config_cls = XAdESSignatureConfiguration if xades else SignatureConfiguration
    config = config_cls(
        require_x509=True,
        expect_references=n_refs,
        signature_methods=methods,
        digest_algorithms=digests,
        default_reference_c14n_method=_EXC_C14N,
        # Time validity is the trust store's verdict (with stable error codes), not signxml's.
        verification_time=cert.not_valid_before_utc,
    )
    verifier = _XAdESVerifier() if xades else _Verifier()
    verifier.signature_index = signature_index
    verifier.resolved = resolved
    try:
        results = verifier.verify(root, x509_cert=cert, expect_config=config)
    except InvalidDigest as exc:
        raise SignatureError(f"a signed part was modified: {exc}", code="signature.invalid",
                             field="Signatures/SignedInfo/Reference") from None
    except InvalidSignature as exc:
        message = str(exc)
        code = "signature.references" if "references" in message else "signature.invalid"
        raise SignatureError(f"signature does not verify: {message}", code=code, field="Signatures") from None
    except InvalidInput as exc:
        message = str(exc)
        code = "signature.algorithm" if "forbidden" in message else \
            "signature.wrapping" if "Ambiguous" in message else "signature.invalid"
        raise SignatureError(f"signature is malformed: {message}", code=code, field="Signatures") from None
    except (SignXMLException, etree.DocumentInvalid, ValueError) as exc:
        raise SignatureError(f"signature is malformed: {exc}", code="signature.invalid", field="Signatures") from None
    return results if isinstance(results, list) else [results]


def _check_signature(parts: _Parts, signature: etree._Element, index: dict[str, list[etree._Element]], *,
                     required: Sequence[etree._Element], optional: Sequence[etree._Element] = (),
                     allow_sha1: bool, report: ValidationReport,
                     pinned_cert: x509.Certificate | None = None) -> _Check:
    """Structure, algorithms, signxml and in-place identity of one detached signature."""
    check = _Check(report=_evolve(report, signed=True))
    try:
        certs = _keyinfo_certs(signature)
        check.cert, check.extra_certs = certs[0], certs[1:]
        check.report = _evolve(check.report, agency_code=_agency(check.cert),
                               signer_subject=_subject(check.cert))
        if pinned_cert is not None and fingerprint(check.cert) != fingerprint(pinned_cert):
            raise CertificateError("the signature is not by the expected certificate", code="certificate.untrusted",
                                   field="Signatures/KeyInfo")
        uris, resolved = _check_references(parts, signature, index, required=required, optional=optional)
        check.references = tuple(uris)
    except PkiError as exc:
        check.report = _fail(check.report, exc, signature_intact=False)
        return check
    try:
        method = _check_algorithms(signature, check.cert, allow_sha1=allow_sha1)
        check.algorithm = _alg_name(method)
        check.report = _evolve(check.report, policy_ok=True, signature_algorithm=check.algorithm)
    except PkiError as exc:
        check.report = _fail(check.report, exc, policy_ok=False)
        return check
    xades = bool(_grandchildren(signature, _DS + "Object", _XADES + "QualifyingProperties"))
    try:
        results = _run_signxml(parts.root, _signature_index(parts, signature), check.cert, len(uris), xades=xades,
                               allow_sha1=allow_sha1, resolved={u[1:]: e for u, e in resolved.items()})
        # The elements handed downstream must be the very ones whose bytes were digested.
        for uri, result in zip(uris, results, strict=False):
            if result.signed_xml is not resolved[uri]:
                raise SignatureError(f"the element in place of {uri} is not the one that was verified",
                                     code="signature.wrapping", field=uri)
            props = getattr(result, "signed_properties", None)
            if props is not None:
                check.signing_time = _signing_time(props)
    except PkiError as exc:
        check.report = _fail(check.report, exc, signature_intact=False)
        return check
    check.report = _evolve(check.report, signature_intact=True)
    return check


def _agency(cert: x509.Certificate) -> str | None:
    return agency_of(cert)


def _signing_time(signed_signature_properties: etree._Element) -> dt.datetime | None:
    el = _child(signed_signature_properties, _XADES + "SigningTime")
    if el is None or not el.text:
        return None
    try:
        return dt.datetime.fromisoformat(el.text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def _check_attachments(attachments: Iterable[etree._Element]) -> dict[str, bytes]:
    contents: dict[str, bytes] = {}
    for att in attachments:
        att_id = att.get("Id")
        where = f"Attachments/Attachment[@Id='{att_id}']"
        content_el, size_el, sha_el = _child(att, _E + "Content"), _child(att, _E + "Size"), _child(att, _E + "Sha256")
        if content_el is None and size_el is not None and sha_el is not None \
                and _child(att, _E + "ContentRef") is not None:
            # The file travels as a MIME part: the signature covers its declared Size and Sha256,
            # and the gateway's intake checks the part's bytes against those signed values.
            continue
        if content_el is None or size_el is None or sha_el is None:
            raise StructureError("an Attachment needs Size, Sha256 and Content", field=where)
        try:
            data = base64.b64decode("".join((content_el.text or "").split()), validate=True)
        except (ValueError, binascii.Error):
            raise AttachmentError("Content is not valid base64", code="attachment.content_invalid",
                                  field=f"{where}/Content") from None
        if str(len(data)) != (size_el.text or "").strip():
            raise AttachmentError(f"Size says {(size_el.text or '').strip()} bytes, Content has {len(data)}",
                                  field=f"{where}/Size")
        if hashlib.sha256(data).hexdigest() != (sha_el.text or "").strip():
            raise AttachmentError("Sha256 does not match the content", field=f"{where}/Sha256")
        contents[att_id] = data
    return contents


async def _trust_and_bind(check: _Check, trust: TrustStore, sender: str, usage: str = "document-signing",
                          ) -> ValidatedCert | None:
    validated = None
    try:
        validated = await trust.validate_signer(check.cert, usage=usage, intermediates=check.extra_certs)
        check.report = _evolve(check.report, signer_trusted=True)
    except PkiError as exc:
        check.report = _fail(check.report, exc, signer_trusted=False)
    try:
        trust.check_agency(check.cert, sender)
        check.report = _evolve(check.report, signer_authorised=True)
    except PkiError as exc:
        check.report = _fail(check.report, exc, signer_authorised=False)
    return validated


async def _validate_author(raw: bytes, root: etree._Element, trust: TrustStore, *, sender: str, allow_sha1: bool,
                           require_signature: bool) -> tuple[ValidationReport, VerifiedEnvelope | None]:
    parts = _parts(root)
    report = ValidationReport(signature_required=require_signature)
    found = _author_signature(parts)
    index = _id_index(root)
    if found is None:
        if require_signature:
            return _fail(report, SignatureError("the envelope carries no author signature",
                                                code="signature.missing", field="Signatures")), None
        try:
            contents = _check_attachments(parts.attachments)
        except PkiError as exc:
            return _fail(report, exc, digests_ok=False), None
        report = _evolve(report, digests_ok=True)
        return report, VerifiedEnvelope(root=root, body=parts.body, attachments=tuple(parts.attachments),
                                        signer=None, agency_code=None, signature_algorithm=None, raw=raw,
                                        report=report, contents=MappingProxyType(contents))
    _, signature = found
    optional = [parts.header] if parts.header is not None and parts.header.get("Id") else []
    check = _check_signature(parts, signature, index, required=[parts.body, *parts.attachments], optional=optional,
                             allow_sha1=allow_sha1, report=report)
    if check.report.signature_intact is not True:
        if check.report.failure is not None and check.report.failure.code == "signature.invalid":
            # An attachment whose bytes no longer match its declared Size/Sha256 also breaks its
            # reference; name that fact (attachment.digest_mismatch, the code an unsigned envelope or a
            # multipart part gets) rather than the signature it took down with it.
            try:
                _check_attachments(parts.attachments)
            except AttachmentError as exc:
                check.report = _evolve(check.report, failure=exc, digests_ok=False)
        return check.report, None
    validated = await _trust_and_bind(check, trust, sender)
    contents: dict[str, bytes] = {}
    try:
        contents = _check_attachments(parts.attachments)
        check.report = _evolve(check.report, digests_ok=True)
    except PkiError as exc:
        check.report = _fail(check.report, exc, digests_ok=False)
    if not check.report.ok:
        return check.report, None
    return check.report, VerifiedEnvelope(
        root=root, body=parts.body, attachments=tuple(parts.attachments), signer=check.cert,
        agency_code=check.report.agency_code, signature_algorithm=check.algorithm, raw=raw, report=check.report,
        contents=MappingProxyType(contents), references=check.references, validated=validated,
        signing_time=check.signing_time)


def _parse_for_verify(envelope_bytes: bytes) -> etree._Element:
    root = parse(envelope_bytes)
    _strip_comments(root)
    return root


async def validate_envelope(envelope_bytes: bytes, trust: TrustStore, *, sender: str, allow_sha1: bool = False,
                            require_signature: bool = True) -> ValidationReport:
    """Check an envelope's author signature and attachments; return the facts, never raise for bad signatures.

    Raises only for input it cannot read: not XML (:class:`pki.errors.XmlError` from
    :func:`pki.xmlparse.parse`) or not a gateway envelope (``envelope.structure``).
    """
    report, _ = await _validate_author(bytes(envelope_bytes), _parse_for_verify(envelope_bytes), trust,
                                       sender=sender, allow_sha1=allow_sha1, require_signature=require_signature)
    return report


async def verify_envelope(envelope_bytes: bytes, trust: TrustStore, *, sender: str, allow_sha1: bool = False,
                          require_signature: bool = True, root: etree._Element | None = None) -> VerifiedEnvelope:
    """Verify an envelope (see :func:`validate_envelope`) and return only verified data, or raise.

    ``sender`` is the agency code the envelope claims to come from (the
    authenticated client's agency); the signer's certificate must belong to it.
    ``root``: the tree :func:`gateway.core.xml.parse` already made of exactly these bytes
    (saves a second parse on the hot path); comments and processing instructions are
    stripped from it in place, as from a fresh parse.
    """
    if root is None:
        root = _parse_for_verify(envelope_bytes)
    else:
        _strip_comments(root)
    report, verified = await _validate_author(bytes(envelope_bytes), root, trust,
                                              sender=sender, allow_sha1=allow_sha1,
                                              require_signature=require_signature)
    if verified is None or not report.ok:
        raise report.failure or SignatureError("the envelope did not verify")
    return verified


async def verify_sealed(envelope_bytes: bytes, trust: TrustStore, *, gateway_cert: x509.Certificate,
                        sender: str | None = None, allow_sha1: bool = False,
                        require_signature: bool = True) -> SealedEnvelope:
    """Verify a forwarded envelope: the gateway seal (pinned to ``gateway_cert``) and the author's signature.

    Raises the author's failure like :func:`verify_envelope`; the seal's
    verdict is returned (``seal_ok``, ``seal_failure``) so a receiver can tell
    "forged path" from "bad letter". ``sender`` defaults to the header's
    Sender, which the seal covers.
    """
    raw = bytes(envelope_bytes)
    root = _parse_for_verify(raw)
    parts = _parts(root)
    seal_failure: PkiError | None = None
    seals = [s for s in parts.signatures.findall(_DS + "Signature") if s.get("Id") == SEAL_ID] \
        if parts.signatures is not None else []
    if len(seals) != 1 or parts.header is None:
        seal_failure = SignatureError("the envelope carries no gateway seal", code="signature.missing",
                                      field="Signatures")
    else:
        author = _author_signature(parts)
        required = [parts.header, parts.body, *parts.attachments] + ([author[1]] if author else [])
        check = _check_signature(parts, seals[0], _id_index(root), required=required, allow_sha1=False,
                                 report=ValidationReport(), pinned_cert=gateway_cert)
        seal_failure = check.report.failure
    if sender is None:
        sender_el = parts.header.find(_E + "Sender") if parts.header is not None else None
        sender = (sender_el.text or "").strip() if sender_el is not None else ""
    report, verified = await _validate_author(raw, root, trust, sender=sender, allow_sha1=allow_sha1,
                                              require_signature=require_signature)
    if verified is None or not report.ok:
        raise report.failure or SignatureError("the envelope did not verify")
    return SealedEnvelope(verified, seal_failure is None, seal_failure)


# ============================================================================ receipts


def build_receipt(*, receipt_message_id: str, header_sender: str, recipients: Sequence[str], kind: str,
                  message_id: str, sender: str, sha256: str, at: dt.datetime, recipient: str | None = None,
                  delivery_id: str | None = None, created_at: dt.datetime | None = None,
                  receipt_id: str = "Receipt", ref_to_message_id: str | None = None) -> bytes:
    """Build an unsigned, schema-valid receipt envelope (MessageType ``receipt``) with the element builder."""
    if at.tzinfo is None or (created_at is not None and created_at.tzinfo is None):
        raise ValueError("receipt times must be timezone-aware")
    root = etree.Element(_E + "Envelope", nsmap={"env": ENVELOPE_NS}, version="1")
    header = etree.SubElement(root, _E + "Header")
    etree.SubElement(header, _E + "MessageId").text = receipt_message_id
    etree.SubElement(header, _E + "RefToMessageId").text = ref_to_message_id or message_id
    etree.SubElement(header, _E + "MessageType").text = "receipt"
    etree.SubElement(header, _E + "CreatedAt").text = (created_at or at).isoformat()
    etree.SubElement(header, _E + "Sender").text = header_sender
    rcpts = etree.SubElement(header, _E + "Recipients")
    for code in recipients:
        etree.SubElement(rcpts, _E + "Recipient").text = code
    receipt = etree.SubElement(root, _E + "Receipt", Id=receipt_id)
    etree.SubElement(receipt, _E + "Kind").text = kind
    etree.SubElement(receipt, _E + "MessageId").text = message_id
    etree.SubElement(receipt, _E + "Sender").text = sender
    if recipient is not None:
        etree.SubElement(receipt, _E + "Recipient").text = recipient
    if delivery_id is not None:
        etree.SubElement(receipt, _E + "DeliveryId").text = delivery_id
    etree.SubElement(receipt, _E + "Sha256").text = sha256
    etree.SubElement(receipt, _E + "At").text = at.isoformat()
    return _serialize(root)


def sign_receipt(receipt_xml: bytes, signer: Signer) -> bytes:
    """Sign a receipt envelope with an enveloped signature over the whole envelope.

    The receipt is an ``env:Envelope`` whose body is ``env:Receipt`` (see
    :func:`build_receipt`); the signature (``Id="ReceiptSignature"``) goes
    into ``env:Signatures`` with ``URI=""`` and the enveloped-signature
    transform, so every byte of the receipt except the signature is covered.
    """
    root = parse(receipt_xml)
    parts = _parts(root)
    if parts.body.tag != _E + "Receipt":
        raise StructureError("a receipt envelope has a Receipt body", field="Receipt")
    if parts.signatures is not None and len(parts.signatures):
        raise SignatureError("the receipt is already signed", field="Signatures")
    container = _signatures_container(parts)
    container.text = None  # the enveloped transform leaves an empty container; sign exactly that
    # URI="" covers the whole envelope; the enveloped-signature transform removes the signature itself.
    container.append(_lean_signature(signer, [("", root)], signature_id=RECEIPT_SIGNATURE_ID, enveloped=True))
    return _serialize(root)


async def verify_receipt(receipt_bytes: bytes, gateway: x509.Certificate | TrustStore) -> VerifiedReceipt:
    """Verify a receipt signed by :func:`sign_receipt`.

    ``gateway`` is either the gateway's certificate (pinned: the receipt must
    be signed by exactly that certificate) or a :class:`TrustStore` (the
    signer's certificate must validate for sealing).
    """
    raw = bytes(receipt_bytes)
    root = _parse_for_verify(raw)
    parts = _parts(root)
    signatures = parts.signatures.findall(_DS + "Signature") if parts.signatures is not None else []
    if parts.body.tag != _E + "Receipt" or len(signatures) != 1 or len(parts.signatures) != 1:
        raise SignatureError("a receipt carries exactly one signature", code="signature.missing",
                             field="Signatures")
    signature = signatures[0]
    certs = _keyinfo_certs(signature)
    cert = certs[0]
    refs = signature.findall(f"{_DS}SignedInfo/{_DS}Reference")
    if len(refs) != 1 or refs[0].get("URI") != "":
        raise SignatureError("a receipt signature covers the whole envelope (one reference, URI=\"\")",
                             code="signature.references", field="Signatures/SignedInfo")
    _check_algorithms(signature, cert, allow_sha1=False, enveloped=True)
    if isinstance(gateway, TrustStore):
        await gateway.validate_signer(cert, usage="seal", intermediates=certs[1:])
    elif fingerprint(cert) != fingerprint(gateway):
        raise CertificateError("the receipt is not signed by the gateway's certificate",
                               code="certificate.untrusted", field="Signatures/KeyInfo")
    result = _run_signxml(root, 0, cert, 1, xades=False, allow_sha1=False)[0]
    signed = result.signed_xml
    if signed is None or signed.tag != _E + "Envelope":
        raise SignatureError("the signed data is not an envelope", code="signature.references")
    receipt = signed.find(_E + "Receipt")
    if receipt is None:
        raise SignatureError("the signed envelope has no Receipt", code="signature.references")

    def text(name: str) -> str | None:
        el = receipt.find(_E + name)
        return el.text.strip() if el is not None and el.text else None

    try:
        at = dt.datetime.fromisoformat((text("At") or "").replace("Z", "+00:00"))
    except ValueError:
        raise StructureError("receipt At is not a date-time", field="Receipt/At") from None
    return VerifiedReceipt(root=signed, receipt=receipt, kind=text("Kind") or "", message_id=text("MessageId") or "",
                           sender=text("Sender") or "", recipient=text("Recipient"),
                           delivery_id=text("DeliveryId"), sha256=text("Sha256") or "", at=at, signer=cert, raw=raw)


# ============================================================================ delivery acknowledgements


@dataclass(frozen=True)
class VerifiedAck:
    """A receiving office's signed ``DeliveryAck`` whose signature verified; fields read from the signed tree."""

    #: The DeliveryAck as signed (signxml's ``signed_xml``: the signature itself excluded).
    root: etree._Element
    delivery_id: str | None
    #: SHA-256 (hex) of the envelope bytes the office says it received, if it says.
    sha256: str | None
    #: The office's certificate that signed the ack.
    signer: x509.Certificate
    #: The trust store's verdict on :attr:`signer` (path, validity window).
    validated: ValidatedCert
    #: Agency code of the signer's certificate (checked against the acknowledging office).
    agency_code: str
    #: ``"ecdsa-sha256"`` ...
    signature_algorithm: str


async def verify_signed_ack(ack_bytes: bytes, trust: TrustStore, *, agency: str) -> VerifiedAck:
    """Verify an office's enveloped signature over its ``DeliveryAck``; raise the failing check's PkiError.

    The same rules as receipts: exactly one ``ds:Signature``, a direct child of
    ``env:DeliveryAck``; exactly one reference covering the whole ack (``URI=""``,
    or ``#Id`` of the DeliveryAck itself, which is what signxml writes when the
    root has an Id) with the enveloped-signature transform; the algorithm
    allow-list (no SHA-1); the certificate from KeyInfo validated by ``trust``
    for document signing and bound to ``agency`` (the acknowledging office) by
    the same :class:`pki.trust.AgencyBinding` as letters. The fields returned
    come from the tree signxml verified, never from the document as received.
    """
    root = _parse_for_verify(bytes(ack_bytes))
    if root.tag != _E + "DeliveryAck":
        raise StructureError("not a DeliveryAck", field="/")
    signatures = root.findall(_DS + "Signature")
    if len(signatures) != 1 or len(root.findall(f".//{_DS}Signature")) != 1:
        raise SignatureError("a signed DeliveryAck carries exactly one signature, a child of DeliveryAck",
                             code="signature.references", field="DeliveryAck/Signature")
    signature = signatures[0]
    certs = _keyinfo_certs(signature)
    cert = certs[0]
    refs = signature.findall(f"{_DS}SignedInfo/{_DS}Reference")
    root_id = root.get("Id")
    whole = {""} | ({f"#{root_id}"} if root_id else set())
    if len(refs) != 1 or refs[0].get("URI") not in whole:
        raise SignatureError("a DeliveryAck signature covers the whole ack (one reference, URI=\"\" or #Id)",
                             code="signature.references", field="DeliveryAck/Signature/SignedInfo")
    if root_id and len(_id_index(root).get(root_id, [])) != 1:
        raise SignatureError(f"Id {root_id!r} occurs more than once", code="signature.wrapping",
                             field="DeliveryAck/@Id")
    method = _check_algorithms(signature, cert, allow_sha1=False, enveloped=True)
    result = _run_signxml(root, 0, cert, 1, xades=False, allow_sha1=False)[0]
    signed = result.signed_xml
    if signed is None or signed.tag != _E + "DeliveryAck":
        raise SignatureError("the signed data is not the DeliveryAck", code="signature.references",
                             field="DeliveryAck/Signature")
    validated = await trust.validate_signer(cert, usage="document-signing", intermediates=certs[1:])
    code = trust.check_agency(cert, agency)

    def text(name: str) -> str | None:
        el = signed.find(_E + name)
        return el.text.strip() if el is not None and el.text else None

    return VerifiedAck(root=signed, delivery_id=text("DeliveryId"), sha256=text("Sha256"), signer=cert,
                       validated=validated, agency_code=code, signature_algorithm=_alg_name(method))
