"""The one-call parse of small documents: cleared by checks libxml2 and the bytes answer in C, or
handed to the pull parser, which names the limit. Never a tree over a limit, never another tree."""

from __future__ import annotations

import pytest
from lxml import etree
from test_pki_xmlparse_hostile import _with_body

from pki import xmlparse
from pki.errors import XmlError
from pki.sign import sign_envelope
from tests.support import letter_bytes

M = xmlparse.MAX_NAME

OVER_A_LIMIT = [
    _with_body(b"<x " + b" ".join(b'a%d="x"' % i for i in range(xmlparse.MAX_ATTRIBUTES + 1)) + b"/>"),
    _with_body(b"<x " + b" ".join(b'xmlns:p%d="urn:x"' % i for i in range(xmlparse.MAX_ATTRIBUTES + 1)) + b"/>"),
    # attributes and declarations on one element, together just over; each alone within
    _with_body(b"<x " + b" ".join(b'xmlns:p%d="urn:x"' % i for i in range(40)) + b" "
               + b" ".join(b'a%d="x"' % i for i in range(xmlparse.MAX_ATTRIBUTES - 39)) + b"/>"),
    _with_body(b'<x ' + b"a" * (M + 1) + b'="1"/>'),
    _with_body(b'<x p:' + b"a" * (M + 1) + b'="1" xmlns:p="urn:p"/>'),
    _with_body(b"<" + b"n" * (M + 1) + b"/>"),
    _with_body(b"<p:" + b"n" * (M + 1) + b' xmlns:p="urn:p"/>'),
    _with_body(b"<p" + b"p" * M + b':x xmlns:p' + b"p" * M + b'="urn:x"/>'),
    _with_body(b'<x xmlns="urn:' + b"u" * xmlparse.MAX_NAMESPACE_URI + b'"/>'),
    _with_body(b"<x xmlns = 'urn:" + b"u" * xmlparse.MAX_NAMESPACE_URI + b"'/>"),
    _with_body(b"<x>" * (xmlparse.MAX_DEPTH + 1) + b"</x>" * (xmlparse.MAX_DEPTH + 1)),
    b"<a>" * (xmlparse.MAX_DEPTH + 1) + b"</a>" * (xmlparse.MAX_DEPTH + 1),
]


def _large(data: bytes) -> bytes:
    """``data`` padded past the size whose limits the bytes answer (``_SMALL``): the tree's XPath answers."""
    pad = b"y" * xmlparse._SMALL
    out = data.replace(b"<Speed>", b"<pad>" + pad + b"</pad><Speed>", 1) if b"<Speed>" in data \
        else data.replace(b"</a>", pad + b"</a>", 1)
    assert len(out) > xmlparse._SMALL
    return out


@pytest.mark.parametrize("size", ["small", "large"])
@pytest.mark.parametrize("data", OVER_A_LIMIT)
def test_a_document_over_a_limit_is_never_cleared_by_the_quick_checks(data, size):
    data = data if size == "small" else _large(data)
    assert (len(data) <= xmlparse._SMALL) == (size == "small")
    assert len(data) <= xmlparse.FAST_MAX
    assert xmlparse._fast(data) is None
    with pytest.raises(XmlError) as exc:
        xmlparse.parse(data)
    assert exc.value.code == "envelope.too_complex"


@pytest.mark.parametrize("data", [
    letter_bytes(),
    # within every limit, and more than the quick checks clear at a glance: 70 '=' in all
    _with_body(b"<x " + b" ".join(b'a%d="x"' % i for i in range(xmlparse.MAX_ATTRIBUTES - 2)) + b"/>"),
    _with_body(b"<x>" * (xmlparse.MAX_DEPTH - 4) + b"</x>" * (xmlparse.MAX_DEPTH - 4)),
    _with_body(b"<" + b"n" * M + b"/>"),
])
@pytest.mark.parametrize("size", ["small", "large"])
def test_a_document_within_the_limits_is_read_in_one_call_as_the_pull_parser_reads_it(data, size):
    data = data if size == "small" or len(data) > xmlparse._SMALL else _large(data)
    fast = xmlparse._fast(data)
    assert fast is not None
    pulled = xmlparse._read(data, "envelope")
    assert etree.tostring(fast) == etree.tostring(pulled)
    assert etree.tostring(xmlparse.parse(data)) == etree.tostring(pulled)


