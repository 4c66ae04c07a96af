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
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.algorithms import DigestAlgorithm

from pki.keys import Signer
from pki.trust import per_certificate
from pki.xmlsig_parts import DS, DSIG_NS, c14n, serialize
from pki.xmlsig_policy import ENVELOPED, EXC_C14N_URI


def lean_signature(signer: Signer, references: Sequence[tuple[str, etree._Element]], *, signature_id: str,
                   enveloped: bool = False, parent: etree._Element | None = None) -> etree._Element:
    """Build and sign a ds:Signature over ``references`` (``(URI, element)`` pairs, SHA-256 digests).

    The element tree is not built per call: :func:`signature_template` builds
    it once per (key, number of references, enveloped or not) with the element
    builder, and each signature is a deep copy of it (one C-level tree copy,
    ~25 elements, where building them through the Python API cost ~20% of a
    seal) with the Id, the URIs, the digests and the signature value filled in.

    ``parent``: the element the signature goes into, appended there before SignedInfo is canonicalised
    and signed. Where the document already declares the XML-DSig namespace under another prefix, lxml
    moves the signature onto that prefix as it joins the document, and a SignedInfo signed before under
    ``ds`` would no longer verify.
    """
    sig = copy.deepcopy(signature_template(signer.signature_method.value, len(references), enveloped,
                                           signer.certificate, *signer.chain))
    sig.set("Id", signature_id)
    signed_info = sig[0]
    # SignedInfo: CanonicalizationMethod, SignatureMethod, then one Reference per part, in order
    for ref, (uri, element) in zip(signed_info[2:], references, strict=False):
        ref.set("URI", uri)
        ref[-1].text = base64.b64encode(hashlib.sha256(c14n(element)).digest()).decode()
    if parent is not None:
        parent.append(sig)
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


# ---------------------------------------------------------------------------- the same signature as bytes
#
# A lean signature's tree (deep copy, one element per value) is made only to be canonicalised (its
# SignedInfo) and serialised (the document it joins): ~20 us of a seal or receipt, against one ECDSA
# sign. :func:`lean_signature_xml` writes those two byte strings directly, from pieces that lxml itself
# wrote once per key (:func:`_pieces`: the template of :func:`signature_template` with markers in place of
# the values, serialised and canonicalised), so the bytes are the ones the tree would give: the same
# values go between the same pieces. Only URIs of the plain id alphabet take this way (nothing for either
# serialiser to escape); any other goes through :func:`lean_signature`.

_PLAIN_URI = re.compile(r"(?:#[A-Za-z0-9_.:-]+)?")
_MARKS = ("@@ID@@", "@@URI@@", "@@DIGEST@@", "@@VALUE@@")


class _Pieces(NamedTuple):
    #: serialised ds:Signature: [before Id, before the references, after them up to SignatureValue, after it]
    sig: tuple[str, str, str, str]
    #: one serialised Reference: [before URI, before DigestValue, after it]
    ref: tuple[str, str, str]
    #: canonical SignedInfo: [before the references, after them]
    info: tuple[str, str]
    #: one canonical Reference: [before URI, before DigestValue, after it]
    info_ref: tuple[str, str, str]


@per_certificate(64)
def _pieces(method_uri: str, enveloped: bool, *certs: x509.Certificate) -> _Pieces:
    sig = copy.deepcopy(signature_template(method_uri, 1, enveloped, *certs))
    sig.set("Id", _MARKS[0])
    ref = sig[0][2]
    ref.set("URI", _MARKS[1])
    ref[-1].text = _MARKS[2]
    sig[1].text = _MARKS[3]
    written = etree.tostring(sig, encoding="unicode")
    canonical = c14n(sig[0]).decode()
    before_id, after_id = _cut(written, _MARKS[0])
    head, one_ref, tail = _reference_of(after_id)
    before_value, after_value = _cut(tail, _MARKS[3])
    info_head, info_ref, info_tail = _reference_of(canonical)
    return _Pieces(sig=(before_id, head, before_value, after_value), ref=_value_slots(one_ref),
                   info=(info_head, info_tail), info_ref=_value_slots(info_ref))


def _cut(text: str, mark: str) -> tuple[str, str]:
    before, found, after = text.partition(mark)
    if not found:
        raise AssertionError(f"{mark} is not in the template")
    return before, after


