"""Where the signatures sit in an envelope, and the parts of it they cover.

Three signatures live in ``/env:Envelope/env:Signatures`` (namespace
``urn:th:gov:saraban:envelope:1``), never around or inside the content:

* **Author signature** (``Id="AuthorSignature"``, the first ``ds:Signature``):
  detached, same-document references to the body (``#Letter`` / ``#Notifier``
  / ``#Receipt``), to every ``Attachment`` by its ``Id`` and, if the author
  chooses, to ``#Header``. XAdES-BES by default (signing time and a digest of
  the signing certificate are signed too). Made by :mod:`pki.sign`, checked by
  :mod:`pki.verify`.
* **Gateway seal** (``Id="GatewaySeal"``): detached references to the header,
  the body, every attachment *and the author's ds:Signature element*, so a
  receiver verifies the path (who forwarded what, with which routing) as well
  as the author, and nobody can swap the author's signature underneath
  (:mod:`pki.seal`).
* **Receipt signature** (``Id="ReceiptSignature"``): a receipt is an ordinary
  envelope whose body is ``env:Receipt`` (schema-valid as is); the gateway
  signs it with an *enveloped* signature (``URI=""`` + the
  enveloped-signature transform), i.e. over the whole envelope
  (:mod:`pki.receipts`).

Every signature uses exclusive c14n (so moving a signature into
``env:Signatures`` or forwarding an element does not change digests), SHA-256
digests and ECDSA or RSA with SHA-256 (SHA-384 for P-384 keys), and carries
the signer's certificate and chain in ``KeyInfo/X509Data``.

This module finds those parts in a parsed tree (:func:`envelope_parts`), indexes
every id-like attribute (:func:`id_index`) and prepares a tree for verification
(:func:`parse_for_verify`); the other signature modules share it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from lxml import etree

from pki.errors import StructureError
from pki.xmlparse import parse

__all__ = ["ENVELOPE_NS", "DSIG_NS", "AUTHOR_SIGNATURE_ID", "SEAL_ID", "RECEIPT_SIGNATURE_ID"]

#: The envelope standard's namespace (the gateway's :mod:`gateway.core.xml` names it too; a test
#: keeps the two equal).
ENVELOPE_NS: Final = "urn:th:gov:saraban:envelope:1"
DSIG_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
XADES_NS: Final = "http://uri.etsi.org/01903/v1.3.2#"

AUTHOR_SIGNATURE_ID: Final = "AuthorSignature"
SEAL_ID: Final = "GatewaySeal"
RECEIPT_SIGNATURE_ID: Final = "ReceiptSignature"

#: Clark-notation prefixes: ``E + "Letter"`` is ``{urn:th:gov:saraban:envelope:1}Letter``.
E: Final = "{%s}" % ENVELOPE_NS
DS: Final = "{%s}" % DSIG_NS
XADES: Final = "{%s}" % XADES_NS

_ID_NAMES = frozenset({"Id", "ID", "id"})
BODY_TAGS: Final = (E + "Letter", E + "Notifier", E + "Receipt")
#: Elements a signature of the standard may cover (wherever one of them is referenced out of
#: place, that is wrapping).
SIGNABLE_TAGS: Final = frozenset(BODY_TAGS + (E + "Attachment", E + "Header"))
_ENVELOPE = E + "Envelope"
_HEADER = E + "Header"
_ATTACHMENTS = E + "Attachments"
_ATTACHMENT = E + "Attachment"
_SIGNATURES = E + "Signatures"


@dataclass
class Parts:
    """The parts of one envelope that signatures cover or live in (elements of one parsed tree)."""

    root: etree._Element
    header: etree._Element | None
    body: etree._Element
    attachments: list[etree._Element]
    signatures: etree._Element | None


def child(parent: etree._Element, tag: str) -> etree._Element | None:
    """``parent.find(tag)`` for a Clark-notation tag, without ElementPath (~3 us a call, dozens a letter).

    The children are read as ``parent[:]``, the very nodes ``list(parent)`` and iteration give (comments and
    processing instructions too, whose ``tag`` is not a string) made into a list in C: ~0.9k instructions,
    where lxml's child iterator costs ~2.6k to set up (callgrind); the same holds in :func:`children` and
    :func:`grandchildren`, and wherever the signature code walks a handful of children.
    """
    for element in parent[:]:
        if element.tag == tag:
            return element
    return None


def children(parent: etree._Element, tag: str) -> list[etree._Element]:
    """``list(parent.iterchildren(tag))`` for a Clark-notation tag, where ``parent`` has a handful of children.

    lxml sets a tag-filtered iterator up by parsing the tag and looking its names up in the document's
    dictionary, ~7k instructions a call, where reading the tag of each of a few children costs ~1k each:
    the signature's parts (SignedInfo, a Reference, KeyInfo, an Object) have one to six. Comments and
    processing instructions never match (their ``tag`` is not a string), as with ``iterchildren``.
    """
    return [element for element in parent[:] if element.tag == tag]


def grandchildren(parent: etree._Element, tag: str, child_tag: str) -> list[etree._Element]:
    """``parent.findall(f"{tag}/{child_tag}")``: every ``child_tag`` child of every ``tag`` child, in order
    (:func:`children` of :func:`children`: few of each here)."""
    return [el for mid in parent[:] if mid.tag == tag for el in mid[:] if el.tag == child_tag]


def envelope_parts(root: etree._Element) -> Parts:
    """The header, the one body, the attachments and ``env:Signatures`` of an envelope, or ``envelope.structure``."""
    if root.tag != _ENVELOPE:
        raise StructureError(f"not a gateway envelope (root element {root.tag})", field="/")
    header = signatures = None
    bodies = []
    attachments: list[etree._Element] = []
    for el in root:  # one pass over the children (a handful); the first Header and Signatures count
        tag = el.tag
        if tag in BODY_TAGS:
            bodies.append(el)
        elif tag == _ATTACHMENTS:
            attachments.extend([att for att in el[:] if att.tag == _ATTACHMENT])  # (``iterchildren(tag)``: ~7k)
        elif tag == _HEADER:
            if header is None:
                header = el
        elif tag == _SIGNATURES and signatures is None:
            signatures = el
    if len(bodies) != 1:
        raise StructureError("an envelope has exactly one Letter, Notifier or Receipt", field="/Envelope")
    body = bodies[0]
    if not body.get("Id"):
        raise StructureError(f"{etree.QName(body).localname} has no Id to sign", field=etree.QName(body).localname)
    for i, att in enumerate(attachments, 1):
        if not att.get("Id"):
            raise StructureError("an Attachment has no Id to sign", field=f"Attachments/Attachment[{i}]")
    return Parts(root, header, body, attachments, signatures)


def signatures_container(parts: Parts) -> etree._Element:
    """``env:Signatures``, created in the place the XSD orders (after Attachments / the body)."""
    if parts.signatures is not None:
        return parts.signatures
    anchor = child(parts.root, _ATTACHMENTS)
    if anchor is None:
        anchor = parts.body
    # made in this document (its namespace is in scope): no element of its own document to move here
    container = etree.SubElement(parts.root, _SIGNATURES)
    if anchor.getnext() is not container:
        anchor.addnext(container)
    # keep the pretty-printing of the input, if any
    container.tail, anchor.tail = anchor.tail, anchor.tail
    parts.signatures = container
    return container


def id_index(root: etree._Element, elements: Iterable[etree._Element] | None = None,
             ) -> dict[str, list[etree._Element]]:
    """Every id-like attribute value in the document -> the elements carrying it.

    Id-like: ``Id``, ``ID``, ``id`` in any namespace (``xml:id`` included), on any element
    (ds:Object included), so an id that occurs twice is seen whatever attribute repeats it.
    (Attribute names, not the attribute mapping: most elements have none, and ``keys()`` makes
    no mapping object; a namespaced name is Clark notation, ``{uri}local``.)
    ``elements``: ``list(root.iter(etree.Element))``, when the caller holds it already.
    """
    index: dict[str, list[etree._Element]] = {}
    for el in root.iter(etree.Element) if elements is None else elements:
        names = el.keys()
        if names:
            for name in names:
                if name in _ID_NAMES or (name[0] == "{" and name.rpartition("}")[2] in _ID_NAMES):
                    index.setdefault(el.get(name), []).append(el)
    return index


def ensure_unique_id(index: dict[str, list[etree._Element]], value: str, element: etree._Element) -> None:
    """Refuse to give ``element`` the id ``value`` when another element already carries it."""
    holders = index.get(value, [])
    if any(h is not element for h in holders):
        raise StructureError(f"Id {value!r} is already used in the envelope", field=f"@Id={value}")


def strip_comments(root: etree._Element) -> None:
    """Remove comments and processing instructions, merging the text around them.

    c14n drops them, so a comment inside a signed text node would otherwise let ``.text``
    read something other than what was signed.
    """
    etree.strip_tags(root, etree.Comment, etree.ProcessingInstruction)


def parse_for_verify(data: bytes) -> etree._Element:
    """Parse untrusted bytes once (:func:`pki.xmlparse.parse`) and strip comments for verification."""
    root = parse(data)
    strip_comments(root)
    return root


def author_signature(parts: Parts) -> tuple[int, etree._Element] | None:
    """(position in ``env:Signatures``, element) of the author's signature: the first that is not the seal."""
    if parts.signatures is None:
        return None
    for i, sig in enumerate(children(parts.signatures, DS + "Signature")):
        if sig.get("Id") != SEAL_ID:
            return i, sig
    return None


def signature_index(parts: Parts, signature: etree._Element) -> int:
    """Position of ``signature`` among the ``ds:Signature`` children of ``env:Signatures``."""
    if parts.signatures is not None:
        for i, sig in enumerate(children(parts.signatures, DS + "Signature")):
            if sig is signature:
                return i
    raise StructureError("signature not found")


def serialize(root: etree._Element) -> bytes:
    """The envelope's bytes: UTF-8 with an XML declaration."""
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def c14n(element: etree._Element) -> bytes:
    """Exclusive canonical form without comments (what every reference of ours digests)."""
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)
