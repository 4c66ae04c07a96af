"""signxml, made to sign and verify our envelopes in place, and its errors turned into stable codes.

signxml verifies the cryptography under a pinned ``SignatureConfiguration``
(exact reference count, algorithm allow-lists, exclusive c14n); :func:`run_signxml`
builds that configuration and maps signxml's exceptions to
:class:`pki.errors.SignatureError` codes. Trust is not signxml's job here: signxml
is given the certificate from KeyInfo as ``x509_cert`` (it only checks the
signature value with it), and :class:`pki.trust.TrustStore` decides whether that
certificate is trusted, valid now, not revoked and allowed to sign for the sender.

The subclasses below only take work off signxml (each hook's docstring says
why it is safe); every digest comparison, algorithm check and signature value
stays signxml's.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes
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
from signxml.util import namespaces as signxml_namespaces
from signxml.xades import XAdESSignatureConfiguration, XAdESSigner, XAdESVerifier

from pki.errors import SignatureError
from pki.keys import Signer
from pki.trust import per_certificate
from pki.xmlsig_parts import DS, E, grandchildren
from pki.xmlsig_policy import (
    EXC_C14N,
    LEGACY_EXCLUSIVE,
    SHA1_METHODS,
    STRONG_DIGESTS,
    STRONG_METHODS,
    load_cert_b64,
    reference_octets,
)

if TYPE_CHECKING:
    # The mixins below are only ever combined with these classes; mypy checks their hooks against them.
    _VerifierBase = XMLVerifier
    _SignerBase = XMLSigner
else:
    _VerifierBase = object
    _SignerBase = object

_SIGNXML_NS = dict(signxml_namespaces)
_C14N_URIS = frozenset(m.value for m in CanonicalizationMethod)
#: The XAdES schemas a signature may be valid against (any one), in the order they are tried: see
#: ``_XAdESVerifier.schema_files``.
XADES_SCHEMAS: list[str] = ["XAdES01903v141-201601.xsd", "XAdESv141.xsd", "XAdES01903v141-201506.xsd"]


class _InPlaceVerifierMixin(_VerifierBase):
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
      and their transforms pinned to exclusive c14n or none; so the in-place
      element is canonicalised and digested directly, as the transforms say
      (:func:`pki.xmlsig_policy.reference_octets`: none is the standard's
      inclusive C14N 1.0 in context, not signxml's default, and signxml's old
      exclusive digest is still accepted for issued signatures). The
      algorithm allow-list and the reference count remain signxml's;
      ``signed_xml`` is then the very element in our tree whose bytes were
      digested.

    Receipts and acks (enveloped, ``URI=""``) take signxml's stock path, a
    reference that names no c14n read as the standard says (``_verify_whole``).
    """

    signature_index: int = 0
    #: id -> element, pre-validated (unique, in place); None = stock signxml behaviour.
    resolved: dict[str, etree._Element] | None = None
    #: see :func:`pki.xmlsig_policy.reference_octets`
    legacy_exclusive: bool = LEGACY_EXCLUSIVE
    _pem_of: object = None
    _pem: bytes = b""

    def _get_signature(self, root: etree._Element) -> etree._Element:  # signxml hook
        if root.tag == DS + "Signature":
            return root
        if root.tag == E + "DeliveryAck":  # an office's ack: one enveloped signature, a child of the root
            found = root.findall(DS + "Signature")
            if len(found) != 1:
                raise InvalidInput("a DeliveryAck carries exactly one signature")
            return found[0]
        signatures = grandchildren(root, E + "Signatures", DS + "Signature")
        if len(signatures) <= self.signature_index:
            raise InvalidInput("the selected signature is missing")
        return signatures[self.signature_index]

    def get_root(self, data: bytes | str | etree._Element) -> etree._Element:
        if self.resolved is not None and isinstance(data, etree._Element):
            return data  # detached verification never mutates the document
        return super().get_root(data)

    def _check_cert_validity(self, cert: x509.Certificate, cert_source: str) -> None:
        # Validity periods are the trust store's verdict (stable codes, injectable clock).
        return None

    def _verify_reference(self, reference: etree._Element, index: int, root: etree._Element,
                          uri_resolver: Callable[..., object] | None, c14n_algorithm: object,
                          signature: etree._Element, signature_key_used: object) -> VerifyResult:
        if self.resolved is None:
            return self._verify_whole(reference, index, root, uri_resolver, c14n_algorithm, signature,
                                      signature_key_used)
        uri = reference.get("URI") or ""
        payload = self.resolved.get(uri[1:])
        if payload is None:
            raise InvalidInput(f"Unable to resolve reference URI: {uri}")
        # (_find raises when an element is missing: require=True; the checks below only tell mypy)
        digest_method = self._find(reference, "DigestMethod")
        assert digest_method is not None
        digest_alg = DigestAlgorithm(digest_method.get("Algorithm"))
        self.check_digest_alg_expected(digest_alg)
        digest_value = self._find(reference, "DigestValue")
        assert digest_value is not None
        signed_digest = base64.b64decode(digest_value.text or "")
        payload_c14n = next((octets for octets in reference_octets(reference, payload,
                                                                   legacy_exclusive=self.legacy_exclusive)
                             if self._get_digest(octets, digest_alg) == signed_digest), None)
        if payload_c14n is None:
            raise InvalidDigest(f"Digest mismatch for reference {index} ({uri})")
        if self._pem_of is not signature_key_used:
            self._pem_of = signature_key_used
            # a public key object: the same one for every reference of a signature
            self._pem = signature_key_used.public_bytes(  # type: ignore[attr-defined]  # signxml passes it untyped
                Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        return VerifyResult(payload_c14n, payload, signature, signature_key=self._pem)

    def _verify_whole(self, reference: etree._Element, *args: object) -> VerifyResult:
        """signxml's own reference check (enveloped receipts and acks), a reference that names no c14n
        read the standard way: ``run_signxml`` makes inclusive C14N 1.0 the default, and signxml's old
        exclusive default is tried next when ``legacy_exclusive``. Both forms of a whole document
        (``URI=""`` or the root's ``#Id``) differ only in namespace declarations nothing uses, so the
        document's content is fixed either way (see :mod:`pki.xmlsig_policy`)."""
        config = self.config
        try:
            try:
                return super()._verify_reference(reference, *args)
            except InvalidDigest:
                named = grandchildren(reference, DS + "Transforms", DS + "Transform")
                if not self.legacy_exclusive or any(t.get("Algorithm") in _C14N_URIS for t in named):
                    raise
            self.config = replace(config, default_reference_c14n_method=EXC_C14N)
            return super()._verify_reference(reference, *args)
        finally:
            self.config = config

    # signxml looks elements up through ElementPath with a prefix map (~4 us a call, a dozen
    # calls per reference). A plain child look-up is the same query when there is no path
    # (``xpath`` empty, no "/" in the query): scan the children for the Clark name.
    def _find(self, element: etree._Element, query: str, require: bool = True,
              xpath: str = "") -> etree._Element | None:
        if xpath or "/" in query:
            return super()._find(element, query, require=require, xpath=xpath)
        ns, _, local = query.partition(":") if ":" in query else ("ds", "", query)
        tag = f"{{{_SIGNXML_NS[ns]}}}{local}"
        for element_child in element:
            if element_child.tag == tag:
                return element_child
        if require:
            raise InvalidInput(f"Expected to find XML element {local} in {element.tag}")
        return None

    def _findall(self, element: etree._Element, query: str, xpath: str = "") -> list[etree._Element]:
        if xpath or "/" in query:
            return super()._findall(element, query, xpath=xpath)
        ns, _, local = query.partition(":") if ":" in query else ("ds", "", query)
        tag = f"{{{_SIGNXML_NS[ns]}}}{local}"
        return [element_child for element_child in element if element_child.tag == tag]


class _Verifier(_InPlaceVerifierMixin, XMLVerifier):
    pass


class _XAdESVerifier(_InPlaceVerifierMixin, XAdESVerifier):
    # signxml accepts a signature valid against any one of its three XAdES schemas and tries them
    # in this list's order. Its first, XAdESv141.xsd, has no SigningCertificateV2 (what signxml
    # and most current signers write), so every letter paid a failed validation (~40 us) and an
    # exception before the schema that fits. Same three schemas, same any-of rule, the one that
    # fits current signatures first; the last stays last, so a refusal reports the same error.
    schema_files: ClassVar[list[str]] = XADES_SCHEMAS

    def _verify_cert_digests(self, verify_result: VerifyResult) -> None:
        # signxml re-wraps every KeyInfo certificate as PEM (textwrap) and parses it per letter;
        # the same certificates are parsed once through the DER cache, and their digests are
        # computed once (see _DigestCachedCert). The digest checks themselves are signxml's own.
        found = []
        for x509_data in self._findall(verify_result.signature_xml, "ds:KeyInfo/ds:X509Data"):
            for cert in self._findall(x509_data, "X509Certificate"):
                found.append(load_cert_b64("".join((cert.text or "").split())))
        signing_cert = self._find_signing_cert(verify_result, found)
        certs = [_cached(c) for c in found]
        if signing_cert is not None:
            signing_cert = _cached(signing_cert)
            self._add_cert_if_missing(certs, signing_cert)
        props = self._find(verify_result.signed_xml, "xades:SignedSignatureProperties")
        v1 = self._find(props, "xades:SigningCertificate", require=False)
        v2 = self._find(props, "xades:SigningCertificateV2", require=False)
        if (v1 is None) == (v2 is None):
            raise InvalidInput("Expected to find exactly one of xades:SigningCertificate or "
                               "xades:SigningCertificateV2")
        self._verify_cert_digest(v1 if v1 is not None else v2, certs=certs, signing_cert=signing_cert)


def signature_schemas(xades: bool) -> list[etree.XMLSchema]:
    """The schemas signxml validates a signature against (any one must hold), loaded once by signxml."""
    return _XAdESVerifier.schemas() if xades else _Verifier.schemas()


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
        return cert_fingerprint(self.cert, type(algorithm))

    def public_bytes(self, encoding: Encoding) -> bytes:
        return _cert_der(self.cert) if encoding == Encoding.DER else self.cert.public_bytes(encoding)


def _cached(cert: x509.Certificate) -> x509.Certificate:
    # Handed to signxml where it wants a Certificate; it calls only the two methods offered.
    return cast(x509.Certificate, _DigestCachedCert(cert))


@per_certificate()
def cert_fingerprint(cert: x509.Certificate, algorithm: type[hashes.HashAlgorithm]) -> bytes:
    return cert.fingerprint(algorithm())


@per_certificate()
def _cert_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


class InPlaceSignerMixin(_SignerBase):
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

    def get_root(self, data: bytes | str | etree._Element) -> etree._Element:
        if self.resolved is not None and isinstance(data, etree._Element):
            return data
        return super().get_root(data)

    def _resolve_reference(self, doc_root: etree._Element, reference: Mapping[str, str],
                           uri_resolver: Callable[..., object] | None = None) -> etree._Element:
        uri = reference.get("URI") or ""
        if self.resolved is not None and uri.startswith("#") and uri[1:] in self.resolved:
            return self.resolved[uri[1:]]
        return super()._resolve_reference(doc_root, reference, uri_resolver=uri_resolver)


class _WeakOk(_SignerBase):
    """Let a signer produce SHA-1 signatures (tests of the allow_sha1 switch only)."""

    def check_deprecated_methods(self) -> None:
        return None


class _Signer(InPlaceSignerMixin, XMLSigner):
    pass


class _XAdESSigner(InPlaceSignerMixin, XAdESSigner):
    """signxml's XAdES signer, every reference naming its transform.

    signxml adds the SignedProperties and KeyInfo references without
    Transforms yet digests them with the SignedInfo c14n (exclusive): XML-DSig
    4.4.3.2 makes a bare same-document reference inclusive C14N 1.0, so
    libxmlsec1, DSS and other standard verifiers found a digest mismatch. The
    exclusive c14n transform it applied is written into the reference, so
    the digest is what the standard reads (and exclusive c14n of an element
    does not depend on where it sits).
    """

    def _add_reference_to_signed_info(self, sig_root: etree._Element, node_to_reference: etree._Element,
                                      **attrs: str) -> None:
        super()._add_reference_to_signed_info(sig_root, node_to_reference, **attrs)
        reference = sig_root[0][-1]  # SignedInfo's last child: the reference just added
        if reference.tag != DS + "Reference" or reference.find(DS + "Transforms") is not None:
            raise InvalidInput("signxml added no bare reference where one was expected")
        transforms = etree.Element(DS + "Transforms")
        etree.SubElement(transforms, DS + "Transform", Algorithm=self.c14n_alg.value)
        reference.insert(0, transforms)


class _WeakXMLSigner(_WeakOk, _Signer):
    pass


class _WeakXAdESSigner(_WeakOk, _XAdESSigner):
    pass


def _set_id(signature_id: str) -> Callable[[etree._Element, object], None]:
    def annotate(sig_root: etree._Element, signing_settings: object) -> None:
        sig_root.set("Id", signature_id)
    return annotate


def make_signer(signer: Signer, *, xades: bool, method: SignatureConstructionMethod, signature_id: str,
                signature_method: SignatureMethod | None = None,
                digest_algorithm: DigestAlgorithm = DigestAlgorithm.SHA256) -> InPlaceSignerMixin:
    """A signxml signer (XAdES or plain) for ``signer``'s key whose signature gets ``Id=signature_id``."""
    sm = signature_method or signer.signature_method
    weak = sm in SHA1_METHODS or digest_algorithm == DigestAlgorithm.SHA1
    cls: type[InPlaceSignerMixin]
    if xades:
        cls = _WeakXAdESSigner if weak else _XAdESSigner
    else:
        cls = _WeakXMLSigner if weak else _Signer
    xs = cls(method=method, signature_algorithm=sm, digest_algorithm=digest_algorithm,
             c14n_algorithm=EXC_C14N)
    # Our Id first: the XAdES annotator derives QualifyingProperties/@Target from it.
    xs.signature_annotators.insert(0, _set_id(signature_id))
    return xs


def run_signxml(root: etree._Element, signature_index: int, cert: x509.Certificate, n_refs: int, *,
                xades: bool, allow_sha1: bool, resolved: dict[str, etree._Element] | None = None,
                legacy_exclusive: bool = LEGACY_EXCLUSIVE) -> list[VerifyResult]:
    """Verify the ``signature_index``-th signature of ``root`` with ``cert``, exactly ``n_refs`` references.

    ``resolved`` (detached signatures): the pre-checked ``id -> element`` map to digest in place, each
    reference as :func:`pki.xmlsig_policy.reference_octets` says (``legacy_exclusive`` passed on).
    Returns one result per reference, in SignedInfo order; raises :class:`SignatureError`.
    """
    methods = STRONG_METHODS | (SHA1_METHODS if allow_sha1 else frozenset())
    digests = STRONG_DIGESTS | ({DigestAlgorithm.SHA1} if allow_sha1 else frozenset())
    config_cls = XAdESSignatureConfiguration if xades else SignatureConfiguration
    config = config_cls(
        require_x509=True,
        expect_references=n_refs,
        signature_methods=methods,
        digest_algorithms=digests,
        # a reference that names no c14n: the standard's (XML-DSig 4.4.3.2); signxml's own default is 1.1
        default_reference_c14n_method=CanonicalizationMethod.CANONICAL_XML_1_0,
        # Time validity is the trust store's verdict (with stable error codes), not signxml's.
        verification_time=cert.not_valid_before_utc,
    )
    verifier = _XAdESVerifier() if xades else _Verifier()
    verifier.signature_index = signature_index
    verifier.resolved = resolved
    verifier.legacy_exclusive = legacy_exclusive
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
        raise SignatureError(f"signature is malformed: {exc}", code="signature.invalid",
                             field="Signatures") from None
    return results if isinstance(results, list) else [results]
