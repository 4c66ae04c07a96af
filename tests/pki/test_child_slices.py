"""Children read as ``el[:]`` are the nodes lxml's child iterators give, and one DOCTYPE scan answers as two did.

The signature checks (:mod:`pki.xmlsig_parts`, :mod:`pki.xmlsig_policy`, :mod:`pki.xmlsig_inplace`), the zone
check (:mod:`pki.sigzone`) and intake's helpers (:mod:`gateway.intake.checks`) read an element's children as
``el[:]`` (a list made in C) and compare tags, where they iterated or set a tag-filtered iterator up
(``iterchildren(tag)``, ``iterchildren(etree.Element)``): the same nodes in the same order, so every decision
is the one the old reading made. Held here on generated trees (elements of the signature's names, of other
namespaces and of none, comments, processing instructions, text and tails, at any place), against the old
readings written out, and on signed letters with decoys beside every element's children.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from samples import envelope

from gateway.intake import checks
from pki import xmlparse
from pki.errors import XmlError
from pki.sign import sign_envelope
from pki.xmlsig_parts import DS, XADES, E, child, children, grandchildren

TAGS = (DS + "Signature", DS + "SignedInfo", DS + "Reference", DS + "Transforms", DS + "Transform", DS + "KeyInfo",
        DS + "Object", XADES + "QualifyingProperties", XADES + "SignedProperties", E + "Header", E + "Sender",
        E + "MessageId", E + "Attachments", E + "Attachment", E + "Size", E + "ContentRef", "Reference",
        "{urn:example:other}Object")


def _old_child(parent: etree._Element, tag: str) -> etree._Element | None:  # the iterator reading, as it was
    for el in parent.iterchildren(tag):
        return el
    return None


def _old_header_text(root: etree._Element, tag: str) -> str | None:
    for header in root.iterchildren(checks._HEADER):
        for el in header.iterchildren(tag):
            return el.text or ""
    return None


def _old_attachment_items(root: etree._Element) -> list[etree._Element]:
    for container in root.iterchildren(checks._ATTACHMENTS):
        return list(container.iterchildren(checks._ATTACHMENT))
    return []


def _same(a: list[etree._Element], b: list[etree._Element]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def _assert_readings_agree(root: etree._Element) -> int:
    """Every reading of every parent in ``root``, old against new; the number of non-empty picks."""
    held = list(root.iter())  # proxies alive: ``is`` compares the nodes
    picked = 0
    for parent in held:
        if not isinstance(parent.tag, str):
            continue
        assert _same(parent[:], list(parent))
        assert _same([k for k in parent[:] if isinstance(k.tag, str)], list(parent.iterchildren(etree.Element)))
        for tag in TAGS:
            assert child(parent, tag) is _old_child(parent, tag)
            assert checks._child(parent, tag) is _old_child(parent, tag)
            assert _same(children(parent, tag), list(parent.iterchildren(tag)))
            assert _same([k for k in parent[:] if k.tag == tag], list(parent.iterchildren(tag)))
            for child_tag in (DS + "Reference", DS + "Transform", E + "Attachment", E + "Sender"):
                expected = [el for mid in parent.iterchildren(tag) for el in mid.iterchildren(child_tag)]
                assert _same(grandchildren(parent, tag, child_tag), expected)
                picked += bool(expected)
        for tag in (checks._SENDER, checks._MESSAGE_ID):
            assert checks._header_text(parent, tag) == _old_header_text(parent, tag)
        assert _same(checks._attachment_items(parent), _old_attachment_items(parent))
    return picked


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> etree._Element:
    root = etree.Element(draw(st.sampled_from(TAGS)))
    root.text = draw(st.sampled_from([None, "", " \n", "t"]))
    for _ in range(draw(st.integers(0, 5 if depth < 3 else 0))):
        kind = draw(st.sampled_from(["element", "element", "subtree", "comment", "pi"]))
        if kind == "subtree":
            node = draw(trees(depth + 1))
        elif kind == "comment":
            node = etree.Comment(draw(st.sampled_from(["c", ""])))
        elif kind == "pi":
            node = etree.PI("p", "x")
        else:
            node = etree.Element(draw(st.sampled_from(TAGS)))
            node.text = draw(st.sampled_from([None, "x", " "]))
        node.tail = draw(st.sampled_from([None, "", " ", "tail"]))
        root.append(node)
    return root


@settings(max_examples=150, deadline=None)
@given(root=trees())
def test_slices_read_what_iterators_read_on_generated_trees(root: etree._Element) -> None:
    _assert_readings_agree(root)
    # and once more after a round trip through bytes (the nodes a parse makes, not those built in Python)
    _assert_readings_agree(etree.fromstring(etree.tostring(root)))


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attachments=st.integers(0, 3), xades=st.booleans())
def test_slices_read_what_iterators_read_on_signed_letters(signer1, attachments: int, xades: bool) -> None:
    root = etree.fromstring(sign_envelope(envelope(attachments=attachments), signer1, xades=xades))
    for i, el in enumerate(list(root.iter(etree.Element))):  # decoys beside every element's children
        el.insert(i % (len(el) + 1), etree.Comment("c"))
        el.append(etree.PI("p", "x"))
        etree.SubElement(el, "Reference")
        etree.SubElement(el, "{urn:example:other}Object")
    assert _assert_readings_agree(root) >= 3


def _doc_with_doctype_text_at(offset: int) -> bytes:
    """A document whose bytes hold ``<!DOCTYPE`` at ``offset``, inside a comment (so only the byte scan sees it)."""
    head = b"<a><!--"
    return head + b"x" * (offset - len(head)) + b"<!DOCTYPE-->" + b"</a>"


@settings(max_examples=60, deadline=None)
@given(offset=st.one_of(st.integers(7, 5000), st.integers(4070, 4100)))
def test_one_doctype_scan_refuses_what_the_first_4_kb_check_refused(offset: int) -> None:
    data = _doc_with_doctype_text_at(offset)
    assert data.find(b"<!DOCTYPE") == offset
    old_refuses = b"<!DOCTYPE" in data[:4096]
    try:
        xmlparse.parse(data)
    except XmlError as exc:
        assert old_refuses and exc.code == "envelope.dtd_forbidden"
    else:
        assert not old_refuses
    # _fast, told by parse whether the bytes hold one, answers as when it looked itself
    assert (xmlparse._fast(data, doctype=True) is None) and (xmlparse._fast(data) is None)


@pytest.mark.parametrize("data", [b"<a/>", b"<a><b c='1'/></a>", b"<a><!-- <!DOCTYP --></a>"])
def test_fast_told_no_doctype_answers_as_when_it_looked(data: bytes) -> None:
    told, looked = xmlparse._fast(data, doctype=False), xmlparse._fast(data)
    assert (told is None) == (looked is None)
    assert told is None or etree.tostring(told) == etree.tostring(looked)
