"""The envelope reader's child index finds what ElementPath finds (first of a name, all of a name),
whatever else sits among the children: duplicates, other namespaces, comments, processing instructions."""

from lxml import etree

from gateway.core import envelope_reader
from gateway.core.xml import ENVELOPE_NS
from tests.support import letter_bytes

NS = f"{{{ENVELOPE_NS}}}"


def _header_variants() -> list[etree._Element]:
    out = []
    for build in range(4):
        root = etree.fromstring(letter_bytes(recipients=("1550100000", "1550200000")))
        header = root.find(NS + "Header")
        if build == 1:  # a second Sender, a Sender in another namespace first, a comment and a PI first
            header.insert(0, etree.Comment("Sender"))
            header.insert(0, etree.ProcessingInstruction("Sender"))
            header.insert(0, etree.Element("{urn:other}Sender"))
            extra = etree.SubElement(header, NS + "Sender")
            extra.text = "second"
        if build == 2:  # a Sender with no namespace at all, and an empty one
            header.insert(0, etree.Element("Sender"))
            header.find(NS + "MessageId").text = None
        if build == 3:  # recipients of both kinds, interleaved and repeated
            rec = header.find(NS + "Recipients")
            for tag, text in (("RecipientList", "a"), ("Recipient", "1550100000"), ("RecipientList", "b"),
                              ("RecipientList", "a")):
                etree.SubElement(rec, NS + tag).text = text
        out.append(root)
    return out


def test_the_index_finds_the_first_child_of_each_name_as_find_does():
    for root in _header_variants():
        for el in root.iter(NS + "*"):
            kids = envelope_reader._Kids(el)
            names = {etree.QName(c).localname for c in el if isinstance(c.tag, str)} | {"Nothing"}
            for name in names:
                assert kids.get(name) is el.find(NS + name), name
                assert kids.all(name) == el.findall(NS + name), name


def test_recipients_of_both_kinds_are_read_in_order_without_repeats():
    header = envelope_reader.read_header(_header_variants()[3])
    assert header.recipients == ("1550100000", "1550200000")
    assert header.recipient_lists == ("a", "b")
