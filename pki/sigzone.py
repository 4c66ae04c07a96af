"""What ``env:Signatures`` may hold: signatures, validated, and nothing they do not sign.

Everything in ``env:Signatures`` travels to every receiver under the gateway's seal, yet
only the author's signature is verified, and only for what its references cover. The
envelope XSD validates each ``ds:Signature`` against the W3C XML-DSig and ETSI XAdES
schemas (stored in ``schemas/``, never fetched), but those schemas leave places open on
purpose: wildcards (``xs:any``, ``lax`` or ``##other``) in ``ds:Object``, ``KeyInfo``,
``X509Data``, ``Transform``, the method elements and XAdES ``AnyType``; mixed content in
the same elements. Left open, a second signature can carry a forged unsigned Letter that
a careless XPath on the receiving side reads, and a ``ds:Object`` an ``xi:include`` of
``/etc/passwd`` that a receiving tool expands. :func:`check_signature_zone` closes them:

1. **Roles.** Every child of ``env:Signatures`` is a ``ds:Signature``: at most one
   besides the gateway's seal (``Id="GatewaySeal"``), the seal last, and no seal at all
   where the caller says none may be yet (a submitted envelope: ``signature.sealed``).
   A second author-side signature would travel unverified.
2. **Names.** Every element is one the stored XML-DSig (1.0, 1.1) and XAdES (1.3.2, 1.4.1)
   schemas declare (:func:`schema_facts`): what their wildcards admit from other namespaces
   (``xi:include``, an ``env:Letter``, XSLT) or undeclared names in theirs is refused,
   and so is ``ds:RetrievalMethod`` (a URI a verifier would fetch). Where a content model
   has a lax wildcard, a child is one it names or one declared at the top level: libxml2
   validates exactly those, so nothing in the zone escapes the schemas.
3. **Attributes.** None in a namespace (``xml:base``, ``xlink:href`` ...).
4. **Text.** None beside child elements, and none in the elements whose content the
   schemas leave mixed only to hold their wildcards (method elements, ``Transform``,
   ``KeyInfo``, ``KeyValue``, ``Object``, ``SignatureProperty``).
5. **Objects.** Every ``ds:Object`` is referenced by its own signature: a ``Reference``
   ``URI="#id"`` naming the Object, or every element the Object holds is or contains an
   element so named (XAdES: the ``QualifyingProperties`` whose ``SignedProperties`` the
   signature references). Nothing unsigned hides beside what is signed.
6. **URIs.** Every ``URI`` a verifier dereferences (``ds:Reference``, ``dsig11:KeyInfoReference``,
   ``xades:Include`` ...) is same-document: ``""`` or ``"#id"``, never a network or file
   address nor an XPointer.

Whether a signature's references cover the right parts, its algorithms and its
cryptography are :mod:`pki.xmlsig_policy`'s and signxml's concern; this check is
structural, costs one walk over the zone (tens of elements), and runs wherever an
envelope is read: the gateway's intake (before the signature check, signed or not,
required or not) and every verification (:func:`pki.verify.validate_author`, which
:func:`pki.seal.verify_sealed` uses, so receivers apply it too). Once per submitted letter: the
gateway's verifier is handed the tree intake has just checked (``zone_checked``).

Refusals are :class:`pki.errors.SignatureError` with code ``signature.structure`` (or
``signature.sealed``) and a field naming the place, ``Signatures/Signature[2]/Object[1]``:
every step below ``Signatures`` carries its position among same-named siblings.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Mapping
from typing import Final, NamedTuple, NoReturn

from lxml import etree

from pki.errors import SignatureError
from pki.xmlparse import make_parser
from pki.xmlsig_parts import DS, SEAL_ID, XADES, E, child

__all__ = ["SchemaFacts", "check_signature_zone", "declared_tags", "schema_facts"]

#: The stored schemas whose declarations :func:`declared_tags` allows (package ``schemas``).
SIGNATURE_SCHEMAS: Final = ("xmldsig-core-schema.xsd", "xmldsig11-schema.xsd", "XAdES01903v132-201601.xsd",
                             "XAdES01903v141-201601.xsd")
_XS = "{http://www.w3.org/2001/XMLSchema}"
_DS11 = "{http://www.w3.org/2009/xmldsig11#}"
_XADES141 = "{http://uri.etsi.org/01903/v1.4.1#}"
#: Elements whose ``URI`` a verifier dereferences (others, such as dsig11:NamedCurve's, only name things).
_DEREFERENCED: Final = frozenset({DS + "Reference", _DS11 + "KeyInfoReference", XADES + "Include",
                                  XADES + "ReferenceInfo", _XADES141 + "TimeStampValidationData"})
#: Declared, but naming a URI that a verifier dereferences.
_REFUSED: Final = frozenset({DS + "RetrievalMethod"})
#: Mixed in the XML-DSig schema only so that their wildcards may sit there: no text of their own.
_NO_TEXT: Final = frozenset(DS + n for n in ("CanonicalizationMethod", "SignatureMethod", "DigestMethod",
                                             "Transform", "KeyInfo", "KeyValue", "Object", "SignatureProperty"))
_WS: Final = " \t\r\n"
_OBJECT: Final = DS + "Object"
_SIGNED_INFO: Final = DS + "SignedInfo"
_REFERENCE: Final = DS + "Reference"
#: Characters of an element name a field repeats (a hostile name may be very long).
_MAX_NAME: Final = 100


class SchemaFacts(NamedTuple):
    """What the stored signature schemas declare, read once (:func:`schema_facts`)."""

    #: Every element name (Clark notation) declared at any level.
    declared: frozenset[str]
    #: The names declared at the top level: what a lax wildcard validates.
    top_level: frozenset[str]
    #: Elements whose content model has a lax (or skip) wildcard -> the children it names explicitly.
    #: Any other child there is not validated by libxml2 unless it is declared at the top level.
    wildcard_parents: Mapping[str, frozenset[str]]


@functools.cache
def schema_facts() -> SchemaFacts:
    """Read the stored XML-DSig and XAdES schemas (``schemas/``) with the hardened parser, once."""
    docs = [etree.fromstring(importlib.resources.files("schemas").joinpath(name).read_bytes(), parser=make_parser())
            for name in SIGNATURE_SCHEMAS]
    types: dict[str, etree._Element] = {}
    for doc in docs:
        types.update((f"{{{doc.get('targetNamespace')}}}{ct.get('name')}", ct)
                     for ct in doc.iterchildren(_XS + "complexType"))
    declared: set[str] = set()
    top_level: set[str] = set()
    parents: dict[str, set[str]] = {}
    for doc in docs:
        namespace = doc.get("targetNamespace") or ""
        for el in doc.iter(_XS + "element"):
            if not el.get("name"):
                continue
            tag = f"{{{namespace}}}{el.get('name')}"
            declared.add(tag)
            if el.getparent() is doc:
                top_level.add(tag)
            content = el.find(_XS + "complexType")  # inline, or a named type (simple types are not here)
            if content is None and el.get("type"):
                content = types.get(_clark(el, el.get("type") or ""))
            children, lax = _content_model(content, namespace, types) if content is not None else (set(), False)
            if lax:
                parents.setdefault(tag, set()).update(children)
    return SchemaFacts(frozenset(declared), frozenset(top_level),
                       {tag: frozenset(kids) for tag, kids in parents.items()})


def _content_model(content: etree._Element, namespace: str, types: Mapping[str, etree._Element],
                   ) -> tuple[set[str], bool]:
    """(the child element names ``content`` names, whether it has a lax or skip wildcard), following
    ``xs:extension`` bases (a restriction restates its content)."""
    children: set[str] = set()
    lax = False
    stack = list(content)
    while stack:
        node = stack.pop()
        if node.tag == _XS + "element":  # a particle: named here, its own content is its own
            ref = node.get("ref")
            children.add(_clark(node, ref) if ref else f"{{{namespace}}}{node.get('name')}")
            continue
        if node.tag == _XS + "any" and node.get("processContents") in ("lax", "skip"):
            lax = True
        if node.tag == _XS + "extension" and (base := types.get(_clark(node, node.get("base") or ""))) is not None:
            base_children, base_lax = _content_model(base, base.getroottree().getroot().get("targetNamespace") or "",
                                                      types)
            children |= base_children
            lax = lax or base_lax
        stack.extend(node)
    return children, lax


def _clark(node: etree._Element, qname: str) -> str:
    """``ds:SignatureType`` (prefixes as declared where it is written) -> ``{namespace}SignatureType``."""
    prefix, _, local = qname.rpartition(":")
    return f"{{{node.nsmap.get(prefix or None)}}}{local}"


@functools.cache
def _accepted() -> frozenset[str]:
    return schema_facts().declared - _REFUSED


def declared_tags() -> frozenset[str]:
    """Every element name (Clark notation) the stored XML-DSig and XAdES schemas declare, at any level."""
    return schema_facts().declared


def check_signature_zone(root: etree._Element, *, seal: bool = True) -> None:
    """Refuse anything in ``root``'s ``env:Signatures`` but validated signatures (see the module docstring).

    ``seal``: whether the gateway's seal may be present (receivers: yes; a submitted
    envelope: no, the gateway seals after intake). Raises :class:`SignatureError`
    (``signature.structure`` or ``signature.sealed``) naming the place.
    """
    zone = child(root, E + "Signatures")
    if zone is None:
        return
    for signature in zone.iter(DS + "Signature"):  # nested ones (counter-signatures) too
        _check_objects(zone, signature)
    accepted, top_level, wildcard_parents = _accepted(), schema_facts().top_level, schema_facts().wildcard_parents
    # One pass over every element of the zone (tens a letter): what each step reads is what it needs,
    # and no leaf's text is read (a certificate's base64 would be copied for nothing).
    for el in zone.iterdescendants(etree.Element):
        tag = el.tag
        if tag not in accepted:  # declared by the signature schemas (their namespaces only), not refused
            _refuse(zone, el, "is not an element of a signature this gateway accepts")
        named = wildcard_parents.get(tag)
        if named is not None:  # where the schemas admit anything, admit only what they then validate
            for kid in el[:]:  # (``iterchildren(etree.Element)``, whose set-up costs ~3x the list: strings only)
                kid_tag = kid.tag
                if isinstance(kid_tag, str) and kid_tag not in named and kid_tag not in top_level:
                    _refuse(zone, kid, "is declared only inside another element: the schemas would not "
                            "validate it here")
        for attr in el.keys():
            if attr[0] == "{":
                _refuse(zone, el, f"carries the attribute {attr[:120]}: no attribute in a namespace is accepted")
            if attr == "URI" and tag in _DEREFERENCED and (value := el.get(attr)) and (value[0] != "#" or "(" in value):
                _refuse(zone, el, f"names {value[:80]!r}: only same-document references (\"\" or \"#id\")")
        if len(el) or tag in _NO_TEXT:
            text = el.text
            if text and text.strip(_WS):
                _refuse(zone, el, "carries text where the signature schemas expect elements only")
        tail = el.tail
        if tail and tail.strip(_WS):
            parent = el.getparent()
            _refuse(zone, parent if parent is not None else el,
                    "carries text where the signature schemas expect elements only")
    _check_roles(zone, seal=seal)


def _check_roles(zone: etree._Element, *, seal: bool) -> None:
    if zone.text and zone.text.strip(_WS):
        _refuse(zone, zone, "carries text; it holds ds:Signature elements only")
    signatures = 0
    sealed = False
    for el in zone[:]:
        if not isinstance(el.tag, str):  # ``iterchildren(etree.Element)``: elements only
            continue
        if el.tag != DS + "Signature":
            _refuse(zone, el, "is not a ds:Signature; Signatures holds signatures only")
        if sealed:
            _refuse(zone, el, "follows the gateway's seal, which comes last")
        if el.get("Id") == SEAL_ID:
            if not seal:
                raise SignatureError("a submitted envelope cannot carry the gateway's seal: the gateway seals "
                                     "what it forwards", code="signature.sealed", field=_path(zone, el))
            sealed = True
            continue
        signatures += 1
        if signatures > 1:
            _refuse(zone, el, "is a second signature besides the seal; only one author signature is verified, "
                    "another would travel unverified")


def _check_objects(zone: etree._Element, signature: etree._Element) -> None:
    """Every ds:Object of ``signature`` is, or holds nothing but what is, referenced by ``signature``.

    (An Object elsewhere is refused by the roles, directly in Signatures, or is content of an
    Object that this rule covers.)"""
    referenced: set[str] | None = None
    # The children as ``el[:]`` (a list made in C) and their tags compared, not tag-filtered iterators
    # (``iterchildren(tag)`` costs ~7k instructions to set up, three or more a signature): the same elements
    # in the same order (a comment's or processing instruction's ``tag`` is not a string).
    kids = signature[:]
    for obj in kids:
        if obj.tag != _OBJECT:
            continue
        if referenced is None:
            referenced = {uri[1:] for info in kids if info.tag == _SIGNED_INFO
                          for ref in info[:] if ref.tag == _REFERENCE and (uri := ref.get("URI")) and uri[0] == "#"}
        if _referenced(obj, referenced):
            continue
        covered = False
        for held in obj[:]:
            if not isinstance(held.tag, str):  # ``iterchildren(etree.Element)``: elements only
                continue
            covered = _referenced(held, referenced)
            if not covered:
                for inner in held.iterdescendants(etree.Element):
                    if _referenced(inner, referenced):
                        covered = True
                        break
            if not covered:
                break
        if not covered:  # also when it holds nothing at all
            _refuse(zone, obj, "is not referenced by its signature: nothing unsigned may travel in a signature")


def _referenced(el: etree._Element, referenced: set[str]) -> bool:
    """Whether an id-like attribute of ``el`` (``Id``, ``ID``, ``id``) is one of ``referenced``."""
    get = el.get
    return get("Id") in referenced or get("ID") in referenced or get("id") in referenced


def _refuse(zone: etree._Element, el: etree._Element, why: str) -> NoReturn:
    where = _path(zone, el)
    raise SignatureError(f"{where} {why}", code="signature.structure", field=where)


def _path(zone: etree._Element, el: etree._Element) -> str:
    """``Signatures/Signature[2]/Object[1]``: every step below the zone with its position among its
    same-named siblings."""
    steps = []
    node: etree._Element | None = el
    while node is not None and node is not zone:
        parent = node.getparent()
        position = 1 + sum(1 for _ in node.itersiblings(node.tag, preceding=True))
        steps.append(f"{etree.QName(node).localname[:_MAX_NAME]}[{position}]")
        node = parent
    return "/".join(["Signatures", *reversed(steps)])