def test_a_signed_letter_takes_the_one_call_parse(dev_pki):
    data = sign_envelope(letter_bytes(), dev_pki.agency_signer("00001"))
    assert xmlparse._fast(data) is not None


@pytest.mark.parametrize("data", [
    # what only looks suspicious goes to the pull parser, which reads it
    _with_body(b"<!-- <" + b"c" * (M + 1) + b" -->"),
    letter_bytes().replace(b"?>", b"?><!-- xmlns:" + b"p" * (M + 1) + b'="x" -->', 1),
    # white space before '=' (legal; the bytes of a small document cannot bound that name cheaply)
    _with_body(b'<x a = "1"/>'),
    # a DOCTYPE past the first 4 kB (parse refuses it after the pull parser reads it)
    letter_bytes().replace(b"?>", b"?><!--" + b"c" * 5000 + b"-->", 1).replace(b"<Envelope", b"<!DOCTYPE x><Envelope", 1),
    # not UTF-8: left to the pull parser whatever it holds
    letter_bytes().decode().encode("utf-16"),
    b'<?xml version="1.0" encoding="ISO-8859-1"?><a>\xe9</a>',
    # larger than the one-call parse takes
    _with_body(b"<x>" + b"y" * xmlparse.FAST_MAX + b"</x>"),
])
def test_what_the_quick_checks_do_not_clear_goes_to_the_pull_parser(data):
    assert xmlparse._fast(data) is None


def test_a_malformed_document_is_refused_as_the_pull_parser_refuses_it():
    data = letter_bytes().replace(b"</Envelope>", b"")
    assert xmlparse._fast(data) is None
    with pytest.raises(XmlError) as exc:
        xmlparse.parse(data)
    assert exc.value.code == "envelope.not_xml"


def test_a_utf8_bom_and_a_utf8_declaration_take_the_one_call_parse():
    data = letter_bytes()
    assert data.startswith(b"<?xml") and b"UTF-8" in data[:60]
    assert xmlparse._fast(b"\xef\xbb\xbf" + data) is not None


def test_what_only_looks_suspicious_is_read_by_the_pull_parser_as_a_plain_parse_reads_it():
    data = _with_body(b'<x a = "1"/>')
    assert etree.tostring(xmlparse.parse(data)) == etree.tostring(etree.fromstring(data))


def test_a_doctype_past_the_first_4_kb_is_refused():
    data = letter_bytes().replace(b"?>", b"?><!--" + b"c" * 5000 + b"-->", 1).replace(
        b"<Envelope", b"<!DOCTYPE x><Envelope", 1)
    with pytest.raises(XmlError) as exc:
        xmlparse.parse(data)
    assert exc.value.code == "envelope.dtd_forbidden"


@pytest.mark.parametrize("count", [xmlparse.MAX_ATTRIBUTES - 1, xmlparse.MAX_ATTRIBUTES])
@pytest.mark.parametrize("size", ["small", "large"])
def test_the_nth_attribute_is_counted_per_element_with_the_declarations(count, size):
    """``/descendant::*/@*[n]`` is per element: 63 attributes besides the one declaration of the document
    pass, 64 do not (together 65), whichever path answers."""
    data = _with_body(b"<x " + b" ".join(b'a%d="x"' % i for i in range(count)) + b"/>")
    data = data if size == "small" else _large(data)
    if count + 1 > xmlparse.MAX_ATTRIBUTES:
        assert xmlparse._fast(data) is None
    else:
        assert xmlparse._fast(data) is not None
