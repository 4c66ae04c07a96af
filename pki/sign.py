"""The author's signature over an envelope (``Id="AuthorSignature"``), made with signxml.

Detached, same-document references to the body and every attachment by
``#Id`` (and ``#Header`` if the author chooses), XAdES-BES by default; see
:mod:`pki.xmlsig_parts` for where it sits. Every reference, the XAdES
SignedProperties and KeyInfo ones included, names its transform (exclusive
c14n), so standard verifiers (libxmlsec1, DSS) digest what was signed: signxml
alone writes those two bare, which XML-DSig reads as inclusive c14n
(:func:`pki.xmlsig_signxml.make_signer`; the verifiers' side is in
:mod:`pki.xmlsig_policy`). :func:`sign_detached` is also how the
gateway seal is made when it is asked for XAdES (:mod:`pki.seal`).
"""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureConstructionMethod, SignatureMethod

from pki.errors import SignatureError, StructureError
from pki.keys import Signer
from pki.xmlparse import parse
from pki.xmlsig_parts import (
    AUTHOR_SIGNATURE_ID,
    Parts,
    author_signature,
    ensure_unique_id,
    envelope_parts,
    id_index,
    serialize,
    signatures_container,
)
from pki.xmlsig_signxml import make_signer

__all__ = ["sign_envelope"]


def sign_detached(parts: Parts, signer: Signer, references: Sequence[str], *, signature_id: str, xades: bool,
                  signature_method: SignatureMethod | None = None,
                  digest_algorithm: DigestAlgorithm = DigestAlgorithm.SHA256) -> etree._Element:
    """Sign ``references`` (``#id`` each naming exactly one element) and append the signature to
    ``env:Signatures``."""
    index = id_index(parts.root)
    resolved: dict[str, etree._Element] = {}
    for uri in references:
        holders = index.get(uri[1:], []) if uri.startswith("#") else []
        if len(holders) != 1:
            # signxml would silently sign the whole document for an unresolvable detached reference
            raise StructureError(f"reference {uri} must name exactly one element, found {len(holders)}",
                                 field=uri)
        resolved[uri[1:]] = holders[0]
    if signature_id in index:
        raise StructureError(f"Id {signature_id!r} is already used in the envelope",
                             field=f"@Id={signature_id}")
    xs = make_signer(signer, xades=xades, method=SignatureConstructionMethod.detached,
                     signature_id=signature_id, signature_method=signature_method,
                     digest_algorithm=digest_algorithm)
    xs.resolved = resolved
    # no KeyValue beside the certificate (XAdESSigner adds one unless told; XMLSigner never does)
    signature = xs.sign(parts.root, key=signer.xmldsig_key, cert=[signer.certificate, *signer.chain],
                        reference_uri=list(references), always_add_key_value=False)
    signatures_container(parts).append(signature)
    return signature


def _sign_envelope(envelope_bytes: bytes, signer: Signer, *, xades: bool = True, sign_header: bool = False,
                   references: Sequence[str] | None = None, signature_method: SignatureMethod | None = None,
                   digest_algorithm: DigestAlgorithm = DigestAlgorithm.SHA256) -> bytes:
    """:func:`sign_envelope` with the knobs tests bend: the reference list and (weak) algorithms."""
    root = parse(envelope_bytes)
    parts = envelope_parts(root)
    if author_signature(parts) is not None:
        raise SignatureError("the envelope is already signed", code="signature.invalid", field="Signatures")
    if references is None:
        references = [f"#{parts.body.get('Id')}"] + [f"#{a.get('Id')}" for a in parts.attachments]
        if sign_header:
            if parts.header is None:
                raise StructureError("the envelope has no Header", field="Header")
            if not parts.header.get("Id"):
                ensure_unique_id(id_index(root), "Header", parts.header)
                parts.header.set("Id", "Header")
            references.insert(0, f"#{parts.header.get('Id')}")
    sign_detached(parts, signer, references, signature_id=AUTHOR_SIGNATURE_ID, xades=xades,
                  signature_method=signature_method, digest_algorithm=digest_algorithm)
    return serialize(root)


def sign_envelope(envelope_bytes: bytes, signer: Signer, *, xades: bool = True,
                  sign_header: bool = False) -> bytes:
    """Add the author's signature (``Id="AuthorSignature"``) to an envelope and return the new bytes.

    Covers the body and every attachment by ``#Id`` (and ``#Header`` when
    ``sign_header``; a header without an Id gets ``Id="Header"``).
    ``env:Signatures`` is created after Attachments if missing.
    """
    return _sign_envelope(envelope_bytes, signer, xades=xades, sign_header=sign_header)
