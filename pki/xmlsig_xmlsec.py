"""libxmlsec1 (PyPI ``xmlsec``, the reference C implementation of XML-DSig) behind the gateway's policy.

Measured against the in-place verifier (:mod:`pki.xmlsig_inplace`) on the same
trees, 2 cores (``bench/crypto.py`` envelopes): libxmlsec1 takes ~0.41 ms for
the 4-reference gateway seal, the in-place verifier ~0.15 ms. libxmlsec1
canonicalises each same-document reference through its node-set machinery,
which tests every node of the whole document for membership once per
reference (half its time, ``xmlC14NProcessNode`` / ``xmlXPathNodeSetContains``),
and it loads the key per context. So libxmlsec1 is not on the hot path; it is
an independent second opinion that the differential and interoperability
tests (``tests/pki/test_xmlsig_differential.py``, ``test_xmlsig_interop.py``)
hold the other verifiers to. It reads a reference without transforms as
XML-DSig 4.4.3.2 says (inclusive Canonical XML 1.0 of the node-set), so it
verifies what ``pki.sign`` writes now (every reference names exclusive c14n)
and what standard signers write, and it refuses, as a digest mismatch, the
bare XAdES references that signxml wrote with exclusive c14n (signatures
issued before; the gateway's own verifiers still accept those, see
:mod:`pki.xmlsig_policy`).

The policy comes first, as on the hot path: the caller has pinned the
reference set and the algorithms (:func:`pki.xmlsig_policy.check_references`,
:func:`pki.xmlsig_policy.check_algorithms`). Here, before libxmlsec1 sees the
document: every reference ``URI`` is a same-document ``#id`` naming the element
the policy resolved, each once; nothing in the signature would make libxmlsec1 fetch or follow
anything (no ``ds:Manifest``, no ``RetrievalMethod``); the signature is valid
against the schemas signxml holds it to and KeyInfo holds certificates only; the key is the
certificate's public key, set on the context, so KeyInfo is never read; and
only exclusive c14n, the enveloped-signature transform, the digests and the
signature methods of the allow-list are enabled on the context.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lxml import etree

from pki.errors import SignatureError
from pki.trust import per_certificate
from pki.xmlsig_parts import DS, XADES
from pki.xmlsig_signxml import signature_schemas

__all__ = ["XMLSEC_VERSION", "check_linked", "verify_with_xmlsec"]

#: The libxmlsec1 version the binding was built with, e.g. ``(1, 3, 9)``.
XMLSEC_VERSION: Final[tuple[int, ...]] = getattr(xmlsec, "get_libxmlsec_version", lambda: (0,))()  # not in its stubs
_C = xmlsec.constants
_REFERENCE_TRANSFORMS: Final = (_C.TransformExclC14N, _C.TransformEnveloped, _C.TransformSha256,
                                _C.TransformSha384, _C.TransformSha512)
_SIGNATURE_TRANSFORMS: Final = {
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": _C.TransformEcdsaSha256,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": _C.TransformEcdsaSha384,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": _C.TransformEcdsaSha512,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": _C.TransformRsaSha256,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": _C.TransformRsaSha384,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": _C.TransformRsaSha512,
}
_ID_ATTRIBUTES: Final = ["Id", "ID", "id"]


def check_linked() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(libxml2 of lxml, libxml2 of xmlsec): equal, or the two libraries would share trees built by
    different libxml2 builds (the binding refuses that at import; this says which versions met)."""
    ours, theirs = etree.LIBXML_VERSION, xmlsec.get_libxml_version()
    if ours != theirs:
        raise ImportError(f"lxml runs libxml2 {ours}, xmlsec {theirs}: pin them together (pyproject.toml)")
    return ours, theirs


def verify_with_xmlsec(signature: etree._Element, cert: x509.Certificate, uris: Sequence[str],
                       resolved: dict[str, etree._Element]) -> None:
    """Verify ``signature`` (a detached one, references pre-checked into ``resolved``: ``id -> element``)
    with libxmlsec1 and ``cert``'s key; raise :class:`SignatureError` otherwise."""
    signed_info = signature[0] if len(signature) else None
    if signed_info is None or signed_info.tag != DS + "SignedInfo":
        raise SignatureError("the signature has no SignedInfo", field="Signatures/SignedInfo")
    refs = [r for r in signed_info if r.tag == DS + "Reference"]
    if [r.get("URI") for r in refs] != list(uris) or any(u[1:] not in resolved for u in uris):
        raise SignatureError("the references are not the ones the policy checked", code="signature.references",
                             field="Signatures/SignedInfo")
    if signature.find(f".//{DS}Manifest") is not None or signature.find(f".//{DS}RetrievalMethod") is not None:
        raise SignatureError("a Manifest or RetrievalMethod would be followed", code="signature.structure",
                             field="Signatures")
    key_info = signature.find(DS + "KeyInfo")
    if key_info is not None and any(c.tag != DS + "X509Data" for c in key_info):
        # the key is the certificate's; anything else in KeyInfo (a KeyValue ...) signxml would check against it
        raise SignatureError("KeyInfo holds something beside the certificates", code="signature.invalid",
                             field="Signatures/KeyInfo")
    xades = signature.find(f"{DS}Object/{XADES}QualifyingProperties") is not None
    if not any(schema.validate(signature) for schema in signature_schemas(xades)):
        raise SignatureError("the signature is not valid against the XML-DSig / XAdES schemas",
                             code="signature.invalid", field="Signatures")
    method = signed_info[1].get("Algorithm") if len(signed_info) > 1 else None
    if method not in _SIGNATURE_TRANSFORMS:
        raise SignatureError(f"signature method {method} is not allowed", code="signature.algorithm",
                             field="Signatures/SignatureMethod")
    root = signature.getroottree().getroot()
    xmlsec.tree.add_ids(root, _ID_ATTRIBUTES)
    ctx = xmlsec.SignatureContext()
    ctx.key = _key(cert)
    for transform in _REFERENCE_TRANSFORMS:
        ctx.enable_reference_transform(transform)
    ctx.enable_signature_transform(_C.TransformExclC14N)
    ctx.enable_signature_transform(_SIGNATURE_TRANSFORMS[method])
    try:
        ctx.verify(signature)
    except xmlsec.Error as exc:
        raise SignatureError(f"signature does not verify (libxmlsec1): {exc}", code="signature.invalid",
                             field="Signatures") from None


@per_certificate()
def _key(cert: x509.Certificate) -> xmlsec.Key:
    # The public key alone: a key loaded from the certificate costs ~70 us to copy into every context.
    pem = cert.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return xmlsec.Key.from_memory(pem, _C.KeyDataFormatPem)
