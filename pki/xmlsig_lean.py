"""The gateway's own signatures (the seal and receipts), built without signxml's overhead.

Why not signxml here: on the gateway's hot path signxml's ``sign()`` costs
~0.6 ms of pure-Python bookkeeping for a 4-reference seal (QName
construction, dataclass copies, PEM round trips), against ~0.05 ms for
the ECDSA operation. :func:`lean_signature` emits exactly the shape signxml
emits (same algorithms, ``ds`` prefix, one exclusive-c14n Transform per
reference, X509Data with the certificate then the chain); the tests verify
its output with *stock* ``signxml.XMLVerifier``, so interoperability is
checked, not assumed. Author signatures (and XAdES) are still made by
signxml (:mod:`pki.sign`). Incoming detached signatures are checked in place
(:mod:`pki.xmlsig_inplace`, signxml judging every other shape), enveloped ones
(receipts, acknowledgements) by signxml.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.algorithms import DigestAlgorithm

from pki.keys import Signer
from pki.trust import per_certificate
from pki.xmlsig_parts import DS, DSIG_NS, c14n
from pki.xmlsig_policy import ENVELOPED, EXC_C14N_URI


def lean_signature(signer: Signer, references: Sequence[tuple[str, etree._Element]], *, signature_id: str,
                   enveloped: bool = False) -> etree._Element:
    """Build and sign a ds:Signature over ``references`` (``(URI, element)`` pairs, SHA-256 digests).

    The element tree is not built per call: :func:`signature_template` builds
    it once per (key, number of references, enveloped or not) with the element
    builder, and each signature is a deep copy of it (one C-level tree copy,
    ~25 elements, where building them through the Python API cost ~20% of a
    seal) with the Id, the URIs, the digests and the signature value filled in.
    """
    sig = copy.deepcopy(signature_template(signer.signature_method.value, len(references), enveloped,
                                           signer.certificate, *signer.chain))
    sig.set("Id", signature_id)
    signed_info = sig[0]
    # SignedInfo: CanonicalizationMethod, SignatureMethod, then one Reference per part, in order
    for ref, (uri, element) in zip(signed_info[2:], references, strict=False):
        ref.set("URI", uri)
        ref[-1].text = base64.b64encode(hashlib.sha256(c14n(element)).digest()).decode()
    sig[1].text = base64.b64encode(signer.sign(c14n(signed_info))).decode()
    return sig


@per_certificate(64)
def signature_template(method_uri: str, n_refs: int, enveloped: bool,
                       *certs: x509.Certificate) -> etree._Element:
    """The shape of a lean signature with everything but the per-document values (see :func:`lean_signature`).

    Never handed out: :func:`lean_signature` signs a deep copy. Keyed by the
    signature method and the certificate objects (see
    :func:`pki.trust.per_certificate`), so a new seal key or certificate gets
    a template of its own.
    """
    sig = etree.Element(DS + "Signature", nsmap={"ds": DSIG_NS})
    signed_info = etree.SubElement(sig, DS + "SignedInfo")
    etree.SubElement(signed_info, DS + "CanonicalizationMethod", Algorithm=EXC_C14N_URI)
    etree.SubElement(signed_info, DS + "SignatureMethod", Algorithm=method_uri)
    for _ in range(n_refs):
        ref = etree.SubElement(signed_info, DS + "Reference", URI="")
        transforms = etree.SubElement(ref, DS + "Transforms")
        if enveloped:
            etree.SubElement(transforms, DS + "Transform", Algorithm=ENVELOPED)
        etree.SubElement(transforms, DS + "Transform", Algorithm=EXC_C14N_URI)
        etree.SubElement(ref, DS + "DigestMethod", Algorithm=DigestAlgorithm.SHA256.value)
        etree.SubElement(ref, DS + "DigestValue")
    etree.SubElement(sig, DS + "SignatureValue")
    x509_data = etree.SubElement(etree.SubElement(sig, DS + "KeyInfo"), DS + "X509Data")
    for cert in certs:
        etree.SubElement(x509_data, DS + "X509Certificate").text = _cert_b64(cert)
    return sig


@per_certificate(64)
def _cert_b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(Encoding.DER)).decode()