def _reference_of(text: str) -> tuple[str, str, str]:
    """(before the one Reference, the Reference, after it)."""
    at, end = text.index("<ds:Reference "), text.index("</ds:Reference>") + len("</ds:Reference>")
    return text[:at], text[at:end], text[end:]


def _value_slots(reference: str) -> tuple[str, str, str]:
    """A Reference cut where its URI and its DigestValue go."""
    before_uri, rest = _cut(reference, _MARKS[1])
    before_digest, after_digest = _cut(rest, _MARKS[2])
    return before_uri, before_digest, after_digest


def lean_signature_xml(signer: Signer, references: Sequence[tuple[str, etree._Element]], *, signature_id: str,
                       enveloped: bool = False, known: Mapping[str, bytes] | None = None) -> bytes | None:
    """The serialised ds:Signature that :func:`lean_signature` would make (as the document it joins writes
    it, declaring ``ds`` itself), or ``None`` when a URI is not a plain ``#id`` (or ``""``): then the
    tree is made, whose serialiser escapes what needs it.

    ``known``: ``URI -> SHA-256`` of the exclusive c14n of the very element that URI names here, already
    computed and checked (:attr:`pki.verify.VerifiedEnvelope.exclusive_sha256`, of this tree): not
    canonicalised and hashed again."""
    if not all(uri.isascii() and _PLAIN_URI.fullmatch(uri) for uri, _ in references):
        return None
    digests = []
    for uri, element in references:
        given = known.get(uri) if known else None
        digests.append((uri, given if given is not None else hashlib.sha256(c14n(element)).digest()))
    return lean_signature_text(signer, digests, signature_id=signature_id, enveloped=enveloped).encode()


def lean_signature_text(signer: Signer, digests: Sequence[tuple[str, bytes]], *, signature_id: str,
                        enveloped: bool = False) -> str:
    """:func:`lean_signature_xml` (as text) of references whose SHA-256 digests the caller computed:
    ``(URI, digest)`` pairs, each URI ``""`` or a plain ``#id`` (the caller checks: it is written as is)."""
    pieces = _pieces(signer.signature_method.value, enveloped, signer.certificate, *signer.chain)
    r0, r1, r2 = pieces.ref
    i0, i1, i2 = pieces.info_ref
    written, canonical = [], []
    for uri, raw in digests:
        digest = base64.b64encode(raw).decode()
        written.append(f"{r0}{uri}{r1}{digest}{r2}")
        canonical.append(f"{i0}{uri}{i1}{digest}{i2}")
    info = pieces.info[0] + "".join(canonical) + pieces.info[1]
    value = base64.b64encode(signer.sign(info.encode())).decode()
    s0, s1, s2, s3 = pieces.sig
    return f"{s0}{signature_id}{s1}{''.join(written)}{s2}{value}{s3}"


def serialize_with(root: etree._Element, container: etree._Element, signature: bytes) -> bytes | None:
    """:func:`pki.xmlsig_parts.serialize` of ``root`` as if ``signature`` (from :func:`lean_signature_xml`)
    were the last child of ``container``; ``None`` (make the tree) where lxml would not write it as is:
    where the XML-DSig namespace is already declared above it (lxml would drop the signature's own
    declaration and use that prefix). The tree is left as it was."""
    if DSIG_NS in container.nsmap.values():
        return None
    # The place is marked with text where the signature would go (after the last child, or inside the
    # empty container): setting a text costs less than making a node, and the text is put back as it was.
    last = container[-1] if len(container) else None
    before = container.text if last is None else last.tail
    marked = (before or "") + _PLACEHOLDER
    try:
        if last is None:
            container.text = marked
        else:
            last.tail = marked
        written = serialize(root)
    finally:
        if last is None:
            container.text = before
        else:
            last.tail = before
    at = written.rfind(_PLACEHOLDER_BYTES)
    if at < 0 or written.find(_PLACEHOLDER_BYTES) != at:  # (the document cannot know the random name)
        return None
    return written[:at] + signature + written[at + len(_PLACEHOLDER_BYTES):]


#: The text that marks the place (drawn per process: no document carries it; letters and digits only, so
#: the serialiser writes it as it is).
_PLACEHOLDER = f"sgw{secrets.token_hex(12)}"
_PLACEHOLDER_BYTES = _PLACEHOLDER.encode()
