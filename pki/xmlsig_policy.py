"""What a signature may use and what it must cover, checked before any cryptography runs.

Two checks, each raising :class:`pki.errors.SignatureError` with a stable code:

* :func:`check_algorithms` (``signature.algorithm``): exclusive c14n for
  SignedInfo; a signature method and reference digests from the allow-lists
  below (SHA-1 only when the caller allows it, for legacy senders); per
  reference no transform but exclusive c14n (plus the enveloped-signature
  transform for receipts and acks), and no transform carrying content (XPath,
  InclusiveNamespaces ...); the key family matching the method, RSA of at least
  2048 bits, ECDSA on P-256 or P-384.
* :func:`check_references` (``signature.references`` / ``signature.wrapping``),
  against the document: every ``URI`` is a bare ``#id``; every id occurs
  exactly once in the whole document under any id-like attribute (``Id``,
  ``ID``, ``id``, ``xml:id``, any namespace; ds:Object included); the element
  it names sits where the standard puts it (``/Envelope/Letter``,
  ``/Envelope/Attachments/Attachment``, ...); and the set covers exactly the
  required parts (for an author: the body and every attachment, plus,
  optionally, the header; plus the XAdES SignedProperties and KeyInfo inside
  this very signature).

What a reference's digest covers (:func:`reference_octets`). Every reference
the gateway's tools write names its transform (exclusive c14n). A same-document
reference *without* transforms is judged as XML-DSig 1.1 4.4.3.2 / 4.4.3.3 and
XAdES define it: its node-set (the element, comments omitted) becomes octets by
inclusive Canonical XML 1.0, the ancestors' namespace declarations and
``xml:*`` attributes rendered on the element; that is what libxmlsec1, DSS and
other standard signers digest. signxml up to 5.x instead digests its XAdES
SignedProperties and KeyInfo references, which it writes without transforms,
with the SignedInfo c14n (exclusive for us), and so did ``pki.sign`` until it
named every transform: every XAdES author signature and XAdES seal issued
before, and those of agency tools built on signxml, have that form. Letters
are re-verified for years (evidence bundles, ``audit verify --at``), so such a
reference is also accepted when its digest is of the element's exclusive c14n
(``legacy_exclusive``, on by default; off, only the standard form counts, as in
libxmlsec1), and only where signxml wrote it: the SignedProperties and KeyInfo
of the signature itself. Accepting both forms there is safe: each is a fixed
function of the same element, pinned in place by :func:`check_references`,
with no transform or InclusiveNamespaces to choose; they differ only in which
in-scope namespace declarations and inherited ``xml:*`` attributes are written
out, so a digest that matches either one fixes the element's names,
attributes and text as signed. The two forms of those elements always differ
(the envelope's namespace is in scope and never used inside them), so a
signature is one or the other, never ambiguous: a standard one keeps the
standard's protection of its context. A digest of anything else is refused,
and a bare reference to the letter, an attachment or the header counts in the
standard form only. An enveloped reference (receipts, an office's DeliveryAck)
whose only transform is the enveloped-signature one is read the same way by
signxml's own check (``_verify_whole`` in :mod:`pki.xmlsig_signxml`):
inclusive C14N 1.0 of the whole document, signxml's exclusive digest next;
for a whole document the two differ only in namespace declarations nothing
uses.

The certificates a signature carries in ``KeyInfo`` are read here too
(:func:`keyinfo_certs`): whether they are trusted is :class:`pki.trust.TrustStore`'s
verdict, not this module's.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
from collections.abc import Iterable, Iterator, Sequence
from types import MappingProxyType
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)

from pki.errors import SignatureError
from pki.trust import per_certificate
from pki.xmlsig_parts import DS, SIGNABLE_TAGS, XADES, c14n, child, children, grandchildren

EXC_C14N: Final = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
EXC_C14N_URI: Final = EXC_C14N.value
ENVELOPED: Final = SignatureConstructionMethod.enveloped.value
#: Whether a reference without transforms is also accepted with signxml's old exclusive-c14n digest
#: (see the module docstring: every XAdES signature issued before has that form).
LEGACY_EXCLUSIVE: Final = True
_XML_NS = "{http://www.w3.org/XML/1998/namespace}"
#: Where signxml writes a reference without transforms (its XAdES annotator): the legacy digest is
#: accepted there only (:func:`check_references` pins both inside the very signature).
_LEGACY_BARE = frozenset({XADES + "SignedProperties", DS + "KeyInfo"})
_TRANSFORMS = DS + "Transforms"
_TRANSFORM = DS + "Transform"
_SIGNED_INFO = DS + "SignedInfo"
_REFERENCE = DS + "Reference"
_C14N_METHOD = DS + "CanonicalizationMethod"
_SIGNATURE_METHOD = DS + "SignatureMethod"
_DIGEST_METHOD = DS + "DigestMethod"
_XADES_SIGNED_PROPERTIES = "http://uri.etsi.org/01903#SignedProperties"
#: Transform lists a reference may carry: detached (the seal, author signatures) and enveloped (receipts, acks).
_DETACHED_TRANSFORMS = frozenset({(), (EXC_C14N_URI,)})
_ENVELOPED_TRANSFORMS = frozenset({(ENVELOPED,), (ENVELOPED, EXC_C14N_URI)})

STRONG_METHODS: Final = frozenset({
    SignatureMethod.RSA_SHA256, SignatureMethod.RSA_SHA384, SignatureMethod.RSA_SHA512,
    SignatureMethod.ECDSA_SHA256, SignatureMethod.ECDSA_SHA384, SignatureMethod.ECDSA_SHA512,
})
SHA1_METHODS: Final = frozenset({SignatureMethod.RSA_SHA1, SignatureMethod.ECDSA_SHA1})
STRONG_DIGESTS: Final = frozenset({DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512})
_ALLOWED_CURVES = frozenset({"secp256r1", "secp384r1"})
# The same allow-lists keyed by their URIs, so a letter's check is a dictionary look-up.
# (method, key family its name begins with: "ECDSA_" or "RSA_")
_METHODS_STRONG = MappingProxyType({m.value: (m, m.name.split("_")[0] + "_") for m in STRONG_METHODS})
_METHODS_WITH_SHA1 = MappingProxyType({m.value: (m, m.name.split("_")[0] + "_")
                                       for m in STRONG_METHODS | SHA1_METHODS})
_DIGEST_URIS_STRONG = frozenset(d.value for d in STRONG_DIGESTS)
_DIGEST_URIS_WITH_SHA1 = _DIGEST_URIS_STRONG | {DigestAlgorithm.SHA1.value}
_MIN_RSA_BITS = 2048
_MAX_KEYINFO_CERTS = 5


def alg_name(method: SignatureMethod) -> str:
    """``"ecdsa-sha256"``, ``"rsa-sha256"`` ... for reports (an enum's ``name`` is a descriptor call: the
    names are made once)."""
    name = _ALG_NAMES.get(method)
    return name if name is not None else method.name.lower().replace("_", "-")


_ALG_NAMES: Final = MappingProxyType({m: m.name.lower().replace("_", "-") for m in SignatureMethod})


def keyinfo_certs(signature: etree._Element) -> list[x509.Certificate]:
    """The certificates in ``KeyInfo/X509Data`` (the signer's first), at most five."""
    nodes = [n for key_info in children(signature, DS + "KeyInfo")
             for n in grandchildren(key_info, DS + "X509Data", DS + "X509Certificate")]
    if not nodes:
        raise SignatureError("the signature carries no X.509 certificate in KeyInfo", field="Signatures/KeyInfo")
    if len(nodes) > _MAX_KEYINFO_CERTS:
        raise SignatureError("too many certificates in KeyInfo", field="Signatures/KeyInfo")
    try:
        return [_cert_of_text(n.text or "") for n in nodes]
    except (ValueError, binascii.Error) as exc:
        raise SignatureError(f"unreadable certificate in KeyInfo: {exc}", field="Signatures/KeyInfo") from None


@functools.lru_cache(maxsize=4096)
def load_cert_b64(text: str) -> x509.Certificate:
    """Certificates arrive with every letter; the same few thousand are parsed once."""
    return x509.load_der_x509_certificate(base64.b64decode(text, validate=True))


#: Longest ``X509Certificate`` text :func:`_cert_of_text` keeps as a key (an RSA-4096 certificate with its
#: extensions is ~3.5 kB of wrapped base64): longer texts (white space added by a sender, say) are read each
#: time, never held, so the cache holds at most 4,096 x 6 kB of keys however a sender pads its certificates.
_MAX_CACHED_TEXT = 6144


def _cert_of_text(text: str) -> x509.Certificate:
    """:func:`load_cert_b64` of an ``X509Certificate``'s text without its white space.

    A signer's tool wraps its certificate the same way in every letter, so the text as it stands is looked
    up first: the white-space pass (split and join of ~1 kB, ~12k instructions a certificate, two a letter)
    runs once per text. Only texts up to :data:`_MAX_CACHED_TEXT` are kept as keys, so padding cannot make
    the cache hold more than its entries times that.
    """
    if len(text) > _MAX_CACHED_TEXT:
        return load_cert_b64("".join(text.split()))
    return _cert_of_short_text(text)


@functools.lru_cache(maxsize=4096)
def _cert_of_short_text(text: str) -> x509.Certificate:
    return load_cert_b64("".join(text.split()))


def check_algorithms(signature: etree._Element, cert: x509.Certificate, *, allow_sha1: bool,
                     enveloped: bool = False) -> SignatureMethod:
    """Allow-list the algorithms before any cryptography runs (``signature.algorithm``).

    One pass over SignedInfo's children and each Reference's (tens of elements a letter); the key's
    family, size and curve are read once per certificate (:func:`_key_facts`).
    """
    signed_info = child(signature, _SIGNED_INFO)
    if signed_info is None:
        raise SignatureError("the signature has no SignedInfo", field="Signatures/SignedInfo")
    c14n_el = sm_el = None
    refs = []
    for el in signed_info[:]:  # the first of each method element counts, as ``child`` finds it
        tag = el.tag
        if tag == _REFERENCE:
            refs.append(el)
        elif tag == _C14N_METHOD:
            if c14n_el is None:
                c14n_el = el
        elif tag == _SIGNATURE_METHOD and sm_el is None:
            sm_el = el
    if c14n_el is None or c14n_el.get("Algorithm") != EXC_C14N_URI:
        raise SignatureError("SignedInfo must use exclusive c14n without comments", code="signature.algorithm",
                             field="Signatures/SignedInfo/CanonicalizationMethod")
    uri = sm_el.get("Algorithm") if sm_el is not None else None
    allowed = (_METHODS_WITH_SHA1 if allow_sha1 else _METHODS_STRONG).get(uri or "")
    if allowed is None:
        raise SignatureError(f"signature method {uri} is not allowed", code="signature.algorithm",
                             field="Signatures/SignatureMethod")
    method, method_family = allowed
    digests = _DIGEST_URIS_WITH_SHA1 if allow_sha1 else _DIGEST_URIS_STRONG
    allowed_transforms = _ENVELOPED_TRANSFORMS if enveloped else _DETACHED_TRANSFORMS
    for ref in refs:
        dm = None
        transform_els: list[etree._Element] = []
        for el in ref[:]:
            tag = el.tag
            if tag == _DIGEST_METHOD:
                if dm is None:
                    dm = el
            elif tag == _TRANSFORMS:  # every Transform of every Transforms (``grandchildren``)
                transform_els += children(el, _TRANSFORM)
        if dm is None or dm.get("Algorithm") not in digests:
            raise SignatureError(f"digest method of {ref.get('URI')} is not allowed", code="signature.algorithm",
                                 field="Signatures/Reference/DigestMethod")
        # no Transform may carry content (XPath, InclusiveNamespaces ...): any child at all. One loop, where
        # a tuple(...) and an any(...) of generators cost ~4k instructions each a reference
        carries = False
        algorithms: list[str | None] = []
        for t in transform_els:
            carries = carries or len(t) > 0
            algorithms.append(t.get("Algorithm"))
        if carries or tuple(algorithms) not in allowed_transforms:
            raise SignatureError(f"transforms of {ref.get('URI')} are not allowed", code="signature.algorithm",
                                 field="Signatures/Reference/Transforms")
    family, rsa_bits, curve = _key_facts(cert)
    if family != method_family:
        raise SignatureError("the signature method does not match the certificate's key",
                             code="signature.algorithm", field="Signatures/SignatureMethod")
    if family == "RSA_" and rsa_bits < _MIN_RSA_BITS:
        raise SignatureError(f"RSA keys need at least {_MIN_RSA_BITS} bits, this one has {rsa_bits}",
                             code="signature.algorithm", field="Signatures/KeyInfo")
    if family == "ECDSA_" and curve not in _ALLOWED_CURVES:
        raise SignatureError(f"curve {curve} is not allowed (P-256, P-384)", code="signature.algorithm",
                             field="Signatures/KeyInfo")
    return method


@per_certificate()
def _key_facts(cert: x509.Certificate) -> tuple[str, int, str]:
    """(``"ECDSA_"``, ``"RSA_"`` or ``""``, RSA key size, curve name) of the certificate's key."""
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ECDSA_", 0, key.curve.name
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA_", key.key_size, ""
    return "", 0, ""


def check_references(signature: etree._Element, index: dict[str, list[etree._Element]], *,
                     required: Sequence[etree._Element], optional: Sequence[etree._Element] = (),
                     ) -> tuple[list[str], dict[str, etree._Element]]:
    """Pin the reference set and the place of every referenced element (see the module docstring).

    Returns the URIs in SignedInfo order and ``URI -> element`` for each.
    """
    signed_info = child(signature, DS + "SignedInfo")
    refs = children(signed_info, DS + "Reference") if signed_info is not None else []
    uris = [r.get("URI") for r in refs]
    if not uris:
        raise SignatureError("the signature has no references", code="signature.references",
                             field="Signatures/SignedInfo")
    if len(set(uris)) != len(uris):
        raise SignatureError("a part is referenced twice", code="signature.references",
                             field="Signatures/SignedInfo")
    xades_parts: list[etree._Element] = []
    key_info = child(signature, DS + "KeyInfo")
    if key_info is not None:
        xades_parts.append(key_info)
    xades_parts += [props for qp in grandchildren(signature, DS + "Object", XADES + "QualifyingProperties")
                    for props in children(qp, XADES + "SignedProperties")]
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
            if target.tag in SIGNABLE_TAGS:
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


def inclusive_c14n(element: etree._Element) -> bytes:
    """Inclusive Canonical XML 1.0 (comments omitted) of the node-set of ``element`` in its document.

    lxml renders the in-scope namespace declarations on the element; C14N 1.0
    (2.4, "document subsets") also gives the apex the ``xml:*`` attributes it
    inherits from its ancestors (the nearest holds), which lxml does not. In
    that (rare) case the tree is left alone and a stand-in apex is built: the
    element's name, every namespace in scope (a copy alone would keep only
    those used below it), its attributes plus the inherited ones, and copies
    of its content.
    """
    inherited: dict[str, str] = {}
    for ancestor in element.iterancestors():
        for name, value in ancestor.attrib.items():
            if name.startswith(_XML_NS) and name not in inherited and name not in element.attrib:
                inherited[name] = value
    if inherited:
        apex = etree.Element(element.tag, attrib={**inherited, **element.attrib}, nsmap=element.nsmap)
        apex.text = element.text
        apex.extend(copy.deepcopy(c) for c in element)
        element = apex
    return etree.tostring(element, method="c14n", exclusive=False, with_comments=False)


def reference_octets(reference: etree._Element, element: etree._Element, *,
                     legacy_exclusive: bool = LEGACY_EXCLUSIVE) -> Iterable[bytes]:
    """The octets a detached reference's ``DigestValue`` may be the digest of (see the module docstring),
    computed one at a time as the caller asks for the next.

    Where both forms count (a bare SignedProperties or KeyInfo, ``legacy_exclusive``) the legacy one
    comes first: it is what today's XAdES letters carry, and cheaper; the two always differ there, so
    the order changes the cost, never the verdict.

    ``reference`` must have passed :func:`check_algorithms`: its transforms are exclusive c14n or none.
    """
    transforms = reference[0] if len(reference) and reference[0].tag == _TRANSFORMS else None
    if transforms is None:
        return _bare_forms(element, legacy_exclusive and element.tag in _LEGACY_BARE)
    if (len(transforms) == 1 and transforms[0].get("Algorithm") == EXC_C14N_URI) or \
            tuple(t.get("Algorithm") for t in transforms.iterchildren(DS + "Transform")) == (EXC_C14N_URI,):
        return (c14n(element),)
    raise SignatureError(f"transforms of {reference.get('URI')} are not allowed", code="signature.algorithm",
                         field="Signatures/Reference/Transforms")


def _bare_forms(element: etree._Element, legacy: bool) -> Iterator[bytes]:
    if legacy:
        yield c14n(element)
    yield inclusive_c14n(element)
