""":func:`pki.xmlsig_parts.children` and ``grandchildren`` pick what lxml's tag-filtered iterators pick.

They replaced ``iterchildren(tag)`` in the signature checks (a plain loop over a handful of children costs
less than setting a tag matcher up); every parent of a signed letter's tree, with comments, processing
instructions and elements of other namespaces or none mixed in, gives the same elements in the same order.
"""

from __future__ import annotations

from lxml import etree
from samples import envelope

from pki.sign import sign_envelope
from pki.xmlsig_parts import DS, XADES, E, children, grandchildren

TAGS = (DS + "Signature", DS + "SignedInfo", DS + "Reference", DS + "Transform", DS + "KeyInfo", DS + "Object",
        DS + "X509Data", XADES + "QualifyingProperties", XADES + "SignedProperties", XADES + "Cert",
        E + "Attachment", "Reference", "{urn:example:other}Reference")


def test_children_and_grandchildren_match_lxml(signer1):
    root = etree.fromstring(sign_envelope(envelope(attachments=2), signer1, xades=True))
    for i, el in enumerate(list(root.iter(etree.Element))):  # decoys beside every element's children
        el.insert(i % (len(el) + 1), etree.Comment("c"))
        el.append(etree.PI("p", "x"))
        etree.SubElement(el, "Reference")
        etree.SubElement(el, "{urn:example:other}Reference")
    checked = 0
    for parent in root.iter(etree.Element):
        for tag in TAGS:
            assert children(parent, tag) == list(parent.iterchildren(tag))
            for child_tag in TAGS:
                expected = [el for mid in parent.iterchildren(tag) for el in mid.iterchildren(child_tag)]
                assert grandchildren(parent, tag, child_tag) == expected
                checked += bool(expected)
    assert checked >= 10
